"""Run files of any size in bounded memory: a streaming reader, and ``compare`` over an on-disk sqlite3 index.

:class:`RunFileReader` parses the top-level object incrementally and yields ``transactions[]`` one record at a time
(``json.JSONDecoder.raw_decode`` over a sliding buffer; stdlib only), whatever the key order (ours puts
``metadata`` last, the Rust ``sim run`` first) and formatting. The other top-level values are kept whole in
:attr:`RunFileReader.top`. It raises the same :class:`RunFileError` messages as :func:`simclient.runfile.load_run`.

:func:`compare_files` indexes both files into a temporary sqlite3 database keyed by signature (only the fields
``compare`` looks at) and walks the join in baseline order, so it returns the same :class:`Comparison` as
:func:`simclient.runfile.compare_runs` on the loaded documents. Memory is bounded by the differences found (their
slim records are kept for the report), not by the size of the files. :func:`summarize_file` streams the records
through :class:`simclient.runfile.SummaryAccumulator`.
"""
from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from typing import IO, Any, Dict, Iterator, List, Optional, Sequence, Tuple

from .runfile import Comparison, RunFileError, SummaryAccumulator

__all__ = ["RunFileReader", "compare_files", "summarize_file"]

_WS = " \t\n\r"
_COMPARED = ("signature", "slot", "success", "error", "sol_changes", "token_changes", "logs")


class RunFileReader:
    """Stream one run file: iterate :meth:`records`, then read :attr:`top` (``metadata``, ``summary``, …) and
    :attr:`count`. Use as a context manager (closes the file)."""

    def __init__(self, path: str, chunk_size: int = 1 << 20):
        self.path = path
        self.chunk_size = chunk_size
        self.top: Dict[str, Any] = {}
        self.count = 0
        self._decoder = json.JSONDecoder()
        self._buf = ""
        self._pos = 0
        self._eof = False
        self._lines = 0  # newlines in the part of the file already dropped from the buffer
        self._seen_transactions = False
        try:
            self._fh: IO[str] = open(path, encoding="utf-8")
        except FileNotFoundError:
            raise RunFileError(f"{path}: no such file") from None
        except OSError as exc:
            raise RunFileError(f"{path}: cannot read: {exc}") from None

    def __enter__(self) -> "RunFileReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._fh.close()

    # ------------------------------------------------------------------ low level
    def _fill(self) -> bool:
        """Read one more chunk; False at end of file."""
        if self._eof:
            return False
        try:
            chunk = self._fh.read(self.chunk_size)
        except (OSError, UnicodeDecodeError) as exc:
            raise RunFileError(f"{self.path}: cannot read: {exc}") from None
        if not chunk:
            self._eof = True
            return False
        if self._pos:
            self._lines += self._buf.count("\n", 0, self._pos)
            self._buf = self._buf[self._pos:]
            self._pos = 0
        self._buf += chunk
        return True

    def _error(self, msg: str, pos: Optional[int] = None) -> RunFileError:
        line = self._lines + self._buf.count("\n", 0, self._pos if pos is None else pos) + 1
        return RunFileError(f"{self.path}: not JSON ({msg} at line {line})")

    def _peek(self) -> str:
        """The next non-whitespace character ('' at end of file), without consuming it."""
        while True:
            buf, pos = self._buf, self._pos
            n = len(buf)
            while pos < n and buf[pos] in _WS:
                pos += 1
            self._pos = pos
            if pos < n:
                return buf[pos]
            if not self._fill():
                return ""

    def _expect(self, chars: str) -> str:
        c = self._peek()
        if not c or c not in chars:
            raise self._error(f"Expecting {' or '.join(repr(x) for x in chars)}" if c else "Unexpected end of file")
        self._pos += 1
        return c

    def _value(self) -> Any:
        """Decode one JSON value at the cursor, reading more of the file while it is cut off."""
        self._peek()
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                if self._fill():
                    continue
                raise self._error(exc.msg, exc.pos) from None
            if end == len(self._buf) and self._fill():  # a number may go on in the next chunk
                continue
            self._pos = end
            return value

    # ------------------------------------------------------------------ the run-file shape
    def records(self) -> Iterator[Dict[str, Any]]:
        """Every ``transactions[]`` entry in file order (checked like :func:`load_run`); then :attr:`top`."""
        not_run = RunFileError(f"{self.path}: not a run file (expected an object with a 'transactions' array)")
        first = self._peek()
        if first != "{":
            if not first:
                raise self._error("Expecting value")
            self._value()  # not JSON at all: that error; JSON of another shape: not a run file
            raise not_run
        self._pos += 1
        if self._peek() == "}":
            self._pos += 1
        else:
            while True:
                if self._peek() != '"':
                    raise self._error("Expecting property name enclosed in double quotes")
                key = self._value()
                self._expect(":")
                if key == "transactions" and self._peek() == "[":
                    self._pos += 1
                    self._seen_transactions = True
                    self.top.pop("transactions", None)
                    if self._peek() == "]":
                        self._pos += 1
                    else:
                        while True:
                            tx = self._value()
                            if not isinstance(tx, dict) or not isinstance(tx.get("signature"), str):
                                raise RunFileError(f"{self.path}: transactions[{self.count}] has no signature")
                            self.count += 1
                            yield tx
                            if self._expect(",]") == "]":
                                break
                else:
                    self.top[key] = self._value()
                    if key == "transactions":
                        self._seen_transactions = False
                if self._expect(",}") == "}":
                    break
        if self._peek():
            raise self._error("Extra data")
        if not self._seen_transactions:
            raise not_run
        self.top.setdefault("metadata", {})
        if not isinstance(self.top["metadata"], dict):
            raise RunFileError(f"{self.path}: 'metadata' must be an object")


