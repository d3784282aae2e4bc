"""A tiny raw client for the conformance tests: websocket-client and requests only, no SDK."""
from __future__ import annotations

import json
import re
from typing import Any, Callable, Dict, List, Optional

import requests
import websocket

KEY = "local-dev-key"
_MISSING: Any = object()


def control(sim: Any, key: Optional[str] = KEY, timeout: float = 5.0) -> websocket.WebSocket:
    headers = [f"X-API-Key: {key}"] if key is not None else []
    return websocket.create_connection(sim.url, header=headers, timeout=timeout)


def data_ws(sim: Any, session_id: str, timeout: float = 5.0) -> websocket.WebSocket:
    return websocket.create_connection(f"{sim.url}/{session_id}", timeout=timeout, skip_utf8_validation=True)


def send(ws: websocket.WebSocket, method: str, params: Any = _MISSING) -> None:
    msg: Dict[str, Any] = {"method": method}
    if params is not _MISSING:
        msg["params"] = params
    ws.send(json.dumps(msg))


def recv_text(ws: websocket.WebSocket) -> str:
    text = ws.recv()
    assert isinstance(text, str) and text, f"expected a text frame, got {text!r}"
    return text


def method_of(text: str) -> Optional[str]:
    try:
        return json.loads(text).get("method")
    except ValueError:
        return None


def recv_until(ws: websocket.WebSocket, stop: Callable[[dict], bool], limit: int = 100_000) -> List[str]:
    """Raw texts up to and including the first JSON frame for which ``stop`` is true (garbage kept as is)."""
    out = []
    for _ in range(limit):
        text = recv_text(ws)
        out.append(text)
        try:
            msg = json.loads(text)
        except ValueError:
            continue
        if stop(msg):
            return out
    raise AssertionError("stop condition never met")


def until_method(*methods: str) -> Callable[[dict], bool]:
    return lambda m: m.get("method") in methods


def create(ws: websocket.WebSocket, **params: Any) -> List[str]:
    """Send a single-session create and read through the first readyForContinue."""
    send(ws, "createBacktestSession", params)
    return recv_until(ws, until_method("readyForContinue", "error"))


def session_id_of(frames: List[str]) -> str:
    for t in frames:
        m = json.loads(t)
        if m.get("method") == "sessionCreated":
            return m["params"]["session_id"]
    raise AssertionError("no sessionCreated")


def rpc(sim: Any, session_id: str, method: str, params: Any = None, timeout: float = 5.0) -> Dict[str, Any]:
    body: Dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": method}
    if params is not None:
        body["params"] = params
    r = requests.post(f"{sim.http_url}/backtest/{session_id}", json=body, timeout=timeout)
    return {"status": r.status_code, **r.json()}


def subscribe(ws: websocket.WebSocket, method: str, params: List[Any], rid: int = 1) -> Dict[str, Any]:
    ws.send(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}))
    return json.loads(recv_text(ws))


def drain_subscription(ws: websocket.WebSocket) -> Dict[str, Any]:
    """Read notifications until the socket closes; returns {"notifications", "ends", "close_code", "acks"}."""
    notes: List[dict] = []
    acks: List[dict] = []
    ends: List[int] = []
    close_code = None
    while True:
        opcode, frame = ws.recv_data_frame(True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            data = frame.data
            close_code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
            ws.shutdown()       # websocket-client answers the close but leaves the socket open (close() is a no-op)
            break
        if opcode != websocket.ABNF.OPCODE_TEXT:
            continue
        msg = json.loads(frame.data.decode())
        if "id" in msg:            # a (late) subscribe ack or error
            acks.append(msg)
            continue
        if msg.get("method") == "subscriptionComplete" or msg["params"]["result"] is None:  # §9.5, either dialect
            ends.append(msg["params"]["subscription"])
        else:
            notes.append(msg)
    return {"notifications": notes, "ends": ends, "close_code": close_code, "acks": acks}


def slot_frames(chain: Any, start: int, end: int, modified: bool = False) -> List[str]:
    """The control frames PROTOCOL §6 / the simulator's documented per-slot order give for executing [start, end]."""
    out = []
    for s in range(start, end + 1):
        if not chain.is_produced(s):
            continue
        out.append('{"method":"status","params":{"status":"decodedTransactions"}}')
        if modified and not any(chain.is_produced(x) for x in range(start, s)):
            out.append('{"method":"status","params":{"status":"appliedAccountModifications"}}')
        out.append('{"method":"status","params":{"status":"readyToExecuteUserTransactions"}}')
        out.append('{"method":"status","params":{"status":"executedBlockTransactions"}}')
        out.append('{"method":"slotNotification","params":%d}' % s)
    return out


_ID = re.compile(r"(?:backtest|parallel)_[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def without_ids(frames: List[str]) -> List[str]:
    """``frames`` with every session id replaced by ``<idN>`` (N by first appearance), and the task ids derived from
    them by ``<task>``: ids are fresh uuid v7s on every run, the rest of a stream is deterministic."""
    names: Dict[str, str] = {}

    def name(m: "re.Match[str]") -> str:
        return names.setdefault(m.group(0), f"<id{len(names) + 1}>")

    out = []
    for f in frames:
        f = _ID.sub(name, f)
        out.append(re.sub(r'"task-[0-9a-f]{12}"', '"<task>"', f))
    return out
