"""simclient: a blocking, thread-based Python SDK for the Termina simulator."""
from ._version import __version__

__all__ = ["__version__"]
