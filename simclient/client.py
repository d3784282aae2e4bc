"""Client: the entry point. Holds the URL, the API key (never shown) and the config."""
from __future__ import annotations

import logging
import os
from typing import List, Optional

from .builders import CreateSession
from .config import ClientConfig
from .control import ControlConnection
from .create_progress import CreateProgress, OnSessionCreated, OnStatus
from .parallel import ParallelRun
from .protocol import AvailableRange
from .reconnect import ConnectionFactory
from .rpc import fetch_available_ranges
from .session import Session
from .urls import backtest_ws_url, http_base_from_ws_url

log = logging.getLogger("simclient")

DEFAULT_URL = "ws://127.0.0.1:8900/backtest"
DEFAULT_API_KEY = "local-dev-key"


class Client:
    """``Client(url=None, api_key=None, config=None)``.

    ``url`` defaults to ``SIMULATOR_URL``, else the local simulator's ``ws://127.0.0.1:8900/backtest``; a bare host
    means ``wss://HOST/backtest`` (PROTOCOL.md §1.1). ``api_key`` defaults to ``SIMULATOR_API_KEY``, else
    ``"local-dev-key"``. The key is sent only as the ``X-API-Key`` upgrade header of the control connection.
    """

    def __init__(self, url: Optional[str] = None, api_key: Optional[str] = None,
                 config: Optional[ClientConfig] = None, connection_factory: Optional[ConnectionFactory] = None):
        self.url = backtest_ws_url(url or os.environ.get("SIMULATOR_URL") or DEFAULT_URL)
        key = api_key if api_key is not None else os.environ.get("SIMULATOR_API_KEY")
        self._api_key = DEFAULT_API_KEY if key is None else key
        self.config = config or ClientConfig()
        #: ``factory(url, api_key, timeout) -> connection`` for every WebSocket (control and subscriptions), like a
        #: ``requests`` adapter; None: real sockets. See :mod:`simclient.reconnect` (tests script connections).
        self.connection_factory = connection_factory

    def __repr__(self) -> str:
        return f"Client(url={self.url!r}, api_key=***)"

    @property
    def http_base(self) -> str:
        return http_base_from_ws_url(self.url)

    def available_ranges(self) -> List[AvailableRange]:
        """``GET /available-ranges`` (no key needed)."""
        return fetch_available_ranges(self.http_base, self.config.rpc_timeout, self.config.http_retries,
                                      ca_bundle=self.config.ca_bundle)

    def start_session(self, create: CreateSession) -> Session:
        """Create one session; returns after ``sessionCreated``. Raises AuthenticationError, InvalidRequestError,
        SessionError or ConnectionLostError when it cannot be created."""
        control = self._create(create, parallel=False)
        route = next(iter(control.routes.values()))
        route.range = (create.start_slot, create.resolved_end_slot)
        return Session(control, route, self.config)

    def start_parallel(self, create: CreateSession, on_session_created: Optional[OnSessionCreated] = None,
                       on_status: Optional[OnStatus] = None) -> ParallelRun:
        """Create a parallel run (``parallel: true``); returns after ``sessionsCreatedV2`` with every sub-session
        bound to its server-authoritative range.

        While the create streams (it can take minutes), ``on_session_created(SessionCreatedInfo)`` is called once
        per ``sessionCreated`` and ``on_status(CreateStatus)`` once per server status (``bundleReady``, ...), on the
        control reader thread, before this returns. A callback that raises is not called again; the create is read
        to its end, the run is closed, and that exception is raised here (see :mod:`simclient.create_progress`)."""
        progress = None
        if on_session_created is not None or on_status is not None:
            progress = CreateProgress(on_session_created, on_status)
        control = self._create(create, parallel=True, create_progress=progress)
        if progress is not None and progress.error is not None:
            control.close(wait_acks=True)  # closeSessionV1 for every sub-session the create made
            raise progress.error
        return ParallelRun(control, self.config)

    def _create(self, create: CreateSession, parallel: bool,
                create_progress: Optional[CreateProgress] = None) -> ControlConnection:
        if not isinstance(create, CreateSession):
            raise TypeError(f"expected a CreateSession, got {type(create).__name__}")
        control = ControlConnection(self.url, self._api_key, self.config, create, parallel=parallel,
                                    connection_factory=self.connection_factory, create_progress=create_progress)
        control.start()
        try:
            control.wait_created()
        except BaseException:
            control.close(timeout=min(1.0, self.config.close_timeout))
            raise
        return control
