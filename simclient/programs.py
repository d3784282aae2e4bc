"""Program overrides: the account overrides that replace an upgradeable program's code for one session.

An upgradeable Solana program is two accounts owned by the BPF upgradeable loader
(``BPFLoaderUpgradeab1e11111111111111111111111``), whose data are bincode-serialised ``UpgradeableLoaderState``
values (public source: ``solana_program::bpf_loader_upgradeable::UpgradeableLoaderState`` / the
``solana-loader-v3-interface`` crate's ``state::UpgradeableLoaderState`` on docs.rs). The enum's variants, in
order, are ``Uninitialized`` (0), ``Buffer{authority_address: Option<Pubkey>}`` (1),
``Program{programdata_address: Pubkey}`` (2) and ``ProgramData{slot: u64, upgrade_authority_address:
Option<Pubkey>}`` (3); bincode writes the variant index as a little-endian u32, a u64 as 8 little-endian bytes, an
``Option`` as one byte (0 / 1) followed by the value when present. So:

* **program account** (``program_id``): 36 bytes = ``02 00 00 00`` + the 32-byte ProgramData address;
  executable, owner the loader (``UpgradeableLoaderState::size_of_program() == 36``).
* **ProgramData account**: a 45-byte header (``size_of_programdata_metadata() == 45``) = ``03 00 00 00`` +
  ``slot`` (u64 LE) + ``01`` + the 32-byte authority (or ``00`` + 32 zero bytes when there is none: the header
  keeps its fixed size, the ELF always starts at offset 45), then the ELF bytes; not executable, owner the loader.
  Its address is the program-derived address of seeds ``[program_id]`` under the loader
  (``get_program_data_address``), computed here by :func:`find_program_address`.
* **lamports**: the rent-exempt minimum of the account's size, as ``getMinimumBalanceForRentExemption`` computes it
  with Solana's default rent: ``(128 + len) * 3480 * 2`` (``ACCOUNT_STORAGE_OVERHEAD`` 128 bytes,
  ``lamports_per_byte_year`` 3480, ``exemption_threshold`` 2.0).

The PDA needs SHA-256 (``hashlib``) and an ed25519 "is this point on the curve" test: both are written here in pure
Python, so ``import simclient`` needs nothing new (tests cross-check against ``solders`` when it is installed).
"""
from __future__ import annotations

import hashlib
import struct
from typing import Any, Dict, Optional, Sequence, Tuple, Union

from ._base58 import b58decode, b58encode, is_pubkey
from .protocol import AccountData

__all__ = [
    "BPF_LOADER_UPGRADEABLE",
    "PROGRAM_ACCOUNT_SIZE",
    "PROGRAMDATA_METADATA_SIZE",
    "ELF_MAGIC",
    "modify_program",
    "program_account_data",
    "programdata_account_data",
    "programdata_address",
    "find_program_address",
    "is_on_curve",
    "rent_exempt_minimum",
    "parse_upgradeable_state",
]

BPF_LOADER_UPGRADEABLE = "BPFLoaderUpgradeab1e11111111111111111111111"
PROGRAM_ACCOUNT_SIZE = 36          # UpgradeableLoaderState::size_of_program()
PROGRAMDATA_METADATA_SIZE = 45     # UpgradeableLoaderState::size_of_programdata_metadata()
ELF_MAGIC = b"\x7fELF"
_TAG_PROGRAM = 2
_TAG_PROGRAMDATA = 3
_PDA_MARKER = b"ProgramDerivedAddress"
_MAX_SEED_LEN = 32
_MAX_SEEDS = 16
_U64 = 0xFFFFFFFFFFFFFFFF

# ed25519 (edwards25519) field prime and curve constant d = -121665/121666 mod p.
_P = 2 ** 255 - 19
_D = (-121665 * pow(121666, _P - 2, _P)) % _P


