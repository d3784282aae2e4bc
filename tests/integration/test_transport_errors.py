"""Errors no retry can fix surface at once, typed, without the key (issue 16 defect 7 and item 9, issue 18 item 5).

Small loopback HTTP servers (``http.server`` in a thread) stand in for what the local simulator never does: a
redirect to another origin, a 404 or 429 on the upgrade, a certificate from no trusted CA. Every server records the
requests it got, so each test also checks how many attempts the client made and what headers reached whom.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from simclient import Client, ClientConfig, CreateSession
from simclient.errors import (
    BadUrlError,
    ConnectionLostError,
    HttpConnectionError,
    HttpStatusError,
    RedirectRefusedError,
    SimclientError,
    TlsVerificationError,
)
from simclient.rpc import RpcClient, fetch_available_ranges
from simclient.testing import fast_config

KEY = "sk-test-2f8c1e0d9b7a"
FAST = 2.0  # "at once": every failure below must surface within this many seconds
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

Answer = Tuple[int, Dict[str, str], bytes]


class _Server:
    """A loopback HTTP server answering every request with ``answer(method, path)``; records each request."""

    def __init__(self, answer: Callable[[str, str], Answer], tls: Optional[ssl.SSLContext] = None):
        self.requests: List[Tuple[str, str, Dict[str, str]]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                owner.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                status, headers, body = answer(self.command, self.path)
                self.send_response(status)
                for k, v in {"Content-Length": str(len(body)), "Connection": "close", **headers}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
            self.httpd.handle_error = lambda *a: None  # type: ignore[method-assign] # the client rejects our cert
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="test-http-server", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)
        assert not self._thread.is_alive()


@pytest.fixture
def servers() -> Iterator[Callable[..., _Server]]:
    made: List[_Server] = []

    def make(answer: Callable[[str, str], Answer], tls: Optional[ssl.SSLContext] = None) -> _Server:
        made.append(_Server(answer, tls))
        return made[-1]

    try:
        yield make
    finally:
        for s in made:
            s.close()


def _status(code: int, headers: Optional[Dict[str, str]] = None, body: bytes = b"") -> Callable[[str, str], Answer]:
    return lambda method, path: (code, headers or {}, body)


def _create() -> CreateSession:
    return CreateSession(start_slot=1, slot_count=5)


def _fails_fast(call: Callable[[], Any], kind: type) -> SimclientError:
    started = time.monotonic()
    with pytest.raises(kind) as info:
        call()
    elapsed = time.monotonic() - started
    assert elapsed < FAST, f"{kind.__name__} took {elapsed:.2f}s"
    assert KEY not in str(info.value) and KEY not in repr(info.value)
    return info.value  # type: ignore[return-value]


def _client(url: str, **config: Any) -> Client:
    return Client(url, KEY, fast_config(**{"reconnect_attempts": 5, "backoff_initial": 0.3, **config}))


# ================================================================================================ redirects


def test_control_redirect_to_another_origin_is_refused_and_the_key_never_reaches_it(servers) -> None:
    other = servers(_status(404))
    location = f"ws://user:pw@127.0.0.1:{other.port}/backtest?api_key={KEY}"
    first = servers(_status(307, {"Location": location}))
    err = _fails_fast(lambda: _client(f"ws://127.0.0.1:{first.port}/backtest").start_session(_create()),
                      RedirectRefusedError)
    assert f"127.0.0.1:{other.port}" in str(err) and "307" in str(err)
    assert "user" not in str(err) and "pw@" not in str(err)
    assert len(first.requests) == 1, "a redirect is not retried"
    assert first.requests[0][2].get("x-api-key") == KEY  # the origin the user configured got it, once
    assert other.requests == [], "the redirect target must never be contacted"


@pytest.mark.parametrize("status", [301, 302, 303, 308])
def test_every_redirect_status_is_refused_on_the_upgrade(servers, status) -> None:
    other = servers(_status(404))
    first = servers(_status(status, {"Location": f"ws://127.0.0.1:{other.port}/backtest"}))
    _fails_fast(lambda: _client(f"ws://127.0.0.1:{first.port}/backtest").start_session(_create()),
                RedirectRefusedError)
    assert other.requests == []


def test_rpc_and_available_ranges_refuse_redirects(servers) -> None:
    other = servers(_status(200, {"Content-Type": "application/json"}, b'{"jsonrpc":"2.0","id":1,"result":5}'))
    first = servers(_status(307, {"Location": f"http://127.0.0.1:{other.port}/backtest/s"}))
    rpc = RpcClient(f"http://127.0.0.1:{first.port}/backtest/s", timeout=5)
    try:
        err = _fails_fast(lambda: rpc.get_slot(), RedirectRefusedError)
    finally:
        rpc.close()
    assert f"127.0.0.1:{other.port}" in str(err)
    err = _fails_fast(lambda: fetch_available_ranges(f"http://127.0.0.1:{first.port}", 5, 3), RedirectRefusedError)
    assert len(first.requests) == 2, "one POST and one GET: a redirect is not retried"
    assert other.requests == []


# ================================================================================================ HTTP transport


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_http_transport_failure_is_a_connection_error() -> None:
    port = _closed_port()
    rpc = RpcClient(f"http://127.0.0.1:{port}/backtest/s", timeout=5)
    try:
        err = _fails_fast(lambda: rpc.get_slot(), HttpConnectionError)
    finally:
        rpc.close()
    assert isinstance(err, ConnectionError)
    assert isinstance(err, HttpStatusError) and err.status == 0  # what callers caught before the type existed
    assert f"127.0.0.1:{port}" in str(err)
    err = _fails_fast(lambda: fetch_available_ranges(f"http://127.0.0.1:{port}", 5, 2), HttpConnectionError)
    assert isinstance(err, ConnectionError)


def test_http_5xx_after_the_retries_keeps_its_status(servers) -> None:
    srv = servers(_status(503, body=b"draining"))
    with pytest.raises(HttpStatusError) as info:
        fetch_available_ranges(f"http://127.0.0.1:{srv.port}", 5, 2)
    assert type(info.value) is HttpStatusError and info.value.status == 503 and "draining" in info.value.body
    assert len(srv.requests) == 2


# ================================================================================================ fast failure


@pytest.mark.parametrize("scheme,hint", [("http", "ws"), ("https", "wss"), ("ftp", None)])
def test_a_control_url_of_another_scheme_fails_at_once(servers, scheme, hint) -> None:
    srv = servers(_status(404))
    url = f"{scheme}://127.0.0.1:{srv.port}/backtest"
    err = _fails_fast(lambda: _client(url).start_session(_create()), BadUrlError)
    assert isinstance(err, ValueError)
    assert f"{scheme}://" in str(err) and "ws://" in str(err) and "wss://" in str(err)
    if hint:
        assert f"did you mean {hint}://127.0.0.1:{srv.port}/backtest" in str(err)
    assert srv.requests == []


def test_http_404_on_the_upgrade_is_a_bad_url_at_once(servers) -> None:
    srv = servers(_status(404, body=b"no such route"))
    err = _fails_fast(lambda: _client(f"ws://127.0.0.1:{srv.port}/wrongpath").start_session(_create()),
                      BadUrlError)
    assert "no WebSocket endpoint at /wrongpath/backtest" in str(err)
    assert len(srv.requests) == 1


@pytest.mark.parametrize("status", [400, 405, 410])
def test_other_4xx_on_the_upgrade_fail_at_once(servers, status) -> None:
    srv = servers(_status(status, body=b"nope"))
    err = _fails_fast(lambda: _client(f"ws://127.0.0.1:{srv.port}/backtest").start_session(_create()),
                      HttpStatusError)
    assert err.status == status and "nope" in err.body  # type: ignore[attr-defined]
    assert len(srv.requests) == 1


@pytest.mark.parametrize("status", [429, 408, 503])
def test_transient_statuses_on_the_upgrade_are_retried(servers, status) -> None:
    srv = servers(_status(status))
    client = _client(f"ws://127.0.0.1:{srv.port}/backtest", reconnect_attempts=3, backoff_initial=0.01)
    with pytest.raises(ConnectionLostError):
        client.start_session(_create())
    assert len(srv.requests) == 3


# ------------------------------------------------------------------------------------------------ TLS


def _self_signed(tmp: str) -> Tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (cert.pem, key.pem) in ``tmp``."""
    cert_path, key_path = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("needs the cryptography package or the openssl command")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                        "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key_path,
                        "-out", cert_path], check=True, capture_output=True)
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def tls_server(servers, tmp_path) -> Tuple[_Server, str]:
    cert, key = _self_signed(str(tmp_path))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return servers(_status(404, body=b"tls ok, no such route"), tls=ctx), cert


