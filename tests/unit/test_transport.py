"""simclient.transport against a real WebSocket server on loopback.

The read-ahead fast path (``Connection._recv_buffered``) cuts frames straight out of a 64 KiB buffer and leans on
websocket-client internals (``frame_buffer``, ``cont_frame``, ``_recv``); everything it does not handle falls back to
websocket-client's own parser, which then reads from the same buffer. These tests drive both through a small scripted
aiohttp server running in a background thread of this module: the test thread tells the server what to write (through
aiohttp, or as hand-built raw frames on ``request.transport``) and reads what the server received from a queue.
Every payload is compared byte for byte with what the server sent.

Synchronisation is by handshake only: ``_Server.call`` runs a step on the server loop and returns once it is done,
``_Peer.next`` takes the server's next received message from a ``queue.Queue``.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import queue
import random
import socket
import struct
import threading
from typing import Any, Callable, Iterator, List, Tuple

import psutil
import pytest

from simclient.transport import (
    OPCODE_BINARY,
    OPCODE_PING,
    OPCODE_PONG,
    OPCODE_TEXT,
    READ_AHEAD,
    Closed,
    Connection,
    TransportError,
)

pytest.importorskip("aiohttp")
from aiohttp import WSMsgType, web  # noqa: E402

OP_CONT, OP_CLOSE = 0x0, 0x8
WAIT = 5.0  # generous upper bound for anything that should happen at once on loopback
SHORT = 0.1  # a recv timeout that is meant to expire


# ================================================================================ frames and payloads


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """An unmasked server-to-client frame with the shortest length encoding (RFC 6455 §5.2)."""
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", b0, n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", b0, 126, n)
    else:
        header = struct.pack("!BBQ", b0, 127, n)
    return header + payload


def header_len(n: int) -> int:
    return 2 if n < 126 else 4 if n < 1 << 16 else 10


def text(n: int, shift: int = 0) -> bytes:
    """Exactly ``n`` bytes of valid UTF-8 with 1- to 4-byte characters (and JSON-ish punctuation)."""
    unit = "aé€😀 {\"}"[shift % 3:] + "aé€😀 {\"}"[:shift % 3]
    raw = unit.encode()
    body = (unit * (n // len(raw))).encode()
    return body + b"x" * (n - len(body))


def binary(n: int, seed: int = 0) -> bytes:
    return random.Random(seed * 1_000_003 + n).randbytes(n)


# ================================================================================ the scripted server


class _Peer:
    """The server's side of one accepted WebSocket; its methods are called from the test thread."""

    def __init__(self, server: "_Server", request: web.Request, ws: web.WebSocketResponse):
        self._server = server
        self.request = request
        self.ws = ws
        self.received: "queue.Queue[Tuple[WSMsgType, Any]]" = queue.Queue()
        self.echo = False  # send received text/binary messages back
        self.finished = threading.Event()  # the handler returned (the server is done with the socket)

    def write(self, raw: bytes) -> None:
        """Raw bytes straight onto the TCP transport (hand-built frames, half frames)."""
        self._server.call(self.request.transport.write, raw)

    def send_str(self, *texts: str) -> None:
        async def send() -> None:
            for t in texts:
                await self.ws.send_str(t)
        self._server.call(send)

    def send_bytes(self, *payloads: bytes) -> None:
        async def send() -> None:
            for p in payloads:
                await self.ws.send_bytes(p)
        self._server.call(send)

    def ping(self, payload: bytes) -> None:
        self._server.call(self.ws.ping, payload)

    def reset(self) -> None:
        """Abort the TCP connection with an RST (SO_LINGER 0), no close frame."""
        def rst() -> None:
            sock = self.request.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.request.transport.abort()
        self._server.call(rst)

    def eof(self) -> None:
        """Close the TCP connection (FIN) without a close frame."""
        self._server.call(self.request.transport.close)

    def next(self) -> Tuple[WSMsgType, Any]:
        """The next message the server received (type, data), in order."""
        try:
            return self.received.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError("the server received nothing") from None

    def wait_finished(self) -> None:
        assert self.finished.wait(WAIT), "the server never saw the connection end"