def _slim(tx: Dict[str, Any]) -> Dict[str, Any]:
    return {k: tx[k] for k in _COMPARED if k in tx}


def _kept(tx: Dict[str, Any]) -> Dict[str, Any]:
    """What a reported difference keeps in memory: everything the report shows (not the logs, only counted)."""
    tx.pop("logs", None)
    return tx


def _index(db: sqlite3.Connection, table: str, path: str) -> Tuple[int, Dict[str, Any]]:
    db.execute(f"CREATE TABLE {table} (sig TEXT PRIMARY KEY, ord INTEGER NOT NULL, rec TEXT NOT NULL)")
    insert = (f"INSERT INTO {table} (sig, ord, rec) VALUES (?, ?, ?) "
              f"ON CONFLICT(sig) DO UPDATE SET rec = excluded.rec")  # like a dict: first position, last value
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    with RunFileReader(path) as reader:
        batch: List[Tuple[str, int, str]] = []
        for i, tx in enumerate(reader.records()):
            batch.append((tx["signature"], i, dumps(_slim(tx))))
            if len(batch) >= 2000:
                db.executemany(insert, batch)
                batch.clear()
        if batch:
            db.executemany(insert, batch)
        db.execute(f"CREATE INDEX {table}_ord ON {table} (ord)")
        return reader.count, reader.top


def compare_files(baseline: str, experiment: str, workdir: Optional[str] = None
                  ) -> Tuple[Comparison, int, int]:
    """Compare two run files on disk; returns the comparison and each file's number of records."""
    fd, db_path = tempfile.mkstemp(prefix="simclient-compare-", suffix=".sqlite", dir=workdir)
    os.close(fd)
    db = sqlite3.connect(db_path)
    try:
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-8192")  # 8 MiB page cache: memory stays flat, the rest is on disk
        db.execute("PRAGMA temp_store=FILE")
        n_base, _ = _index(db, "base", baseline)
        n_exp, _ = _index(db, "exp", experiment)
        db.commit()
        loads = json.loads
        out = Comparison()
        out.only_in_baseline = [_kept(loads(r)) for (r,) in db.execute(
            "SELECT b.rec FROM base b WHERE NOT EXISTS (SELECT 1 FROM exp e WHERE e.sig = b.sig) ORDER BY b.ord")]
        out.only_in_experiment = [_kept(loads(r)) for (r,) in db.execute(
            "SELECT e.rec FROM exp e WHERE NOT EXISTS (SELECT 1 FROM base b WHERE b.sig = e.sig) ORDER BY e.ord")]
        for brec, erec in db.execute("SELECT b.rec, e.rec FROM base b JOIN exp e ON e.sig = b.sig ORDER BY b.ord"):
            out.common += 1
            if brec == erec:  # same text, same values: nothing to report (the common case)
                continue
            b, e = loads(brec), loads(erec)
            if (b.get("logs") or []) != (e.get("logs") or []):
                out.log_changes += 1
            b, e = _kept(b), _kept(e)
            bs, es = b.get("success"), e.get("success")
            if bs is True and es is False:
                out.regressions.append((b, e))
            elif bs is False and es is True:
                out.improvements.append((b, e))
            elif bs is False and es is False and b.get("error") != e.get("error"):
                out.error_changes.append((b, e))
            if (b.get("sol_changes") or {}) != (e.get("sol_changes") or {}) or \
                    (b.get("token_changes") or {}) != (e.get("token_changes") or {}):
                out.balances.append((b, e))
        return out, n_base, n_exp
    finally:
        db.close()
        for suffix in ("", "-journal", "-wal", "-shm"):
            try:
                os.unlink(db_path + suffix)
            except OSError:
                pass


def summarize_file(path: str, accounts: Sequence[str] = ()) -> Dict[str, Any]:
    """:func:`simclient.runfile.summarize_run` of a file, streamed."""
    acc = SummaryAccumulator(accounts)
    with RunFileReader(path) as reader:
        for tx in reader.records():
            acc.add(tx)
        return acc.result(reader.top.get("metadata") or {}, reader.top.get("summary"))
