"""The local simulator's zstd data plane (PROTOCOL §9.4), read with a raw websocket-client and zstandard (no SDK):
Binary frames of one streaming compressor per socket that decode frame by frame, in order, each to exactly one
message; a new socket starts a new stream; acks and end markers per the dialect's reading; a plain subscription on
the same socket stays Text."""
from __future__ import annotations

import json
from typing import Any, Dict, List, Tuple

import pytest
import websocket

from simclient.local import DIALECTS

from .rawclient import control, create, data_ws, recv_until, send, session_id_of, until_method

zstandard = pytest.importorskip("zstandard")

TEXT, BINARY, CLOSE = websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY, websocket.ABNF.OPCODE_CLOSE


def read_all(ws: websocket.WebSocket) -> List[Tuple[int, bytes]]:
    """Every data frame until the close frame: (opcode, payload)."""
    out = []
    while True:
        opcode, frame = ws.recv_data_frame(True)
        if opcode == CLOSE:
            ws.shutdown()
            return out
        if opcode in (TEXT, BINARY):
            out.append((opcode, bytes(frame.data)))


def decode_frames(frames: List[Tuple[int, bytes]]) -> List[Tuple[int, Dict[str, Any]]]:
    """Binary frames through one decompressor, in order, each to exactly one JSON message; Text as is."""
    d = zstandard.ZstdDecompressor().decompressobj()  # block-flushed stream: one zstd frame for the whole socket
    out = []
    for opcode, payload in frames:
        text = d.decompress(payload) if opcode == BINARY else payload
        out.append((opcode, json.loads(text)))
    return out


def _subscribe_raw(sub: websocket.WebSocket, rid: int, method: str, params: List[Any]) -> None:
    sub.send(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}))


@pytest.mark.parametrize("ack, eos", [("text", "zstd"), ("zstd", "text")])
def test_notifications_are_binary_frames_of_one_stream_per_socket(make_sim, ack, eos) -> None:
    sim = make_sim(dialect=DIALECTS["evidenced"].with_(zstd_ack=ack, zstd_eos=eos))
    chain = sim.chain
    start, end = sim.first_slot, sim.first_slot + 30
    progs = sim.program_ids[:2]
    ws = control(sim)
    try:
        sid = session_id_of(create(ws, startSlot=start, endSlot=end))
        sub = data_ws(sim, sid)
        _subscribe_raw(sub, 1, "transactionSubscribe", [{"programs": progs}, {"compression": "zstd"}])
        _subscribe_raw(sub, 2, "accountDiffSubscribe", [{"address": progs[0], "address_type": "program"}, {}])
        first = sub.recv_data_frame(True)  # the zstd ack, before the second subscribe's (one reader, in order)
        assert first[0] == (BINARY if ack == "zstd" else TEXT)
        second = sub.recv_data_frame(True)
        assert second[0] == TEXT  # the plain subscription's ack
        send(ws, "continue", {"advanceCount": end - start + 1})
        recv_until(ws, until_method("completed"))
        frames = [(first[0], bytes(first[1].data)), (second[0], bytes(second[1].data))] + read_all(sub)
    finally:
        ws.close()
    decoded = decode_frames(frames)
    assert decoded[0][1] == {"jsonrpc": "2.0", "id": 1, "result": 1}
    assert decoded[1][1] == {"jsonrpc": "2.0", "id": 2, "result": 2}
    txs = [(op, m) for op, m in decoded if m.get("method") == "transactionNotification"]
    diffs = [(op, m) for op, m in decoded if m.get("method") == "accountDiffNotification"]
    ends = {m["params"]["subscription"]: op for op, m in decoded if m.get("method") == "subscriptionComplete"}
    assert [m["params"]["result"]["value"] for _, m in txs] == chain.transactions(start, end, progs)
    assert {op for op, _ in txs} == {BINARY}                     # the compressed subscription: Binary
    assert [m["params"]["result"] for _, m in diffs] == chain.account_diffs(start, end, [progs[0]])
    assert {op for op, _ in diffs} == {TEXT}                     # the plain one on the same socket: Text
    assert ends == {1: BINARY if eos == "zstd" else TEXT, 2: TEXT}
    assert sim.stats["zstd_frames_sent"] == len(txs) + (ack == "zstd") + (eos == "zstd")


def test_a_new_socket_starts_a_new_stream_and_the_replay_is_compressed(make_sim) -> None:
    sim = make_sim()
    chain = sim.chain
    start, end = sim.first_slot, sim.first_slot + 40
    mid = next(s for s in range(start + 10, end) if chain.tx_count(s) > 1)
    ws = control(sim)
    try:
        sid = session_id_of(create(ws, startSlot=start, endSlot=end))
        one = data_ws(sim, sid)
        _subscribe_raw(one, 1, "transactionSubscribe", [{}, {"compression": "zstd"}])
        assert one.recv_data_frame(True)[0] == TEXT
        send(ws, "continue", {"advanceCount": mid - start + 1})
        recv_until(ws, until_method("readyForContinue"))
        live = []
        d1 = zstandard.ZstdDecompressor().decompressobj()
        while len(live) < len(chain.transactions(start, mid)):
            opcode, frame = one.recv_data_frame(True)
            assert opcode == BINARY
            live.append(json.loads(d1.decompress(frame.data)))
        one.close()
        # a second socket replays from `mid` through a compressor of its own: its first frame opens a zstd frame
        two = data_ws(sim, sid)
        _subscribe_raw(two, 1, "transactionSubscribe", [{}, {"compression": "zstd", "replayFromSlot": mid}])
        assert two.recv_data_frame(True)[0] == TEXT
        replay = chain.transactions(mid, mid)
        frames = [bytes(two.recv_data_frame(True)[1].data) for _ in replay]
        assert frames[0][:4] == b"\x28\xb5\x2f\xfd"   # the zstd magic: a new stream
        d2 = zstandard.ZstdDecompressor().decompressobj()
        assert [json.loads(d2.decompress(f))["params"]["result"]["value"] for f in frames] == replay
        with pytest.raises(zstandard.ZstdError):      # the old socket's decompressor cannot read it
            d1.decompress(frames[0])
        two.close()
    finally:
        ws.close()
    assert [m["params"]["result"]["value"] for m in live] == chain.transactions(start, mid)


def test_an_unknown_compression_value_is_plain(make_sim) -> None:
    """§9.3: a malformed or unsupported option defaults to off; the subscribe does not fail."""
    sim = make_sim()
    ws = control(sim)
    try:
        sid = session_id_of(create(ws, startSlot=sim.first_slot, endSlot=sim.first_slot + 5))
        sub = data_ws(sim, sid)
        _subscribe_raw(sub, 1, "transactionSubscribe", [{}, {"compression": "brotli"}])
        opcode, frame = sub.recv_data_frame(True)
        assert opcode == TEXT and json.loads(frame.data)["result"] == 1
        send(ws, "continue", {"advanceCount": 6})
        recv_until(ws, until_method("completed"))
        assert {op for op, _ in read_all(sub)} == {TEXT}
    finally:
        ws.close()
    assert sim.stats["zstd_frames_sent"] == 0