def rent_exempt_minimum(data_len: int) -> int:
    """Lamports that keep an account of ``data_len`` bytes rent-exempt under Solana's default rent."""
    if isinstance(data_len, bool) or not isinstance(data_len, int) or data_len < 0:
        raise ValueError(f"data_len must be a non-negative int, got {data_len!r}")
    return (128 + data_len) * 3480 * 2


def is_on_curve(point: bytes) -> bool:
    """True when the 32 bytes decompress to an ed25519 point (what ``Pubkey::is_on_curve`` answers).

    Decompression as curve25519-dalek does it: ``y`` is the low 255 bits (little-endian, reduced mod p), and a point
    exists iff ``(y^2 - 1) / (d*y^2 + 1)`` is a square mod p (Euler's criterion); the sign bit never rejects."""
    if len(point) != 32:
        raise ValueError(f"a curve point is 32 bytes, got {len(point)}")
    y = (int.from_bytes(point, "little") & ((1 << 255) - 1)) % _P
    yy = y * y % _P
    u = (yy - 1) % _P
    v = (_D * yy + 1) % _P  # never 0: -1/d is not a square mod p
    w = u * pow(v, _P - 2, _P) % _P
    return w == 0 or pow(w, (_P - 1) // 2, _P) == 1


def _key_bytes(name: str, value: Any) -> bytes:
    text = str(value)  # a solders Pubkey prints as base58
    if not is_pubkey(text):
        raise ValueError(f"{name} must be a base58 public key (32 bytes), got {value!r}")
    return b58decode(text)


def find_program_address(seeds: Sequence[bytes], program_id: Any) -> Tuple[str, int]:
    """``Pubkey::find_program_address``: the first bump from 255 down whose hash is off the curve.

    Returns ``(address, bump)``; ``program_id`` is a base58 string (or a solders Pubkey)."""
    program = _key_bytes("program_id", program_id)
    seeds = [bytes(s) for s in seeds]
    if len(seeds) >= _MAX_SEEDS:  # the bump is one more seed
        raise ValueError(f"at most {_MAX_SEEDS - 1} seeds, got {len(seeds)}")
    for s in seeds:
        if len(s) > _MAX_SEED_LEN:
            raise ValueError(f"a seed is at most {_MAX_SEED_LEN} bytes, got {len(s)}")
    prefix = b"".join(seeds)
    for bump in range(255, -1, -1):
        digest = hashlib.sha256(prefix + bytes([bump]) + program + _PDA_MARKER).digest()
        if not is_on_curve(digest):
            return b58encode(digest), bump
    raise ValueError("no viable bump seed")  # pragma: no cover - probability 2^-256


def programdata_address(program_id: Any) -> str:
    """The ProgramData address of an upgradeable program: the PDA of ``[program_id]`` under the loader."""
    return find_program_address([_key_bytes("program_id", program_id)], BPF_LOADER_UPGRADEABLE)[0]


def program_account_data(programdata: Any) -> bytes:
    """The 36 data bytes of a ``Program{programdata_address}`` account."""
    return struct.pack("<I", _TAG_PROGRAM) + _key_bytes("programdata_address", programdata)


def programdata_account_data(elf: bytes, slot: int = 0, upgrade_authority: Optional[Any] = None) -> bytes:
    """A ``ProgramData{slot, upgrade_authority_address}`` header (45 bytes) followed by ``elf``."""
    if isinstance(slot, bool) or not isinstance(slot, int) or not 0 <= slot <= _U64:
        raise ValueError(f"slot must be a u64, got {slot!r}")
    if upgrade_authority is None:
        authority = b"\x00" + bytes(32)
    else:
        authority = b"\x01" + _key_bytes("upgrade_authority", upgrade_authority)
    return struct.pack("<IQ", _TAG_PROGRAMDATA, slot) + authority + bytes(elf)


def parse_upgradeable_state(data: bytes) -> Dict[str, Any]:
    """Decode the header of an upgradeable-loader account: ``{"state": "program", "programdata_address": ...}``
    or ``{"state": "programdata", "slot": ..., "upgrade_authority": ... | None, "elf": bytes}`` (also
    ``uninitialized`` / ``buffer``). Raises ValueError on anything else."""
    if len(data) < 4:
        raise ValueError(f"upgradeable-loader state needs at least 4 bytes, got {len(data)}")
    tag = struct.unpack_from("<I", data)[0]
    if tag == 0:
        return {"state": "uninitialized"}
    if tag == 1:
        if len(data) < 5:
            raise ValueError("truncated Buffer state")
        has = data[4] == 1
        return {"state": "buffer", "authority": b58encode(data[5:37]) if has else None}
    if tag == _TAG_PROGRAM:
        if len(data) < PROGRAM_ACCOUNT_SIZE:
            raise ValueError(f"a Program state is {PROGRAM_ACCOUNT_SIZE} bytes, got {len(data)}")
        return {"state": "program", "programdata_address": b58encode(data[4:36])}
    if tag == _TAG_PROGRAMDATA:
        if len(data) < 13:
            raise ValueError("truncated ProgramData state")
        slot = struct.unpack_from("<Q", data, 4)[0]
        flag = data[12]
        if flag not in (0, 1) or (flag == 1 and len(data) < PROGRAMDATA_METADATA_SIZE):
            raise ValueError("ProgramData state has a bad upgrade-authority option")
        return {"state": "programdata", "slot": slot,
                "upgrade_authority": b58encode(data[13:45]) if flag == 1 else None,
                "elf": bytes(data[PROGRAMDATA_METADATA_SIZE:])}
    raise ValueError(f"unknown upgradeable-loader state tag {tag}")


def _elf_bytes(elf: Any, check_elf: bool) -> bytes:
    if isinstance(elf, (bytes, bytearray, memoryview)):
        raw = bytes(elf)
    else:
        raise ValueError(f"elf_bytes must be bytes (the program's .so file), got {type(elf).__name__}")
    if not raw:
        raise ValueError("elf_bytes is empty")
    if check_elf and not raw.startswith(ELF_MAGIC):
        raise ValueError(f"elf_bytes does not start with the ELF magic {ELF_MAGIC!r} (got {raw[:4]!r}): not a compiled "
                         "program .so; pass check_elf=False to send these bytes anyway")
    return raw


def modify_program(program_id: Any, elf_bytes: Union[bytes, bytearray, memoryview], *, slot: int = 0,
                   upgrade_authority: Optional[Any] = None, programdata: Optional[Any] = None,
                   check_elf: bool = True) -> Dict[str, AccountData]:
    """The overrides that make ``program_id`` run ``elf_bytes`` (its ``.so``) in a session: ``{program_id: Program account,
    programdata: ProgramData account}`` (layout in the module docstring), for ``Continue(modify_account_states=...)``
    / ``Continue.modify_program`` or ``CreateSession(account_overrides={slot: ...})``.

    ``programdata`` defaults to the derived ProgramData address (what every program deployed by the loader uses);
    ``slot`` is the ProgramData "last modified" slot (keep it below the session's slots: the runtime does not run
    a program in the slot it was deployed in); ``upgrade_authority`` None writes ``Option::None``.
    ``check_elf`` refuses bytes that do not start with ``\\x7fELF`` (a wrong file is the common mistake; the server
    would only fail when the program is invoked). :meth:`Session.modify_program` reads the existing accounts first.
    """
    pid = str(program_id)
    _key_bytes("program_id", pid)
    raw = _elf_bytes(elf_bytes, check_elf)
    pda = programdata_address(pid) if programdata is None else str(programdata)
    _key_bytes("programdata", pda)
    if pda == pid:
        raise ValueError("programdata must differ from program_id")
    program_data = program_account_data(pda)
    data = programdata_account_data(raw, slot, upgrade_authority)
    return {
        pid: AccountData(lamports=rent_exempt_minimum(len(program_data)), data=program_data,
                         owner=BPF_LOADER_UPGRADEABLE, executable=True),
        pda: AccountData(lamports=rent_exempt_minimum(len(data)), data=data, owner=BPF_LOADER_UPGRADEABLE,
                         executable=False),
    }