class _Server:
    """aiohttp on 127.0.0.1:0 in its own thread (not named ``simclient-*``: it is the test's, not the SDK's)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.peers: "queue.Queue[_Peer]" = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="test-transport-server", daemon=True)
        self._runner: Any = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` on the server loop (awaited if it returns an awaitable); return when it is done."""
        async def run() -> Any:
            result = fn(*args)
            if inspect.isawaitable(result):
                result = await result
            return result
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(WAIT)

    def start(self) -> None:
        self._thread.start()

        async def start() -> None:
            app = web.Application()
            app.router.add_get("/", self._handle)
            self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = self._runner.addresses[0][1]
        self.call(start)

    def stop(self) -> None:
        try:
            if self._runner is not None:
                self.call(self._runner.cleanup)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(WAIT)
            assert not self._thread.is_alive()

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False, compress=False, max_msg_size=16 << 20)
        await ws.prepare(request)
        peer = _Peer(self, request, ws)
        self.peers.put(peer)
        try:
            while True:
                msg = await ws.receive()
                peer.received.put((msg.type, msg.data))
                if msg.type is WSMsgType.PING:
                    await ws.pong(msg.data)  # what a server does (autoping is off so that the test sees the ping)
                elif peer.echo and msg.type is WSMsgType.TEXT:
                    await ws.send_str(msg.data)
                elif peer.echo and msg.type is WSMsgType.BINARY:
                    await ws.send_bytes(msg.data)
                elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
        finally:
            peer.finished.set()
        return ws


# ================================================================================ fixtures and helpers

MODES = ["fast", "read-ahead", "plain"]


def _set_mode(conn: Connection, mode: str) -> None:
    """fast: as shipped; read-ahead: websocket-client parses every frame from the read-ahead buffer;
    plain: websocket-client reads the socket itself (the fallback when its internals are not what we expect)."""
    assert conn._fast, "the fast path is off: websocket-client's internals changed"
    if mode != "fast":
        conn._fast = False
    if mode == "plain":
        conn._ws.frame_buffer.recv = conn._ws._recv
        conn._hooked = False  # what __init__ decides when it cannot hook the parser: per-socket read timeouts


def _client_sockets(laddr: Tuple[str, int]) -> list:
    proc = psutil.Process()
    conns = proc.net_connections(kind="inet") if hasattr(proc, "net_connections") else proc.connections(kind="inet")
    return [c for c in conns if tuple(c.laddr) == tuple(laddr) and c.status != psutil.CONN_TIME_WAIT]


def _laddr(conn: Connection) -> Tuple[str, int]:
    return conn._ws.sock.getsockname()  # type: ignore[union-attr]


def _is_mid_frame(conn: Connection) -> bool:
    """The connection holds part of a frame (or of a fragmented message) and waits for the rest: websocket-client's
    parser does, or the read-ahead buffer ends inside a frame that the frame cutter completes itself
    (``Connection._read_rest``)."""
    fb = conn._ws.frame_buffer
    return (fb.header is not None or bool(fb.recv_buffer) or conn._ws.cont_frame.cont_data is not None
            or conn._rpos < len(conn._rbuf))


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _open(server: _Server) -> Tuple[Connection, _Peer]:
    conn = Connection.open(server.url, None, timeout=WAIT)
    try:
        peer = server.peers.get(timeout=WAIT)
    except queue.Empty:
        conn.release()
        raise
    return conn, peer


@pytest.fixture
def link(server: _Server) -> Iterator[Tuple[Connection, _Peer]]:
    conn, peer = _open(server)
    try:
        yield conn, peer
    finally:
        conn.release()
        peer.wait_finished()


@pytest.fixture(params=MODES)
def mode_link(request: pytest.FixtureRequest, link: Tuple[Connection, _Peer]) -> Tuple[Connection, _Peer]:
    _set_mode(link[0], request.param)
    return link


def _recv_all(conn: Connection, count: int) -> List[Tuple[int, Any]]:
    out = []
    for _ in range(count):
        got = conn.recv(WAIT)
        assert got is not None, f"timed out after {len(out)} of {count} frames"
        out.append(got)
    return out


def _count_parser_calls(conn: Connection) -> List[int]:
    """Count the frames that went to websocket-client's parser (i.e. not served by the fast path)."""
    calls = [0]
    real = conn._ws.recv_data_frame

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return real(*args, **kwargs)
    conn._ws.recv_data_frame = counted  # type: ignore[method-assign]
    return calls


# ================================================================================ bursts of small frames


