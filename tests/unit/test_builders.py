"""Builder validation (DESIGN.md "Builders"): a bad value raises ValueError naming the field. Also ClientConfig."""
from __future__ import annotations

import base64
import dataclasses
import math

import pytest

from simclient import ClientConfig
from simclient.builders import MAX_DISCONNECT_TIMEOUT_SECS, Continue, CreateSession, oracle_update, program_executed
from simclient.protocol import AccountData

JUP = "JUP6LkbZbjS1jKKwapdHNy74zcZ3tLUZoi5QNyVTaV4"
TOKEN = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
SYSTEM = "11111111111111111111111111111111"
TX_B64 = base64.b64encode(b"\x01" + b"\x02" * 64 + b"msg").decode()

# ------------------------------------------------------------------------------------- CreateSession


def test_create_session_valid_forms():
    a = CreateSession(start_slot=10, end_slot=10)
    assert (a.resolved_end_slot, a.total_slots) == (10, 1)
    b = CreateSession(start_slot=10, slot_count=5)
    assert (b.resolved_end_slot, b.total_slots) == (15, 6)
    assert a.disconnect_timeout_secs == MAX_DISCONNECT_TIMEOUT_SECS == 900
    c = CreateSession(start_slot=0, end_slot=1, signer_filter=[JUP], discoveries=[JUP, oracle_update([TOKEN])])
    assert c.signer_filter == (JUP,)
    assert c.discoveries == ({"programExecuted": JUP}, {"oracleUpdate": {"programs": [TOKEN], "accounts": []}})


BAD_CREATE = [
    ("negative-start", dict(start_slot=-1, end_slot=5), "start_slot"),
    ("str-start", dict(start_slot="400000000", end_slot=5), "start_slot"),
    ("bool-start", dict(start_slot=True, end_slot=5), "start_slot"),
    ("float-start", dict(start_slot=1.0, end_slot=5), "start_slot"),
    ("end-before-start", dict(start_slot=10, end_slot=9), "end_slot"),
    ("negative-end", dict(start_slot=0, end_slot=-1), "end_slot"),
    ("str-end", dict(start_slot=0, end_slot="5"), "end_slot"),
    ("both-end-and-count", dict(start_slot=0, end_slot=5, slot_count=5), "slot_count"),
    ("neither-end-nor-count", dict(start_slot=0), "slot_count"),
    ("negative-count", dict(start_slot=0, slot_count=-1), "slot_count"),
    ("bool-count", dict(start_slot=0, slot_count=False), "slot_count"),
    ("count-overflows-u64", dict(start_slot=2**64 - 10, slot_count=11), "slot_count"),
    ("disconnect-901", dict(start_slot=0, end_slot=1, disconnect_timeout_secs=901), "disconnect_timeout_secs"),
    ("disconnect-negative", dict(start_slot=0, end_slot=1, disconnect_timeout_secs=-1), "disconnect_timeout_secs"),
    ("disconnect-bool", dict(start_slot=0, end_slot=1, disconnect_timeout_secs=True), "disconnect_timeout_secs"),
    ("disconnect-str", dict(start_slot=0, end_slot=1, disconnect_timeout_secs="900"), "disconnect_timeout_secs"),
    ("capacity-over-u16", dict(start_slot=0, end_slot=1, capacity_wait_timeout_secs=65536),
     "capacity_wait_timeout_secs"),
    ("capacity-negative", dict(start_slot=0, end_slot=1, capacity_wait_timeout_secs=-5),
     "capacity_wait_timeout_secs"),
    ("compute-over-u32", dict(start_slot=0, end_slot=1, extra_compute_units=2**32), "extra_compute_units"),
    ("summary-int", dict(start_slot=0, end_slot=1, send_summary=1), "send_summary"),
    ("summary-str", dict(start_slot=0, end_slot=1, send_summary="yes"), "send_summary"),
    ("signer-not-base58", dict(start_slot=0, end_slot=1, signer_filter=["0OIl-not-base58"]), "signer_filter"),
    ("signer-short", dict(start_slot=0, end_slot=1, signer_filter=["abc"]), "signer_filter"),
    ("signer-int", dict(start_slot=0, end_slot=1, signer_filter=[5]), "signer_filter"),
    ("signer-one-string", dict(start_slot=0, end_slot=1, signer_filter=JUP), "signer_filter"),
    ("discovery-bad-id", dict(start_slot=0, end_slot=1, discoveries=["not-a-key"]), "discoveries"),
    ("discovery-bad-id-in-dict", dict(start_slot=0, end_slot=1, discoveries=[{"programExecuted": "nope"}]),
     "discoveries"),
    ("discovery-int", dict(start_slot=0, end_slot=1, discoveries=[5]), "discoveries"),
    ("discovery-two-keys",
     dict(start_slot=0, end_slot=1, discoveries=[{"programExecuted": JUP, "oracleUpdate": {}}]), "discoveries"),
    ("discovery-empty-dict", dict(start_slot=0, end_slot=1, discoveries=[{}]), "discoveries"),
    ("override-bad-address", dict(start_slot=0, end_slot=1, account_overrides={5: {"bad": AccountData(1)}}),
     "account_overrides"),
    ("override-not-account", dict(start_slot=0, end_slot=1, account_overrides={5: {JUP: {"lamports": 1}}}),
     "account_overrides"),
    ("override-negative-slot", dict(start_slot=0, end_slot=1, account_overrides={-1: {}}), "account_overrides"),
    ("extra-not-mapping", dict(start_slot=0, end_slot=1, extra=[("a", 1)]), "extra"),
]