def test_a_certificate_that_does_not_verify_fails_at_once_and_says_how_to_fix_it(tls_server) -> None:
    srv, cert = tls_server
    url = f"wss://127.0.0.1:{srv.port}/backtest"
    err = _fails_fast(lambda: _client(url).start_session(_create()), TlsVerificationError)
    assert isinstance(err, ConnectionError)
    text = str(err)
    assert "did not verify" in text and "127.0.0.1" in text
    assert "ca_bundle" in text and "SSL_CERT_FILE" in text and "REQUESTS_CA_BUNDLE" in text
    assert srv.requests == []  # the handshake failed: no request was sent, the key went nowhere
    # and the HTTP side says the same
    _fails_fast(lambda: fetch_available_ranges(f"https://127.0.0.1:{srv.port}", 5, 3), TlsVerificationError)


def test_ca_bundle_makes_the_certificate_verify_on_both_transports(tls_server) -> None:
    srv, cert = tls_server
    client = Client(f"wss://127.0.0.1:{srv.port}/backtest", KEY, fast_config(ca_bundle=cert))
    # verified: the request reaches the server, which has no WebSocket endpoint (a 404, not a TLS failure)
    _fails_fast(lambda: client.start_session(_create()), BadUrlError)
    assert len(srv.requests) == 1 and srv.requests[0][2].get("x-api-key") == KEY
    with pytest.raises(HttpStatusError) as info:
        client.available_ranges()
    assert info.value.status == 404
    assert ClientConfig(ca_bundle=cert).ca_bundle == cert