def test_fast_path_is_active_and_serves_a_burst_of_small_frames(link):
    conn, peer = link
    assert conn._fast
    calls = _count_parser_calls(conn)
    payloads = [text(i % 40, i) for i in range(500)]
    peer.write(b"".join(frame(OPCODE_TEXT, p) for p in payloads))
    assert _recv_all(conn, len(payloads)) == [(OPCODE_TEXT, p) for p in payloads]
    # 500 frames of < 42 bytes: a read or two, a frame cut by a read completed by the cutter (_read_rest)
    assert calls[0] == 0, f"{calls[0]} of 500 frames went to websocket-client's parser"


class _WithoutInternals:
    """A websocket-client WebSocket as a release that renamed the internals the fast path reads would look to
    Connection: no ``frame_buffer``, no ``cont_frame``; everything else is the real object's."""

    def __init__(self, ws: Any):
        object.__setattr__(self, "_real", ws)

    def __getattr__(self, name: str) -> Any:
        if name in ("frame_buffer", "cont_frame"):
            raise AttributeError(name)
        return getattr(self._real, name)


def test_connection_falls_back_to_plain_websocket_client_without_its_internals(link):
    """The fallback __init__ chooses when the private attributes are missing (setup.cfg pins websocket-client <2,
    the versions the fast path was tested on; this keeps the other path working for whatever comes later)."""
    conn, peer = link
    conn._ws.frame_buffer.recv = conn._ws._recv  # undo the hook the shipped Connection installed on this socket
    plain = Connection(_WithoutInternals(conn._ws), conn.url)
    assert not plain._hooked and not plain._fast
    calls = _count_parser_calls(plain)
    rng = random.Random(3)
    payloads = [text(rng.choice([0, 5, 125, 126, 1000, 70_000]), i) for i in range(300)]
    burst = [frame(OPCODE_TEXT, p) for p in payloads]
    burst.insert(150, frame(OPCODE_PING, b"mid"))
    peer.write(b"".join(burst))
    got = _recv_all(plain, len(payloads) + 1)
    assert got.pop(150) == (OPCODE_PING, b"")
    assert got == [(OPCODE_TEXT, p) for p in payloads]
    assert calls[0] == len(payloads) + 1  # every frame through websocket-client's own parser
    assert peer.next() == (WSMsgType.PONG, b"mid")
    assert plain.recv(SHORT) is None  # a timeout with nothing sent is still None


def test_many_small_text_frames_in_one_burst(mode_link):
    conn, peer = mode_link
    rng = random.Random(7)
    # lengths around both encoding boundaries; ~230 KiB in all, so frames straddle 64 KiB reads
    lengths = [rng.choice([0, 1, 2, 3, 124, 125, 126, 127, 200, 1000]) for _ in range(1500)]
    payloads = [text(n, i) for i, n in enumerate(lengths)]
    peer.write(b"".join(frame(OPCODE_TEXT, p) for p in payloads))  # one write: one burst
    got = _recv_all(conn, len(payloads))
    for i, (g, p) in enumerate(zip(got, payloads)):
        assert g == (OPCODE_TEXT, p), f"frame {i} (length {len(p)}) differs"
    assert conn.recv(SHORT) is None  # nothing left over, nothing invented


def test_many_small_frames_sent_by_aiohttp(mode_link):
    conn, peer = mode_link
    texts = [f'{{"jsonrpc":"2.0","method":"n","params":{{"seq":{i},"pad":"{"é" * (i % 90)}"}}}}' for i in range(800)]
    blobs = [binary(i % 300, i) for i in range(800)]
    peer.send_str(*texts)
    peer.send_bytes(*blobs)
    got = _recv_all(conn, len(texts) + len(blobs))
    assert got == [(OPCODE_TEXT, t.encode()) for t in texts] + [(OPCODE_BINARY, b) for b in blobs]


# ================================================================================ batches (recv_many)


def _recv_many_all(conn: Connection, count: int) -> Tuple[List[Tuple[int, Any]], List[int]]:
    """``count`` frames read with ``recv_many``, and the size of each batch."""
    out: List[Tuple[int, Any]] = []
    sizes: List[int] = []
    while len(out) < count:
        batch = conn.recv_many(WAIT)
        assert batch, f"timed out after {len(out)} of {count} frames"
        out.extend(batch)
        sizes.append(len(batch))
    assert len(out) == count, f"{len(out) - count} frames more than were sent"
    return out, sizes