@pytest.mark.parametrize("kwargs,field", [b[1:] for b in BAD_CREATE], ids=[b[0] for b in BAD_CREATE])
def test_create_session_rejects_bad_values_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        CreateSession(**kwargs)


def test_create_session_boundaries_are_accepted():
    assert CreateSession(start_slot=0, end_slot=0, disconnect_timeout_secs=900).disconnect_timeout_secs == 900
    assert CreateSession(start_slot=0, end_slot=0, disconnect_timeout_secs=0).disconnect_timeout_secs == 0
    assert CreateSession(start_slot=0, slot_count=0).resolved_end_slot == 0
    assert CreateSession(start_slot=2**64 - 11, slot_count=10).resolved_end_slot == 2**64 - 1
    assert CreateSession(start_slot=0, end_slot=1, capacity_wait_timeout_secs=65535).capacity_wait_timeout_secs \
        == 65535


def test_create_session_is_frozen():
    create = CreateSession(start_slot=0, end_slot=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        create.start_slot = 5  # type: ignore[misc]


@pytest.mark.parametrize("call", [lambda: program_executed("nope"), lambda: oracle_update(["nope"]),
                                  lambda: oracle_update([JUP], ["nope"])])
def test_discovery_helpers_validate_keys(call):
    with pytest.raises(ValueError, match="base58"):
        call()


# ------------------------------------------------------------------------------------------ Continue


def test_continue_defaults_and_normalisation():
    cont = Continue()
    assert (cont.advance_count, cont.transactions, cont.modify_account_states) == (1, [], {})
    raw = b"\x01" + b"\x03" * 64
    assert Continue(transactions=[raw]).transactions == [base64.b64encode(raw).decode()]
    assert Continue(transactions=(TX_B64,)).transactions == [TX_B64]


def test_push_transaction_and_modify_account_chain():
    raw = bytearray(b"\x01" + b"\x04" * 64)
    acct = AccountData(lamports=7)
    cont = Continue(advance_count=2)
    assert cont.push_transaction(raw) is cont
    assert cont.push_transaction(TX_B64) is cont
    assert cont.push_transaction(memoryview(b"\x05\x06")) is cont
    assert cont.modify_account(JUP, acct) is cont
    assert cont.transactions == [base64.b64encode(bytes(raw)).decode(), TX_B64, "BQY="]
    assert cont.modify_account_states == {JUP: acct}


BAD_CONTINUE = [
    ("advance-0", lambda: Continue(advance_count=0), "advance_count"),
    ("advance-negative", lambda: Continue(advance_count=-3), "advance_count"),
    ("advance-bool", lambda: Continue(advance_count=True), "advance_count"),
    ("advance-str", lambda: Continue(advance_count="1"), "advance_count"),
    ("tx-bad-base64", lambda: Continue(transactions=["***not base64***"]), "transaction"),
    ("tx-bad-padding", lambda: Continue(transactions=["abc"]), "transaction"),
    ("tx-empty-str", lambda: Continue(transactions=[""]), "transaction"),
    ("tx-empty-bytes", lambda: Continue(transactions=[b""]), "transaction"),
    ("tx-int", lambda: Continue(transactions=[5]), "transaction"),
    ("tx-single-str", lambda: Continue(transactions=TX_B64), "transactions"),
    ("push-bad-base64", lambda: Continue().push_transaction("%%%"), "transaction"),
    ("push-dict", lambda: Continue().push_transaction({"tx": 1}), "transaction"),
    ("push-none", lambda: Continue().push_transaction(None), "transaction"),
    ("push-empty-bytes", lambda: Continue().push_transaction(b""), "transaction"),
    ("modify-bad-address", lambda: Continue().modify_account("nope", AccountData(1)), "modify_account.address"),
    ("modify-short-address", lambda: Continue().modify_account(SYSTEM[:20], AccountData(1)),
     "modify_account.address"),
    ("modify-not-account", lambda: Continue().modify_account(JUP, {"lamports": 1}), "account"),
    ("states-bad-address", lambda: Continue(modify_account_states={"nope": AccountData(1)}), "modify_account.address"),
    ("states-not-account", lambda: Continue(modify_account_states={JUP: 5}), "account"),
]


@pytest.mark.parametrize("call,field", [b[1:] for b in BAD_CONTINUE], ids=[b[0] for b in BAD_CONTINUE])
def test_continue_rejects_bad_values_naming_the_field(call, field):
    with pytest.raises(ValueError, match=field):
        call()


def test_failed_push_leaves_continue_unchanged():
    cont = Continue(transactions=[TX_B64])
    with pytest.raises(ValueError):
        cont.push_transaction("%%%")
    assert cont.transactions == [TX_B64]


# --------------------------------------------------------------------------------------- AccountData


def test_account_data_defaults():
    acct = AccountData(lamports=5)
    assert (acct.lamports, acct.data, acct.owner, acct.executable, acct.space) == (5, b"", SYSTEM, False, None)


@pytest.mark.parametrize("kwargs,field", [
    (dict(lamports=-1), "lamports"),
    (dict(lamports=True), "lamports"),
    (dict(lamports=1.5), "lamports"),
    (dict(lamports="5"), "lamports"),
    (dict(lamports=1, data="abc"), "data"),
    (dict(lamports=1, data=[1, 2]), "data"),
    (dict(lamports=1, owner=""), "owner"),
    (dict(lamports=1, owner=None), "owner"),
    (dict(lamports=1, owner=5), "owner"),
])
def test_account_data_rejects_bad_values(kwargs, field):
    with pytest.raises(ValueError, match=f"AccountData.{field}"):
        AccountData(**kwargs)


# -------------------------------------------------------------------------------------- ClientConfig


def test_client_config_defaults_follow_protocol_section_10():
    c = ClientConfig()
    assert c.connect_timeout == 30
    assert c.create_timeout >= 600
    assert c.handshake_timeout == 120
    assert c.keepalive_interval == 15
    assert c.keepalive_deadline == 45
    assert (c.backoff_initial, c.backoff_multiplier, c.backoff_max) == (0.5, 2, 30)
    assert 0 < c.backoff_jitter < 1
    assert c.reconnect_attempts == 10
    assert c.reconnect_uptime_reset == 60
    assert c.completion_drain_timeout == 60
    assert c.close_timeout == 10


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(ClientConfig)])
def test_client_config_rejects_negative_values(field):
    with pytest.raises(ValueError, match=f"ClientConfig.{field}"):
        ClientConfig(**{field: -1})


