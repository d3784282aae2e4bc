"""Data-plane frames (PROTOCOL.md §9): acks, JSON-RPC errors, notifications (L5), end of stream, and the typed
``Transaction`` / ``AccountDiff`` events built from notification results."""
from __future__ import annotations

import base64
import json

import pytest

from simclient import events as ev
from simclient import protocol
from simclient._base58 import b58encode
from simclient.errors import ProtocolError
from simclient.protocol import AccountData, Notification, RpcErrorReply, SubscribeAck, Unknown

pytestmark = pytest.mark.usefixtures("json_backend")

JUP = "JUP6LkbZbjS1jKKwapdHNy74zcZ3tLUZoi5QNyVTaV4"
TOKEN = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
ACCOUNT = "SysvarC1ock11111111111111111111111111111111"
SIG = "5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnbJLgp8uirBgmQpjKhoR4tjF3ZpRzrFmBV6UjKdiSZkQUW"


# --------------------------------------------------------------------------------- acks and errors


def test_subscribe_ack():
    assert protocol.decode_subscription_frame('{"jsonrpc":"2.0","id":1,"result":7}') == SubscribeAck(1, 7)


def test_subscribe_ack_keeps_request_id_and_zero_subscription():
    assert protocol.decode_subscription_frame(b'{"jsonrpc":"2.0","id":"req-9","result":0}') == SubscribeAck("req-9", 0)


def test_replay_window_error_reply():
    frame = protocol.decode_subscription_frame(
        '{"jsonrpc":"2.0","id":1,"error":{"code":-32016,"message":"replay window exceeded: oldest retained slot 400000050"}}')
    assert frame == RpcErrorReply(request_id=1, code=-32016,
                                  message="replay window exceeded: oldest retained slot 400000050", data=None)
    assert frame.code == protocol.REPLAY_WINDOW_ERROR_CODE == -32016


def test_other_json_rpc_error_keeps_data():
    frame = protocol.decode_subscription_frame(
        '{"jsonrpc":"2.0","id":4,"error":{"code":-32602,"message":"Invalid params","data":{"why":"filter"}}}')
    assert frame == RpcErrorReply(4, -32602, "Invalid params", {"why": "filter"})


def test_error_null_with_result_is_an_ack():
    assert protocol.decode_subscription_frame('{"jsonrpc":"2.0","id":1,"result":3,"error":null}') == SubscribeAck(1, 3)


def test_unsubscribe_true_is_not_an_ack():
    frame = protocol.decode_subscription_frame('{"jsonrpc":"2.0","id":5,"result":true}')
    assert isinstance(frame, Unknown)
    assert not isinstance(frame, (SubscribeAck, RpcErrorReply, Notification))
    assert frame.params["result"] is True


# -------------------------------------------------------------------------------------- notifications

TX_VALUE = {"slot": 400000124, "transaction": {"signatures": [SIG], "message": {}}, "meta": {"err": None},
            "blockTime": 1760000000}
TX_NOTIFICATION = {"jsonrpc": "2.0", "method": "transactionNotification", "params": {
    "subscription": 7, "result": {"context": {"slot": 400000124}, "value": TX_VALUE}}}


def test_transaction_notification_with_context_value():
    frame = protocol.decode_subscription_frame(json.dumps(TX_NOTIFICATION))
    assert frame == Notification("transactionNotification", 7, {"context": {"slot": 400000124}, "value": TX_VALUE})
    tx = protocol.transaction_from_result(frame.result)
    assert tx == ev.Transaction(slot=400000124, signature=SIG, value=TX_VALUE)
    assert tx.success is True
    assert tx.error is None