def _mixed_burst() -> Tuple[bytes, List[Tuple[int, bytes]], int]:
    """Raw frames of every kind the reader meets, and what ``recv`` gives for them, and the pings in it."""
    rng = random.Random(11)
    raws: List[bytes] = []
    want: List[Tuple[int, bytes]] = []
    pings = 0
    for i in range(1200):
        roll = rng.random()
        if roll < 0.03:
            raws.append(frame(OPCODE_PING, b"p%d" % i))
            want.append((OPCODE_PING, b""))
            pings += 1
        elif roll < 0.05:
            raws.append(frame(OPCODE_PONG, b"q%d" % i))
            want.append((OPCODE_PONG, b"q%d" % i))
        elif roll < 0.07:  # a message in three fragments
            msg = text(rng.choice([10, 300, 5000]), i)
            raws += [frame(OPCODE_TEXT, msg[:3], fin=False), frame(OP_CONT, msg[3:7], fin=False),
                     frame(OP_CONT, msg[7:])]
            want.append((OPCODE_TEXT, msg))
        else:
            n = rng.choice([0, 1, 125, 126, 127, 1449, 1449, 1449, 4000, 70_000])
            opcode = OPCODE_TEXT if rng.random() < 0.8 else OPCODE_BINARY
            payload = text(n, i) if opcode == OPCODE_TEXT else binary(n, i)
            raws.append(frame(opcode, payload))
            want.append((opcode, payload))
    return b"".join(raws), want, pings


def test_recv_many_gives_what_recv_gives_in_the_same_order(mode_link):
    conn, peer = mode_link
    raw, want, pings = _mixed_burst()
    peer.write(raw)
    got, sizes = _recv_many_all(conn, len(want))
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"frame {i} differs: {g!r:.60} != {w!r:.60}"
    assert conn.recv_many(SHORT) == []  # nothing left over, nothing invented; a timeout is an empty batch
    assert not _is_mid_frame(conn)
    assert len([peer.next() for _ in range(pings)]) == pings  # every ping answered
    if conn._fast:  # the point of the batch: the buffered data frames cut in one pass
        assert max(sizes) >= 20 and len(sizes) < len(want) / 2, sizes
    else:
        assert max(sizes) == 1  # websocket-client's parser: one frame per call, as recv


def test_recv_many_stops_at_a_partial_frame_and_completes_it_on_the_next_call(link):
    conn, peer = link
    payloads = [text(1449, i) for i in range(5)]
    raw = b"".join(frame(OPCODE_TEXT, p) for p in payloads)
    cut = len(raw) - 700  # inside the last frame
    peer.write(raw[:cut])
    first, _ = _recv_many_all(conn, 4)
    assert first == [(OPCODE_TEXT, p) for p in payloads[:4]]
    assert _is_mid_frame(conn)
    assert conn.recv_many(SHORT) == []  # the partial frame is kept, not returned
    peer.write(raw[cut:])
    assert conn.recv_many(WAIT) == [(OPCODE_TEXT, payloads[4])]


def test_recv_many_of_a_connection_with_a_key_scrubs_every_frame(server):
    key = "k3y-\"quoted\"-0123"
    conn = Connection.open(server.url, key, timeout=WAIT)
    try:
        peer = server.peers.get(timeout=WAIT)
        assert conn._fast
        escaped = json.dumps(key)[1:-1].encode()
        payloads = [b'{"n":%d,"echo":"%s"}' % (i, escaped if i % 3 == 0 else b"nothing") for i in range(300)]
        payloads[7] = b"raw " + key.encode() + b" raw"
        peer.write(b"".join(frame(OPCODE_TEXT, p) for p in payloads))
        got, sizes = _recv_many_all(conn, len(payloads))
        assert max(sizes) > 1
        assert [g[1] for g in got] == [p.replace(escaped, b"***").replace(key.encode(), b"***") for p in payloads]
        assert all(key.encode() not in g[1] and escaped not in g[1] for g in got)
        peer.write(frame(OPCODE_TEXT, b"single " + key.encode()))
        assert conn.recv(WAIT) == (OPCODE_TEXT, b"single ***")
    finally:
        conn.release()


# ================================================================================ length encodings

SIZES = [0, 125, 126, 65535, 65536, 1 << 20 | 3,
         READ_AHEAD - 4, READ_AHEAD - 3, READ_AHEAD, READ_AHEAD + 1]  # whole frame == one read, one byte over


