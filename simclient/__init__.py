"""simclient: a blocking, thread-based Python SDK for the Termina simulator.

    from simclient import Client, CreateSession
    with Client().start_session(CreateSession(start_slot=..., slot_count=100)) as session:
        for event in session.events(): ...
"""
import logging as _logging

from . import errors, events
from ._version import __version__
from .client import Client
from .parallel import Failure, ParallelResult, ParallelRun
from .session import Session, SubSession
from .builders import Continue, CreateSession, oracle_update, program_executed
from .config import ClientConfig
from .errors import (
    AuthenticationError,
    BadUrlError,
    CompletionDrainStalled,
    ConnectionLostError,
    HttpConnectionError,
    HttpStatusError,
    InternalError,
    InvalidRequestError,
    ProtocolError,
    RedirectRefusedError,
    RpcError,
    SessionClosedError,
    SessionError,
    ServerTooOldError,
    SimclientError,
    SubscriptionError,
    Timeout,
    TlsVerificationError,
)
from .protocol import AccountData, AvailableRange, BacktestError
from .programs import modify_program
from .discovery import DiscoveryCompleted, DiscoveryPause, DiscoveryStep

_logging.getLogger("simclient").addHandler(_logging.NullHandler())

__all__ = [
    "__version__", "errors", "events", "Client", "Session", "SubSession", "ParallelRun", "ParallelResult",
    "Failure",
    "ClientConfig", "CreateSession", "Continue", "program_executed", "oracle_update", "modify_program",
    "DiscoveryStep", "DiscoveryPause", "DiscoveryCompleted",
    "AccountData", "AvailableRange", "BacktestError",
    "SimclientError", "AuthenticationError", "InvalidRequestError", "SessionError", "ConnectionLostError",
    "SubscriptionError", "CompletionDrainStalled", "ProtocolError", "SessionClosedError", "RpcError",
    "HttpStatusError", "HttpConnectionError", "ServerTooOldError", "Timeout", "InternalError", "BadUrlError",
    "RedirectRefusedError", "TlsVerificationError",
]
