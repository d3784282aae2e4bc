"""simclient.programs: the upgradeable-loader layout byte by byte, the PDA (against solders when installed), errors."""
from __future__ import annotations

import hashlib
import struct

import pytest

from simclient import Continue, CreateSession, modify_program
from simclient._base58 import b58decode, b58encode
from simclient.programs import (
    BPF_LOADER_UPGRADEABLE,
    PROGRAMDATA_METADATA_SIZE,
    find_program_address,
    is_on_curve,
    parse_upgradeable_state,
    programdata_address,
    rent_exempt_minimum,
)
from simclient.protocol import encode_continue, encode_create

JUP = "JUP6LkbZbjS1jKKwapdHNy74zcZ3tLUZoi5QNyVTaV4"
#: Jupiter v6's ProgramData account on mainnet (what `solana program show JUP6...` reports).
JUP_PROGRAMDATA = "4Ec7ZxZS6Sbdg5UGSLHbAnM7GQHp2eFd4KYWRexAipQT"
AUTH = "11111111111111111111111111111112"
ELF = b"\x7fELF\x02\x01\x01" + b"\x00" * 57


def test_programdata_address_of_a_known_program() -> None:
    assert programdata_address(JUP) == JUP_PROGRAMDATA


def test_program_account_bytes() -> None:
    accounts = modify_program(JUP, ELF)
    program = accounts[JUP]
    assert program.data == b"\x02\x00\x00\x00" + b58decode(JUP_PROGRAMDATA)
    assert len(program.data) == 36
    assert program.executable is True and program.owner == BPF_LOADER_UPGRADEABLE
    assert program.lamports == 1_141_440 == rent_exempt_minimum(36)  # what mainnet program accounts hold


def test_programdata_account_bytes_with_and_without_authority() -> None:
    with_auth = modify_program(JUP, ELF, slot=0x0102030405060708, upgrade_authority=AUTH)[JUP_PROGRAMDATA]
    assert with_auth.data[:4] == b"\x03\x00\x00\x00"
    assert with_auth.data[4:12] == struct.pack("<Q", 0x0102030405060708)
    assert with_auth.data[12:13] == b"\x01" and with_auth.data[13:45] == b58decode(AUTH)
    assert with_auth.data[45:] == ELF and PROGRAMDATA_METADATA_SIZE == 45
    assert with_auth.executable is False and with_auth.owner == BPF_LOADER_UPGRADEABLE
    assert with_auth.lamports == (128 + 45 + len(ELF)) * 6960
    none = modify_program(JUP, ELF)[JUP_PROGRAMDATA]
    assert none.data[12:45] == b"\x00" * 33 and none.data[45:] == ELF  # fixed-size header, ELF at 45
    assert parse_upgradeable_state(with_auth.data) == {"state": "programdata", "slot": 0x0102030405060708,
                                                       "upgrade_authority": AUTH, "elf": ELF}
    assert parse_upgradeable_state(none.data)["upgrade_authority"] is None


def test_usable_in_continue_and_create() -> None:
    cont = Continue().modify_program(JUP, ELF)
    wire = encode_continue(cont)["params"]["modifyAccountStates"]
    assert set(wire) == {JUP, JUP_PROGRAMDATA}
    assert wire[JUP]["executable"] is True and wire[JUP_PROGRAMDATA]["space"] == 45 + len(ELF)
    create = CreateSession(start_slot=10, slot_count=5, account_overrides={12: modify_program(JUP, ELF)})
    assert set(encode_create(create)["params"]["accountOverrides"]["12"]) == {JUP, JUP_PROGRAMDATA}


@pytest.mark.parametrize("args, kwargs, needle", [
    (("not-base58!", ELF), {}, "program_id"),
    ((JUP, b""), {}, "elf_bytes is empty"),
    ((JUP, "elf as str"), {}, "bytes"),
    ((JUP, b"MZ\x90\x00"), {}, "ELF magic"),
    ((JUP, ELF), {"slot": -1}, "slot"),
    ((JUP, ELF), {"upgrade_authority": "nope"}, "upgrade_authority"),
    ((JUP, ELF), {"programdata": JUP}, "programdata"),
])
def test_bad_input_names_the_field(args, kwargs, needle) -> None:
    with pytest.raises(ValueError, match=needle):
        modify_program(*args, **kwargs)


def test_elf_check_can_be_turned_off_and_keywords_follow_design() -> None:
    blob = b"not an elf"
    assert modify_program(JUP, blob, check_elf=False)[JUP_PROGRAMDATA].data[45:] == blob
    assert modify_program(program_id=JUP, elf_bytes=ELF) == modify_program(JUP, ELF)  # DESIGN.md names


def test_on_curve_known_points() -> None:
    assert is_on_curve(b58decode(JUP))  # a real signer-style key is a curve point
    assert not is_on_curve(b58decode(JUP_PROGRAMDATA))  # a PDA is not
    with pytest.raises(ValueError):
        is_on_curve(b"\x00" * 31)


def test_pda_and_curve_check_match_solders() -> None:
    solders = pytest.importorskip("solders.pubkey")
    Pubkey = solders.Pubkey
    for i in range(200):
        raw = hashlib.sha256(b"curve-%d" % i).digest()
        assert is_on_curve(raw) == Pubkey(raw).is_on_curve(), i
    for i in range(40):
        program = Pubkey(hashlib.sha256(b"program-%d" % i).digest())
        seeds = [b"seed", hashlib.sha256(b"s%d" % i).digest()[: i % 33]]
        want, bump = Pubkey.find_program_address(seeds, program)
        assert find_program_address(seeds, str(program)) == (str(want), bump)
    loader = Pubkey.from_string(BPF_LOADER_UPGRADEABLE)
    for i in range(20):
        pid = Pubkey(hashlib.sha256(b"pid-%d" % i).digest())
        assert programdata_address(str(pid)) == str(Pubkey.find_program_address([bytes(pid)], loader)[0])


def test_parse_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        parse_upgradeable_state(b"\x09\x00\x00\x00")
    with pytest.raises(ValueError):
        parse_upgradeable_state(b"\x02\x00")
    assert parse_upgradeable_state(b"\x02\x00\x00\x00" + b"\x01" * 32)["programdata_address"] == b58encode(
        b"\x01" * 32)


def test_seed_limits() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        find_program_address([b"x" * 33], JUP)
    with pytest.raises(ValueError, match="seeds"):
        find_program_address([b"x"] * 16, JUP)
