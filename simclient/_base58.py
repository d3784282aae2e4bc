"""Base58 (Bitcoin alphabet), as used for Solana addresses and signatures: the core needs no extra dependency.

Shared by the SDK and the local simulator. Encoding works in chunks of ten digits (the simulator encodes many
signatures per slot).
"""
from __future__ import annotations

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}


_PAIRS = [ALPHABET[i // 58] + ALPHABET[i % 58] for i in range(58 * 58)]
_CHUNK = 58 ** 10


def b58encode(data: bytes) -> str:
    """Encode bytes as base58 (leading zero bytes become leading ``1``s)."""
    n = int.from_bytes(data, "big")
    chunks = []
    while n:
        n, r = divmod(n, _CHUNK)
        chunks.append(r)
    parts = []
    for r in reversed(chunks):
        a, e = divmod(r, 3364)
        a, d = divmod(a, 3364)
        a, c = divmod(a, 3364)
        a, b = divmod(a, 3364)
        parts.append(_PAIRS[a] + _PAIRS[b] + _PAIRS[c] + _PAIRS[d] + _PAIRS[e])
    text = "".join(parts).lstrip("1")
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + text


def b58decode(text: str) -> bytes:
    """Decode a base58 string; raises ``ValueError`` on a character outside the alphabet."""
    if not isinstance(text, str):
        raise ValueError("base58 input must be a string")
    n = 0
    for c in text:
        try:
            n = n * 58 + _INDEX[c]
        except KeyError:
            raise ValueError(f"invalid base58 character {c!r}") from None
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    pad = len(text) - len(text.lstrip("1"))
    return b"\0" * pad + body


def is_pubkey(text: object) -> bool:
    """True when ``text`` is a base58 string that decodes to exactly 32 bytes."""
    if not isinstance(text, str) or not text or len(text) > 44:
        return False
    try:
        return len(b58decode(text)) == 32
    except ValueError:
        return False