@pytest.mark.parametrize("opcode", [OPCODE_TEXT, OPCODE_BINARY], ids=["text", "binary"])
def test_frame_lengths_raw_in_one_burst(mode_link, opcode):
    conn, peer = mode_link
    payloads = [text(n) if opcode == OPCODE_TEXT else binary(n) for n in SIZES]
    raws = [frame(opcode, p) for p in payloads]
    for n, raw in zip(SIZES, raws):  # the encoding under test: 7-bit, 16-bit, 64-bit
        assert len(raw) == n + header_len(n)
        assert raw[1] == (n if n < 126 else 126 if n < 65536 else 127)
    peer.write(b"".join(raws))
    for n, p in zip(SIZES, payloads):
        got = conn.recv(WAIT)
        assert got is not None and got[0] == opcode and type(got[1]) is bytes, f"length {n}: {got!r:.80}"
        assert len(got[1]) == n and got[1] == p, f"length {n}: payload differs"


@pytest.mark.parametrize("opcode", [OPCODE_TEXT, OPCODE_BINARY], ids=["text", "binary"])
def test_frame_lengths_sent_one_by_one_by_aiohttp(mode_link, opcode):
    conn, peer = mode_link
    for n in SIZES:
        if opcode == OPCODE_TEXT:
            p = text(n, n)
            peer.send_str(p.decode())
        else:
            p = binary(n, 1)
            peer.send_bytes(p)
        got = conn.recv(WAIT)
        assert got is not None and got[0] == opcode and len(got[1]) == n and got[1] == p, f"length {n}"


@pytest.mark.parametrize("n", [0, 125, 126, 65536, 1 << 20])
def test_sent_frames_reach_the_server_and_echo_back_intact(link, n):
    conn, peer = link
    peer.echo = True
    t = text(n, 2).decode()
    conn.send_text(t)
    kind, data = peer.next()
    assert kind is WSMsgType.TEXT and data == t
    assert conn.recv(WAIT) == (OPCODE_TEXT, t.encode())


# ================================================================================ fragmented messages


def test_fragmented_messages_with_continuation_frames(mode_link):
    conn, peer = mode_link
    msg1 = "héllo wörld €😀".encode()
    msg2 = binary(210_000, 3)
    burst = [
        frame(OPCODE_TEXT, b"before"),
        # text in three fragments, cut inside a multi-byte character
        frame(OPCODE_TEXT, msg1[:2], fin=False), frame(OP_CONT, msg1[2:9], fin=False), frame(OP_CONT, msg1[9:]),
        # binary: an empty first fragment, a ping between fragments, 16- and 64-bit fragment lengths
        frame(OPCODE_BINARY, b"", fin=False),
        frame(OP_CONT, msg2[:300], fin=False),
        frame(OPCODE_PING, b"mid-message"),
        frame(OP_CONT, msg2[300:100_000], fin=False),
        frame(OP_CONT, msg2[100_000:]),
        # single-frame messages right after: the fast path takes over again
        frame(OPCODE_TEXT, b"after"),
        frame(OPCODE_BINARY, b"\x81\x7e\x00"),
    ]
    peer.write(b"".join(burst))
    assert _recv_all(conn, 6) == [
        (OPCODE_TEXT, b"before"),
        (OPCODE_TEXT, msg1),
        (OPCODE_PING, b""),
        (OPCODE_BINARY, msg2),
        (OPCODE_TEXT, b"after"),
        (OPCODE_BINARY, b"\x81\x7e\x00"),
    ]
    assert peer.next() == (WSMsgType.PONG, b"mid-message")


def test_recv_timeout_between_fragments(mode_link):
    conn, peer = mode_link
    msg = text(5000, 1)
    peer.write(frame(OPCODE_TEXT, msg[:1000], fin=False) + frame(OP_CONT, msg[1000:1500], fin=False))
    assert conn.recv(SHORT) is None
    assert _is_mid_frame(conn)
    peer.write(frame(OP_CONT, msg[1500:]) + frame(OPCODE_TEXT, b"next"))
    assert _recv_all(conn, 2) == [(OPCODE_TEXT, msg), (OPCODE_TEXT, b"next")]


# ================================================================================ pings and pongs