@pytest.mark.parametrize("field", ["connect_timeout", "keepalive_interval", "reconnect_attempts"])
@pytest.mark.parametrize("value", [True, "30", None, math.nan])
def test_client_config_rejects_non_numbers(field, value):
    with pytest.raises(ValueError, match=f"ClientConfig.{field}"):
        ClientConfig(**{field: value})


@pytest.mark.parametrize("kwargs,field", [
    (dict(reconnect_attempts=0), "reconnect_attempts"),
    (dict(backoff_multiplier=0.5), "backoff_multiplier"),
    (dict(keepalive_interval=0), "keepalive_interval"),
    (dict(keepalive_deadline=0), "keepalive_deadline"),
])
def test_client_config_rejects_unusable_values(kwargs, field):
    with pytest.raises(ValueError, match=field):
        ClientConfig(**kwargs)


def test_client_config_with_returns_a_changed_copy():
    base = ClientConfig()
    changed = base.with_(reconnect_attempts=3, connect_timeout=0.5)
    assert (changed.reconnect_attempts, changed.connect_timeout) == (3, 0.5)
    assert (base.reconnect_attempts, base.connect_timeout) == (10, 30.0)
    assert changed.keepalive_interval == base.keepalive_interval
    assert changed is not base


def test_client_config_with_validates_and_rejects_unknown_fields():
    with pytest.raises(ValueError, match="close_timeout"):
        ClientConfig().with_(close_timeout=-1)
    with pytest.raises(TypeError):
        ClientConfig().with_(no_such_field=1)


def test_client_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ClientConfig().connect_timeout = 1  # type: ignore[misc]


def test_backoff_delay_survives_a_huge_attempt_number():
    from simclient import ClientConfig

    cfg = ClientConfig(backoff_jitter=0.0)
    assert cfg.backoff_delay(5000) == cfg.backoff_max  # was OverflowError (a float power) and crashed the reader