# ------------------------------------------------------------------------------------------------ the CLI


def _cli(*args: str) -> Tuple[subprocess.CompletedProcess, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMULATOR_")}
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "simclient.cli", *args], capture_output=True, text=True,
                          timeout=60, env=env, cwd=REPO)
    return proc, time.monotonic() - started


@pytest.mark.parametrize("case", ["scheme", "path", "tls"])
def test_cli_fails_at_once_with_one_line(servers, tmp_path, case) -> None:
    if case == "tls":
        cert, key = _self_signed(str(tmp_path))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        srv = servers(_status(404), tls=ctx)
        url, expect = f"wss://127.0.0.1:{srv.port}/backtest", "did not verify"
    else:
        srv = servers(_status(404))
        url, expect = ((f"http://127.0.0.1:{srv.port}", "did you mean ws://") if case == "scheme"
                       else (f"ws://127.0.0.1:{srv.port}/wrongpath", "no WebSocket endpoint at /wrongpath"))
    proc, elapsed = _cli("--url", url, "--api-key", KEY, "run", "--start-slot", "1", "--slot-count", "5",
                         "--subscriptions", "none", "-o", str(tmp_path / "out.json"))
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("simclient: error:") and expect in lines[0], proc.stderr
    assert KEY not in proc.stderr and KEY not in proc.stdout
    assert elapsed < FAST + 3.0, f"took {elapsed:.1f}s"  # the interpreter's own start-up is included here
    assert sum(1 for r in srv.requests if "available-ranges" not in r[1]) <= 1