def test_server_pings_interleaved_with_data_are_answered(mode_link):
    conn, peer = mode_link
    big = binary(70_000, 5)
    burst = [
        frame(OPCODE_TEXT, b"one"),
        frame(OPCODE_PING, b"p1"),
        frame(OPCODE_BINARY, b"\x00\x01\x02"),
        frame(OPCODE_PING, b""),
        frame(OPCODE_PING, bytes(range(125))),
        frame(OPCODE_BINARY, big),
        frame(OPCODE_PING, b"p4"),
        frame(OPCODE_TEXT, b"two"),
    ]
    peer.write(b"".join(burst))
    assert _recv_all(conn, 8) == [
        (OPCODE_TEXT, b"one"),
        (OPCODE_PING, b""),
        (OPCODE_BINARY, b"\x00\x01\x02"),
        (OPCODE_PING, b""),
        (OPCODE_PING, b""),
        (OPCODE_BINARY, big),
        (OPCODE_PING, b""),
        (OPCODE_TEXT, b"two"),
    ]
    assert [peer.next() for _ in range(4)] == [
        (WSMsgType.PONG, b"p1"), (WSMsgType.PONG, b""), (WSMsgType.PONG, bytes(range(125))), (WSMsgType.PONG, b"p4")]


def test_server_pings_sent_by_aiohttp(mode_link):
    conn, peer = mode_link
    peer.send_str("a")
    peer.ping(b"hb-1")
    peer.send_str("b")
    assert _recv_all(conn, 3) == [(OPCODE_TEXT, b"a"), (OPCODE_PING, b""), (OPCODE_TEXT, b"b")]
    assert peer.next() == (WSMsgType.PONG, b"hb-1")


@pytest.mark.parametrize("payload", [b"", b"barrier-17", bytes(range(125))], ids=["empty", "short", "125"])
def test_pong_answers_connection_ping_with_the_same_payload(mode_link, payload):
    conn, peer = mode_link
    conn.ping(payload)
    assert peer.next() == (WSMsgType.PING, payload)
    assert conn.recv(WAIT) == (OPCODE_PONG, payload)


def test_pongs_interleaved_with_data(mode_link):
    conn, peer = mode_link
    peer.write(frame(OPCODE_TEXT, b"x") + frame(OPCODE_PONG, b"unsolicited") + frame(OPCODE_TEXT, b"y"))
    conn.ping(b"asked")
    assert _recv_all(conn, 4) == [
        (OPCODE_TEXT, b"x"), (OPCODE_PONG, b"unsolicited"), (OPCODE_TEXT, b"y"), (OPCODE_PONG, b"asked")]