def test_section_9_1_example_frame_decodes():
    raw = ('{"jsonrpc":"2.0","method":"transactionNotification","params":{"subscription":7,'
           '"result":{"context":{"slot":400000124},"value":{"slot":400000124,"transaction":{},"meta":{},'
           '"blockTime":1760000000}}}}')
    frame = protocol.decode_subscription_frame(raw)
    assert frame.method == "transactionNotification"
    assert frame.subscription == 7
    assert frame.result["value"]["blockTime"] == 1760000000
    # The spec's placeholder carries no signature; a Transaction needs one for dedup, so it is refused loudly.
    with pytest.raises(ProtocolError, match="signature"):
        protocol.transaction_from_result(frame.result)


def test_transaction_bare_result_l5():
    frame = protocol.decode_subscription_frame(json.dumps(
        {"jsonrpc": "2.0", "method": "transactionNotification", "params": {"subscription": 7, "result": TX_VALUE}}))
    assert protocol.transaction_from_result(frame.result) == ev.Transaction(400000124, SIG, TX_VALUE)


def test_transaction_slot_falls_back_to_context():
    value = {"transaction": {"signatures": [SIG]}, "meta": {"err": {"InstructionError": [0, "Custom"]}}}
    tx = protocol.transaction_from_result({"context": {"slot": 99}, "value": value})
    assert (tx.slot, tx.signature) == (99, SIG)
    assert tx.success is False
    assert tx.error == {"InstructionError": [0, "Custom"]}


def test_transaction_base64_encoded_signature_is_the_first_signature():
    sig_bytes = bytes(range(1, 65))
    wire = base64.b64encode(b"\x01" + sig_bytes + b"message").decode()
    tx = protocol.transaction_from_result({"slot": 3, "transaction": [wire, "base64"], "meta": None})
    assert tx.signature == b58encode(sig_bytes)
    assert tx.slot == 3


@pytest.mark.parametrize("result", [
    None,
    [],
    "x",
    {"slot": 1, "meta": {}},
    {"slot": 1, "transaction": {"signatures": []}},
    {"slot": 1, "transaction": {"signatures": [5]}},
    {"transaction": {"signatures": [SIG]}},
    {"slot": "1", "transaction": {"signatures": [SIG]}},
    {"slot": -1, "transaction": {"signatures": [SIG]}},
    {"slot": 1, "transaction": ["!!not-base64", "base64"]},
    {"slot": 1, "transaction": [base64.b64encode(b"\x01abc").decode(), "base64"]},
    {"context": {"slot": 1}, "value": None},
])
def test_bad_transaction_results_raise_protocol_error(result):
    with pytest.raises(ProtocolError):
        protocol.transaction_from_result(result)


UI_PRE = {"lamports": 1000, "data": [base64.b64encode(b"\x01\x02\x03").decode(), "base64"], "owner": TOKEN,
          "executable": False, "rentEpoch": 18446744073709551615, "space": 3}
UI_POST = {"lamports": 2000, "data": ["", "base64"], "owner": TOKEN, "executable": False, "rentEpoch": 0, "space": 0}


def test_account_diff_notification_section_9_2_shape():
    result = {"context": {"slot": 400000124}, "account": ACCOUNT, "signature": SIG, "pre": UI_PRE, "post": UI_POST}
    frame = protocol.decode_subscription_frame(json.dumps(
        {"jsonrpc": "2.0", "method": "accountDiffNotification", "params": {"subscription": 3, "result": result}}))
    assert frame == Notification("accountDiffNotification", 3, result)
    diff = protocol.account_diff_from_result(frame.result)
    assert diff == ev.AccountDiff(slot=400000124, account=ACCOUNT, signature=SIG, pre=UI_PRE, post=UI_POST)
    assert diff.key == (400000124, ACCOUNT, SIG)


def test_account_diff_created_account_has_no_pre_and_null_signature():
    diff = protocol.account_diff_from_result(
        {"context": {"slot": 5, "txIndex": 2, "blockTime": 1}, "account": ACCOUNT, "signature": None, "pre": None,
         "post": UI_POST})
    assert diff == ev.AccountDiff(5, ACCOUNT, None, None, UI_POST)
    assert diff.pre_account() is None


