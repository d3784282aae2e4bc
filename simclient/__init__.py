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
from .actions import (
    ActionAnchor,
    ScheduledAction,
    after_every_slot,
    after_match,
    after_slot,
    before_every_slot,
    before_match,
    before_slot,
)
from .config import ClientConfig
from .create_progress import CreateStatus, SessionCreatedInfo
from .errors import (
    AuthenticationError,
    BadUrlError,
    CompletionDrainStalled,
    CompressionUnavailableError,
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
    "ScheduledAction", "ActionAnchor", "before_slot", "after_slot", "before_every_slot", "after_every_slot",
    "before_match", "after_match",
    "DiscoveryStep", "DiscoveryPause", "DiscoveryCompleted",
    "AccountData", "AvailableRange", "BacktestError",
    "SimclientError", "AuthenticationError", "InvalidRequestError", "SessionError", "ConnectionLostError",
    "SubscriptionError", "CompletionDrainStalled", "ProtocolError", "SessionClosedError", "RpcError",
    "HttpStatusError", "HttpConnectionError", "ServerTooOldError", "Timeout", "InternalError", "BadUrlError",
    "RedirectRefusedError", "TlsVerificationError",
    "SessionCreatedInfo", "CreateStatus", "CompressionUnavailableError",
]