def test_automatic_pong_is_not_written_into_a_frame_another_thread_is_sending(link):
    """``send_*`` may be called from any thread while the reader answers pings. A frame can go out in several
    socket writes (the kernel takes what fits in its buffer); the reader's pong must not land between them."""
    conn, peer = link
    ws = conn._ws
    real_send = ws._send
    reader = threading.get_ident()
    sender_mid_frame = threading.Event()
    reader_wrote = threading.Event()
    paused = []

    def send(data: bytes) -> int:
        if threading.current_thread().name == "test-sender" and not paused:
            paused.append(True)
            n = real_send(data[: len(data) // 2])  # a partial write, as with a full socket buffer
            sender_mid_frame.set()
            # A pong that is not held back arrives here at once; one that is held back cannot arrive before the
            # sender goes on, so this bounded wait only decides how long to give the reader to get it wrong.
            reader_wrote.wait(0.5)
            return n
        if threading.get_ident() == reader:
            reader_wrote.set()
        return real_send(data)

    ws._send = send  # type: ignore[method-assign]
    big = text(200_000, 1).decode()
    peer.write(frame(OPCODE_PING, b"hb"))
    errors: "queue.Queue[BaseException]" = queue.Queue()

    def sender() -> None:
        try:
            conn.send_text(big)
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            errors.put(exc)

    t = threading.Thread(target=sender, name="test-sender")
    t.start()
    try:
        assert sender_mid_frame.wait(WAIT)
        assert conn.recv(WAIT) == (OPCODE_PING, b"")  # answered with a pong while the text frame is half written
    finally:
        t.join(WAIT)
    assert not t.is_alive() and errors.empty()
    kind, data = peer.next()
    assert kind is WSMsgType.TEXT and data == big, f"server got {kind}: {data!r:.120}"
    assert peer.next() == (WSMsgType.PONG, b"hb")


# ================================================================================ timeouts in the middle of a frame


@pytest.mark.parametrize("length", [20, 300, 70_000], ids=["7bit", "16bit", "64bit"])
def test_recv_timeout_in_the_middle_of_a_frame(mode_link, length):
    conn, peer = mode_link
    hl = header_len(length)
    for opcode in (OPCODE_TEXT, OPCODE_BINARY):
        payload = text(length, 1) if opcode == OPCODE_TEXT else binary(length, 2)
        raw = frame(opcode, payload)
        # inside the 2-byte header, inside the extended length, right after the header, inside the payload
        cuts = sorted({c for c in (1, 2, 3, hl - 1, hl, hl + 1, hl + length // 2, len(raw) - 1) if 0 < c < len(raw)})
        for cut in cuts:
            peer.write(frame(OPCODE_TEXT, b"before") + raw[:cut])
            assert conn.recv(WAIT) == (OPCODE_TEXT, b"before")
            assert conn.recv(SHORT) is None, f"cut {cut}"
            assert _is_mid_frame(conn), f"cut {cut}: the half frame was not read before the timeout"
            peer.write(raw[cut:] + frame(OPCODE_TEXT, b"after"))
            got = conn.recv(WAIT)
            assert got is not None and got[0] == opcode and got[1] == payload, f"cut {cut}: frame differs"
            assert conn.recv(WAIT) == (OPCODE_TEXT, b"after"), f"cut {cut}"


@pytest.mark.parametrize("length", [20, 1_449, 60_000, 100_000], ids=["7bit", "16bit", "16bit-big", "64bit"])
def test_a_frame_that_straddles_a_read_is_cut_whole_without_websocket_clients_parser(link, length):
    """Connection._read_rest: the read-ahead ends inside a data frame; the cutter reads the rest itself (the
    transaction stream about one 1.4 KB frame in 45 straddles a 64 KiB read). websocket-client's parser is unused."""
    conn, peer = link
    assert conn._fast

    def parser_unused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("websocket-client's parser was asked for a frame the cutter can take")
    conn._ws.recv_data_frame = parser_unused
    payload = text(length, 2)
    raw = frame(OPCODE_TEXT, payload)
    for cut in (1, 3, len(raw) // 2, len(raw) - 1):
        peer.write(frame(OPCODE_TEXT, b"before") + raw[:cut])
        assert conn.recv(WAIT) == (OPCODE_TEXT, b"before")
        assert conn.recv(SHORT) is None  # the rest is late: a timeout, the part read so far kept
        peer.write(raw[cut:] + frame(OPCODE_BINARY, b"after"))
        assert conn.recv(WAIT) == (OPCODE_TEXT, payload), f"cut {cut}"
        assert conn.recv(WAIT) == (OPCODE_BINARY, b"after")


def test_recv_timeout_with_nothing_sent(mode_link):
    conn, peer = mode_link
    assert conn.recv(SHORT) is None
    peer.send_str("late")
    assert conn.recv(None) == (OPCODE_TEXT, b"late")


# ================================================================================ close, reset, release


@pytest.mark.parametrize("code,terminal", [(4001, True), (4999, True), (1000, False), (1001, False), (3000, False)])
def test_close_frame_raises_closed_with_its_code(mode_link, code, terminal):
    conn, peer = mode_link
    laddr = _laddr(conn)
    peer.write(frame(OPCODE_TEXT, b"last words") + frame(OP_CLOSE, struct.pack("!H", code) + b"go away"))
    assert conn.recv(WAIT) == (OPCODE_TEXT, b"last words")
    with pytest.raises(Closed) as info:
        conn.recv(WAIT)
    assert isinstance(info.value, TransportError)
    assert info.value.close_code == code
    assert info.value.terminal is terminal
    assert peer.next() == (WSMsgType.CLOSE, 1000)  # websocket-client answered the close frame
    conn.close()
    peer.wait_finished()
    assert not _client_sockets(laddr)


@pytest.mark.parametrize("how", ["rst", "rst-mid-frame", "fin", "fin-mid-frame"])
def test_connection_lost_raises_transport_error(mode_link, how):
    conn, peer = mode_link
    laddr = _laddr(conn)
    peer.write(frame(OPCODE_TEXT, b"before"))
    assert conn.recv(WAIT) == (OPCODE_TEXT, b"before")
    if how.endswith("mid-frame"):
        peer.write(frame(OPCODE_BINARY, binary(1000))[:500])
        assert conn.recv(SHORT) is None
        assert _is_mid_frame(conn)
    if how.startswith("rst"):
        peer.reset()
    else:
        peer.eof()
    with pytest.raises(TransportError) as info:
        conn.recv(WAIT)
    assert not isinstance(info.value, Closed)
    assert info.value.close_code is None and not info.value.terminal
    if how.startswith("rst"):
        assert "ConnectionResetError" in str(info.value)
    with pytest.raises(TransportError):  # and it stays lost
        conn.recv(SHORT)
    conn.close()
    peer.wait_finished()
    assert not _client_sockets(laddr)


def test_close_runs_the_close_handshake_and_releases_the_socket(server):
    conn, peer = _open(server)
    laddr = _laddr(conn)
    assert _client_sockets(laddr)  # the check below can see this socket
    peer.write(frame(OPCODE_TEXT, b"x") + frame(OPCODE_TEXT, b"y")[:2])  # leave a half frame in the buffer
    assert conn.recv(WAIT) == (OPCODE_TEXT, b"x")
    conn.close(timeout=WAIT)
    assert peer.next() == (WSMsgType.CLOSE, 1000)
    peer.wait_finished()
    assert conn._ws.sock is None
    assert not _client_sockets(laddr)
    conn.close()  # idempotent
    conn.release()
    with pytest.raises(TransportError):
        conn.recv(SHORT)


def test_release_drops_the_socket_without_a_close_frame(server):
    conn, peer = _open(server)
    laddr = _laddr(conn)
    peer.send_str("hello")
    assert conn.recv(WAIT) == (OPCODE_TEXT, b"hello")
    conn.release()
    kind, _ = peer.next()
    assert kind in (WSMsgType.CLOSED, WSMsgType.ERROR)  # the connection just ended: no CLOSE
    peer.wait_finished()
    assert not _client_sockets(laddr)
    conn.release()  # idempotent
    conn.close()


def test_abort_wakes_a_blocked_reader(link):
    conn, peer = link
    laddr = _laddr(conn)
    results: "queue.Queue[Any]" = queue.Queue()
    started = threading.Event()

    def read() -> None:
        started.set()
        try:
            results.put(conn.recv(None))
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            results.put(exc)

    t = threading.Thread(target=read, name="test-reader")
    t.start()
    try:
        assert started.wait(WAIT)
        conn.abort()
        got = results.get(timeout=WAIT)
    finally:
        t.join(WAIT)
    assert isinstance(got, TransportError) and not isinstance(got, Closed), got
    conn.close()
    peer.wait_finished()
    assert not _client_sockets(laddr)


# ================================================================================ sends have their own deadline


def _pause_reading(peer: _Peer, seconds: float) -> None:
    """The server stops reading the socket for ``seconds`` (the client's send buffer fills)."""
    def pause() -> None:
        transport = peer.request.transport
        transport.pause_reading()
        asyncio.get_running_loop().call_later(seconds, transport.resume_reading)
    peer._server.call(pause)


def test_a_large_send_outlasts_the_readers_short_poll(link):
    conn, peer = link
    big = "x" * (12 << 20)  # far more than the loopback buffers hold while the server does not read
    stop = threading.Event()
    polls: List[Any] = []

    def read() -> None:  # the reader thread polls with a short timeout meanwhile, as the control reader does
        while not stop.is_set():
            polls.append(conn.recv(0.05))

    _pause_reading(peer, 1.0)
    t = threading.Thread(target=read, name="test-reader")
    t.start()
    try:
        conn.send_text(big)  # blocks until the server reads again; must not fail on the reader's 0.05 s
    finally:
        stop.set()
        t.join(WAIT)
    assert not t.is_alive()
    assert len(polls) >= 5 and all(p is None for p in polls), "the reader kept polling (and timing out) meanwhile"
    kind, data = peer.next()
    assert kind is WSMsgType.TEXT and len(data) == len(big)


def test_a_send_that_makes_no_progress_raises_send_timeout(server):
    from simclient.transport import SendTimeout

    conn = Connection.open(server.url, None, timeout=WAIT, send_timeout=0.3)
    peer = server.peers.get(timeout=WAIT)
    try:
        _pause_reading(peer, 3.0)
        with pytest.raises(SendTimeout, match="not reading"):
            conn.send_text("y" * (12 << 20))
        assert conn.recv(SHORT) is None  # reads keep their own deadline
    finally:
        conn.release()
        peer.wait_finished()
