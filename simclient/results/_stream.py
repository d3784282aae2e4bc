"""Incremental reading of a run file: the ``transactions`` array one element at a time, stdlib only.

A run file is one JSON object, often a single line of tens of MB. :class:`RunStream` reads it in chunks and decodes
each element of ``transactions`` (and ``unattributed_account_diffs``) with ``json.JSONDecoder.raw_decode`` as soon as
it is complete, so memory holds one chunk plus one element, not the document. Other top-level values (``metadata``,
``summary``) are small and decoded whole.
"""
from __future__ import annotations

import json
import re
from typing import IO, Any, Dict, Iterator, Optional, Tuple

from ..runfile import RunFileError

#: Top-level keys whose arrays are streamed element by element.
STREAMED_KEYS = ("transactions", "unattributed_account_diffs")

_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class _Scanner:
    """A growing text buffer over a file with JSON-value-at-a-time reads."""

    def __init__(self, fh: IO[str], path: str, chunk_size: int):
        self.fh = fh
        self.path = path
        self.chunk_size = max(1024, int(chunk_size))
        self.buf = ""
        self.pos = 0
        self.eof = False

    def _fill(self, size: Optional[int] = None) -> bool:
        if self.eof:
            return False
        chunk = self.fh.read(size or self.chunk_size)
        if not chunk:
            self.eof = True
            return False
        self.buf = self.buf[self.pos:] + chunk
        self.pos = 0
        return True

    def peek(self) -> str:
        """The next non-whitespace character ('' at the end of the file), not consumed."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill():
                return ""

    def expect(self, chars: str, where: str) -> str:
        c = self.peek()
        if not c or c not in chars:
            found = repr(c) if c else "end of file"
            raise RunFileError(f"{self.path}: not a run file (expected {' or '.join(map(repr, chars))} {where}, "
                               f"found {found})")
        self.pos += 1
        return c

    def value(self, where: str) -> Any:
        """Decode the next JSON value. A value that runs past the buffer is retried with more data; the read size
        doubles on each retry, so one huge element costs O(size), not O(size^2 / chunk)."""
        self.peek()
        size = self.chunk_size
        while True:
            try:
                obj, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if self._fill(size):
                    size *= 2
                    continue
                raise RunFileError(f"{self.path}: not JSON ({exc.msg} in {where})") from None
            if end >= len(self.buf) and not self.eof and self._fill(size):
                continue  # a number at the very end of the buffer may go on in the next chunk
            self.pos = end
            return obj


def iter_top_level(fh: IO[str], path: str, chunk_size: int = 1 << 20) -> Iterator[Tuple[str, Any, bool]]:
    """``(key, value, is_element)`` for the run file's top level, in file order: for :data:`STREAMED_KEYS` one
    item per array element (``is_element`` True), for other keys the whole value."""
    sc = _Scanner(fh, path, chunk_size)
    sc.expect("{", "at the start")
    if sc.peek() == "}":
        sc.pos += 1
        return
    while True:
        key = sc.value("a top-level key")
        if not isinstance(key, str):
            raise RunFileError(f"{path}: not a run file (a top-level key is not a string)")
        sc.expect(":", f"after {key!r}")
        if key in STREAMED_KEYS and sc.peek() == "[":
            sc.pos += 1
            if sc.peek() == "]":
                sc.pos += 1
                yield key, [], False  # an empty array: still tell the reader it was there
            else:
                i = 0
                while True:
                    yield key, sc.value(f"{key}[{i}]"), True
                    i += 1
                    if sc.expect(",]", f"after {key}[{i - 1}]") == "]":
                        break
        else:
            yield key, sc.value(repr(key)), False
        if sc.expect(",}", f"after {key!r}") == "}":
            break


class RunStream:
    """One pass over a run file without loading it whole.

    :meth:`items` yields ``("transaction", record)`` and ``("unattributed", diff)`` in file order and checks each
    transaction like :func:`simclient.runfile.load_run` (an object with a string ``signature``). ``metadata`` and
    ``summary`` are filled in as the pass meets them; reading :attr:`metadata` before a pass scans only as far as
    the metadata (the start of the file for ours and the Rust ``sim run``'s).
    """

    def __init__(self, path: str, chunk_size: int = 1 << 20):
        self.path = str(path)
        self.chunk_size = chunk_size
        self._metadata: Optional[Dict[str, Any]] = None
        self.summary: Optional[Dict[str, Any]] = None
        self.extra: Dict[str, Any] = {}

    def _open(self) -> IO[str]:
        try:
            return open(self.path, encoding="utf-8")
        except FileNotFoundError:
            raise RunFileError(f"{self.path}: no such file") from None
        except OSError as exc:
            raise RunFileError(f"{self.path}: cannot read: {exc}") from None

    def _top(self, fh: IO[str]) -> Iterator[Tuple[str, Any, bool]]:
        try:
            yield from iter_top_level(fh, self.path, self.chunk_size)
        except UnicodeDecodeError as exc:
            raise RunFileError(f"{self.path}: cannot read: {exc}") from None

    def _keep(self, key: str, value: Any) -> None:
        if key == "metadata":
            if not isinstance(value, dict):
                raise RunFileError(f"{self.path}: 'metadata' must be an object")
            self._metadata = value
        elif key == "summary":
            self.summary = value if isinstance(value, dict) else None
        else:
            self.extra[key] = value

    @property
    def metadata(self) -> Dict[str, Any]:
        if self._metadata is None:
            with self._open() as fh:
                for key, value, element in self._top(fh):
                    if key == "metadata" and not element:
                        self._keep(key, value)
                        break
            if self._metadata is None:
                self._metadata = {}
        return self._metadata

    def items(self) -> Iterator[Tuple[str, Dict[str, Any]]]:
        seen_transactions = False
        with self._open() as fh:
            for key, value, element in self._top(fh):
                if key == "transactions":
                    seen_transactions = True
                    if not element:
                        if value == []:
                            continue
                        raise RunFileError(f"{self.path}: not a run file (expected an object with a "
                                           f"'transactions' array)")
                    if not isinstance(value, dict) or not isinstance(value.get("signature"), str):
                        raise RunFileError(f"{self.path}: a transaction has no signature")
                    yield "transaction", value
                elif key == "unattributed_account_diffs":
                    if element and isinstance(value, dict):
                        yield "unattributed", value
                else:
                    self._keep(key, value)
        if not seen_transactions:
            raise RunFileError(f"{self.path}: not a run file (expected an object with a 'transactions' array)")
        if self._metadata is None:
            self._metadata = {}

    def transactions(self) -> Iterator[Dict[str, Any]]:
        """Only the ``transactions[]`` records."""
        for kind, value in self.items():
            if kind == "transaction":
                yield value