def test_account_diff_wrapped_in_context_value_l5():
    inner = {"account": ACCOUNT, "signature": SIG, "pre": UI_PRE, "post": None}
    diff = protocol.account_diff_from_result({"context": {"slot": 77}, "value": inner})
    assert diff == ev.AccountDiff(77, ACCOUNT, SIG, UI_PRE, None)
    assert diff.post_account() is None


@pytest.mark.parametrize("result", [
    None,
    [],
    {"context": {"slot": 1}, "signature": None},                       # no account
    {"account": ACCOUNT, "signature": None},                           # no slot anywhere
    {"context": {"slot": "1"}, "account": ACCOUNT},
    {"context": {"slot": 1}, "account": 5},
    {"context": {"slot": 1}, "account": ACCOUNT, "signature": 7},
    {"context": {"slot": 1}, "account": ACCOUNT, "pre": "gone"},
    {"context": {"slot": 1}, "account": ACCOUNT, "post": [1, 2]},
])
def test_bad_account_diff_results_raise_protocol_error(result):
    with pytest.raises(ProtocolError):
        protocol.account_diff_from_result(result)


def test_end_of_stream_null_result():
    frame = protocol.decode_subscription_frame(
        '{"jsonrpc":"2.0","method":"accountDiffNotification","params":{"subscription":3,"result":null}}')
    assert frame == Notification("accountDiffNotification", 3, None)
    assert frame.result is None


@pytest.mark.parametrize("raw, expected", [
    ('{"jsonrpc":"2.0","method":"subscriptionComplete","params":{"subscription":4}}', (4, None)),
    ('{"jsonrpc":"2.0","method":"subscriptionComplete","params":{"subscription":4,"result":{"n":0}}}', (4, {"n": 0})),
    ('{"jsonrpc":"2.0","method":"subscriptionComplete","params":{}}', (None, None)),
    ('{"jsonrpc":"2.0","method":"subscriptionComplete"}', (None, None)),
    ('{"jsonrpc":"2.0","method":"subscriptionComplete","params":{"subscription":"x"}}', (None, None)),
])
def test_subscription_complete_with_or_without_its_subscription_id(raw, expected):
    frame = protocol.decode_subscription_frame(raw)
    assert frame == protocol.SubscriptionComplete(*expected)


@pytest.mark.parametrize("completed, continue_sent, early", [
    (False, False, True),   # no continue yet: no slot can have run
    (False, True, False),   # after a continue: the real end
    (True, False, False),   # the session completed: always the end
])
def test_is_early_complete(completed, continue_sent, early):
    assert protocol.is_early_complete(completed, continue_sent) is early


def test_non_notification_method_is_unknown():
    frame = protocol.decode_subscription_frame('{"jsonrpc":"2.0","method":"somethingElse","params":{"a":1}}')
    assert frame == Unknown("somethingElse", {"a": 1})


def test_notification_without_object_params_is_unknown():
    frame = protocol.decode_subscription_frame('{"jsonrpc":"2.0","method":"slotNotification","params":[1]}')
    assert frame == Unknown("slotNotification", [1])


@pytest.mark.parametrize("raw", [
    "",
    "not json",
    "[1,2]",
    '"transactionNotification"',
    "42",
    "null",
    b"\xff\xfe",
    '{"jsonrpc":"2.0","method":5,"params":{}}',
    '{"jsonrpc":"2.0","method":"transactionNotification","params":{"result":{}}}',
    '{"jsonrpc":"2.0","method":"transactionNotification","params":{"subscription":"7","result":{}}}',
    '{"jsonrpc":"2.0","method":"transactionNotification","params":{"subscription":-7,"result":{}}}',
    '{"jsonrpc":"2.0","method":"transactionNotification","params":{"subscription":true,"result":{}}}',
    '{"jsonrpc":"2.0","id":1,"error":"boom"}',
    '{"jsonrpc":"2.0","id":1,"error":{"code":"-32016","message":"x"}}',
    '{"jsonrpc":"2.0","id":1,"error":{"code":true,"message":"x"}}',
    '{"jsonrpc":"2.0","id":1,"error":{"message":"no code"}}',
])
def test_malformed_subscription_frames_raise_protocol_error(raw):
    with pytest.raises(ProtocolError) as info:
        protocol.decode_subscription_frame(raw)
    assert type(info.value) is ProtocolError
    assert info.value.raw is not None and len(info.value.raw) <= 200


