"""simclient.framelog without sockets: what one frame record shows, and that nothing is formatted when it is off."""
from __future__ import annotations

import logging
from typing import Any, List, Optional, Tuple

import pytest

from simclient import ClientConfig, CreateSession
from simclient import framelog
from simclient.control import ControlConnection
from simclient.protocol import dumps
from simclient.framelog import FRAMES_LOGGER, FrameLoggingConnection, describe, frame_logging_factory
from simclient.transport import OPCODE_BINARY, OPCODE_PONG, OPCODE_TEXT, secret_scrubber

KEY = "sk-unit-0123456789abcdef"


class _Inner:
    def __init__(self, frames: List[Tuple[int, Any]]):
        self.frames = list(frames)
        self.sent: List[str] = []

    def send_json(self, obj: Any) -> None:
        self.send_text("json:" + dumps(obj))

    def send_text(self, text: str) -> None:
        self.sent.append(text)

    def recv(self, timeout: Optional[float]) -> Optional[Tuple[int, Any]]:
        return self.frames.pop(0) if self.frames else None

    def ping(self, payload: bytes = b"") -> None:
        self.sent.append(f"ping:{payload!r}")

    def close(self, timeout: float = 1.0) -> None:
        pass

    def abort(self) -> None:
        pass

    def release(self) -> None:
        pass


def test_long_text_is_cut_after_masking_so_no_part_of_the_key_shows_at_the_cut() -> None:
    text = "x" * (framelog.MAX_TEXT_CHARS - 5) + KEY + "y" * 100
    out = describe(OPCODE_TEXT, text, secret_scrubber(KEY))
    assert out.startswith(f"text {len(text)}B xxx")
    assert KEY[:5] not in out and out.endswith(" more characters)")
    assert "***" in out


def test_binary_shows_length_and_a_masked_hex_prefix() -> None:
    data = bytes(range(8)) + KEY.encode() + bytes(100)
    out = describe(OPCODE_BINARY, data, secret_scrubber(KEY))
    assert out.startswith(f"binary {len(data)}B 0001020304050607{b'***'.hex()}")
    assert out.endswith("...") and KEY.encode().hex()[:16] not in out
    assert describe(OPCODE_PONG, b"token") == "pong 5B"


def test_each_direction_is_logged_and_send_json_serialises_once(caplog) -> None:
    caplog.set_level(logging.DEBUG, logger=FRAMES_LOGGER)
    inner = _Inner([(OPCODE_TEXT, b'{"method":"success","echo":"' + KEY.encode() + b'"}')])
    opened: List[Tuple[str, Optional[str]]] = []

    def factory(url: str, api_key: Optional[str], timeout: float) -> Any:
        opened.append((url, api_key))
        return inner

    logged = frame_logging_factory(factory, KEY)
    assert frame_logging_factory(logged, KEY) is logged  # never wrapped twice
    conn = logged("ws://h:1/backtest/abc", None, 1.0)
    assert isinstance(conn, FrameLoggingConnection) and opened == [("ws://h:1/backtest/abc", None)]
    conn.send_json({"method": "x", "key": KEY})
    assert inner.sent == ['{"method":"x","key":"' + KEY + '"}']  # the wire is untouched
    assert conn.recv(0.1) is not None and conn.recv(0.1) is None
    conn.ping(b"t")
    lines = [r.getMessage() for r in caplog.records]
    label = conn.label
    assert label.startswith("subscription#")
    assert lines == [f"* {label} open ws://h:1/backtest/abc",
                     f'> {label} text {len(inner.sent[0])}B {{"method":"x","key":"***"}}',
                     f'< {label} text {28 + len(KEY) + 2}B {{"method":"success","echo":"***"}}',
                     f"> {label} ping 1B"]


class _BatchInner(_Inner):
    """A connection that reads in batches (as simclient.transport.Connection does)."""

    def recv_many(self, timeout: Optional[float]) -> List[Tuple[int, Any]]:
        batch, self.frames = self.frames[:3], self.frames[3:]
        return batch


@pytest.mark.parametrize("inner_kind", [_Inner, _BatchInner])
def test_every_frame_of_a_batch_is_logged(caplog, inner_kind) -> None:
    """Readers take whole batches (reconnect.batch_reader): each frame of one is logged, from an inner connection
    with recv_many and from one with recv only."""
    caplog.set_level(logging.DEBUG, logger=FRAMES_LOGGER)
    frames = [(OPCODE_TEXT, b'{"n":%d}' % i) for i in range(5)]
    conn = FrameLoggingConnection(inner_kind(frames), "subscription#9")
    got = conn.recv_many(0.1) + conn.recv_many(0.1)
    assert got == frames[:3] + frames[3:] if inner_kind is _BatchInner else got == frames[:2]
    assert conn.recv_many(0.1) == ([] if inner_kind is _BatchInner else [(OPCODE_TEXT, b'{"n":2}')])
    lines = [r.getMessage() for r in caplog.records]
    logged = len(frames) if inner_kind is _BatchInner else 3
    assert lines == [f"< subscription#9 text 7B {{\"n\":{i}}}" for i in range(logged)]


def test_logger_not_at_debug_formats_nothing(caplog, monkeypatch) -> None:
    caplog.set_level(logging.INFO, logger=FRAMES_LOGGER)

    def boom(*a: Any, **k: Any) -> str:
        raise AssertionError("formatted a frame with DEBUG off")

    monkeypatch.setattr(framelog, "describe", boom)
    inner = _Inner([(OPCODE_TEXT, b"{}")])
    conn = frame_logging_factory(lambda u, k, t: inner, KEY)("ws://h/backtest", KEY, 1.0)
    conn.send_json({"a": 1})
    conn.recv(0.1)
    conn.ping()
    assert caplog.records == []
    assert inner.sent == ['json:{"a":1}', "ping:b''"]  # DEBUG off: straight through, not even serialised twice


@pytest.mark.parametrize("on", [False, True])
def test_the_factory_is_wrapped_only_when_log_frames_is_on(on: bool) -> None:
    def factory(url: str, api_key: Optional[str], timeout: float) -> Any:  # pragma: no cover - never called
        raise AssertionError

    cc = ControlConnection("ws://127.0.0.1:1/backtest", KEY, ClientConfig(log_frames=on),
                           CreateSession(start_slot=1, slot_count=1), parallel=False, connection_factory=factory)
    assert (cc.connection_factory is factory) is (not on)


def test_log_frames_must_be_a_bool() -> None:
    with pytest.raises(ValueError, match="log_frames"):
        ClientConfig(log_frames=1)  # type: ignore[arg-type]
