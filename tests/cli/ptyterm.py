"""The CLI on a pseudo-terminal of a given size, and a minimal VT100 screen to read what a user would see.

The screen understands what tqdm and the line discipline write: printable text with autowrap at the right edge,
CR, LF, BS, cursor up/down/left/right (``ESC [ n A/B/C/D``), erase in line (``ESC [ K``, ``ESC [ 2K``); SGR and
other private sequences are ignored.
"""
from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import time
from typing import Callable, List, Optional

from .helpers import REPO, clean_env

_CSI = re.compile(r"\x1b\[([?0-9;]*)([A-Za-z])")


class Screen:
    def __init__(self, rows: int, cols: int):
        self.rows, self.cols = rows, cols
        self.lines: List[List[str]] = [[" "] * cols for _ in range(rows)]
        self.row = self.col = 0
        self.wrap_pending = False
        self.scrolled: List[str] = []   # lines that scrolled off the top

    def _linefeed(self) -> None:
        if self.row == self.rows - 1:
            self.scrolled.append("".join(self.lines.pop(0)).rstrip())
            self.lines.append([" "] * self.cols)
        else:
            self.row += 1

    def feed(self, text: str) -> None:
        i = 0
        while i < len(text):
            ch = text[i]
            if ch == "\x1b":
                m = _CSI.match(text, i)
                if m:
                    self._csi(m.group(1), m.group(2))
                    i = m.end()
                    continue
                i += 2  # ESC + one char (e.g. ESC 7 / ESC 8): not used by tqdm
                continue
            if ch == "\r":
                self.col, self.wrap_pending = 0, False
            elif ch == "\n":
                self._linefeed()
                self.wrap_pending = False
            elif ch == "\b":
                self.col, self.wrap_pending = max(0, self.col - 1), False
            elif ch >= " ":
                if self.wrap_pending:
                    self.col, self.wrap_pending = 0, False
                    self._linefeed()
                self.lines[self.row][self.col] = ch
                if self.col == self.cols - 1:
                    self.wrap_pending = True
                else:
                    self.col += 1
            i += 1

    def _csi(self, params: str, final: str) -> None:
        if params.startswith("?"):
            return
        n = int(params.split(";")[0] or "0")
        self.wrap_pending = False
        if final == "A":
            self.row = max(0, self.row - max(1, n))
        elif final == "B":
            self.row = min(self.rows - 1, self.row + max(1, n))
        elif final == "C":
            self.col = min(self.cols - 1, self.col + max(1, n))
        elif final == "D":
            self.col = max(0, self.col - max(1, n))
        elif final == "K":
            line = self.lines[self.row]
            lo, hi = {0: (self.col, self.cols), 1: (0, self.col + 1), 2: (0, self.cols)}.get(n, (0, 0))
            line[lo:hi] = [" "] * (hi - lo)

    def text(self) -> List[str]:
        """Everything shown so far: the lines that scrolled off, then the screen (trailing blank lines dropped)."""
        out = self.scrolled + ["".join(line).rstrip() for line in self.lines]
        while out and not out[-1]:
            out.pop()
        return out


class PtyCli:
    """``python -m simclient.cli ARGS`` with stdin/stdout/stderr on a ``rows`` x ``cols`` pseudo-terminal."""

    def __init__(self, args: List[str], rows: int = 24, cols: int = 100):
        self.screen = Screen(rows, cols)
        self.raw = ""
        pid, fd = pty.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                os.chdir(REPO)
                os.execvpe(sys.executable, [sys.executable, "-m", "simclient.cli", *args], clean_env())
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self._pidfd = os.pidfd_open(pid)   # readable once the child exited (Linux, Python 3.9+)
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.returncode: Optional[int] = None

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:   # EIO: the child closed the terminal
            return False
        if not data:
            return False
        text = data.decode(errors="replace")
        self.raw += text
        self.screen.feed(text)
        return True

    def wait_for(self, predicate: Callable[["PtyCli"], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            if not self._read(min(0.1, max(0.0, deadline - time.monotonic()))):
                return predicate(self)
        return predicate(self)

    def type_ctrl_c(self) -> None:
        """What a user does: ^C on the terminal (the line discipline echoes "^C" and sends SIGINT)."""
        os.write(self.fd, b"\x03")

    def finish(self, timeout: float = 15.0) -> int:
        """Read until the child exits (SIGKILL after ``timeout``); its exit code."""
        deadline = time.monotonic() + timeout
        readable = True
        status = None
        while time.monotonic() < deadline:
            if readable:
                readable = self._read(0.05)
            else:  # the terminal is closed: wait for the exit itself
                select.select([self._pidfd], [], [], max(0.0, deadline - time.monotonic()))
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                status = st
                while readable and select.select([self.fd], [], [], 0)[0]:
                    readable = self._read(0)
                break
        if status is None:
            os.kill(self.pid, signal.SIGKILL)
            _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        os.close(self._pidfd)
        self.returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        return self.returncode