def test_huge_subscription_garbage_truncates_raw():
    with pytest.raises(ProtocolError) as info:
        protocol.decode_subscription_frame("z" * 500_000)
    assert info.value.raw == "z" * 200


# ----------------------------------------------------------------------------- UiAccount → AccountData


def test_pre_account_decodes_base64_ui_account():
    diff = ev.AccountDiff(1, ACCOUNT, SIG, pre=UI_PRE, post=UI_POST)
    assert diff.pre_account() == AccountData(lamports=1000, data=b"\x01\x02\x03", owner=TOKEN, executable=False,
                                             space=3)
    assert diff.post_account() == AccountData(lamports=2000, data=b"", owner=TOKEN, executable=False, space=0)


def test_pre_account_accepts_base58_and_encoded_binary_object():
    legacy = dict(UI_PRE, data=b58encode(b"\x00\x07"))
    assert ev.AccountDiff(1, ACCOUNT, SIG, pre=legacy).pre_account().data == b"\x00\x07"
    as_obj = dict(UI_PRE, data={"data": "AQID", "encoding": "base64"})
    assert ev.AccountDiff(1, ACCOUNT, SIG, pre=as_obj).pre_account().data == b"\x01\x02\x03"
    as_b58_pair = dict(UI_PRE, data=[b58encode(b"\x09"), "base58"])
    assert ev.AccountDiff(1, ACCOUNT, SIG, pre=as_b58_pair).pre_account().data == b"\x09"


@pytest.mark.parametrize("encoding", ["base64+zstd", "jsonParsed", "BASE64", None])
def test_unknown_account_encoding_raises_clear_value_error(encoding):
    diff = ev.AccountDiff(1, ACCOUNT, SIG, pre=dict(UI_PRE, data=["AQID", encoding]))
    with pytest.raises(ValueError, match=r"unknown account data encoding") as info:
        diff.pre_account()
    assert repr(encoding) in str(info.value)


@pytest.mark.parametrize("pre", [
    dict(UI_PRE, data=["%%%not base64%%%", "base64"]),
    dict(UI_PRE, data=["0OIl", "base58"]),
    dict(UI_PRE, data=12),
    dict(UI_PRE, data=["a", "b", "c"]),
    {k: v for k, v in UI_PRE.items() if k != "lamports"},
    {k: v for k, v in UI_PRE.items() if k != "owner"},
    dict(UI_PRE, lamports=-1),
    dict(UI_PRE, lamports=None),
])
def test_bad_ui_accounts_raise_value_error(pre):
    with pytest.raises(ValueError):
        ev.AccountDiff(1, ACCOUNT, SIG, pre=pre).pre_account()


@pytest.mark.parametrize("result", [
    {"slot": 2**64, "transaction": {"signatures": [SIG]}},     # a stdlib-decoded int orjson cannot re-encode
    {1: "non-string key"},
    {"context": {"slot": -(2**70)}, "value": {"transaction": {"signatures": [SIG]}}},
])
def test_result_helpers_raise_protocol_error_even_when_raw_cannot_be_reencoded(result):
    for helper in (protocol.transaction_from_result, protocol.account_diff_from_result):
        with pytest.raises(ProtocolError) as info:
            helper(result)
        assert info.value.raw is not None and len(info.value.raw) <= 200


def test_available_ranges_with_oversized_int_raises_protocol_error():
    with pytest.raises(ProtocolError):
        protocol.decode_available_ranges([{"bundle_start_slot": 2**64}])
    with pytest.raises(ProtocolError):
        protocol.decode_available_ranges({1: 2})
