"""simclient.local: a local stand-in for the Termina simulator, over a deterministic synthetic chain.

It serves the whole wire protocol of PROTOCOL.md (control WebSocket, per-session JSON-RPC and subscriptions,
available ranges) on loopback, with deterministic fault injection::

    from simclient.local import LocalSimulator, FaultPlan

    with LocalSimulator(port=0, seed=0) as sim:
        print(sim.url)            # ws://127.0.0.1:<port>/backtest

This subpackage needs the ``local`` extra (aiohttp). Nothing outside it imports aiohttp.
"""
from __future__ import annotations

import logging
import sys
from typing import Any

from .chain import SyntheticChain
from .dialect import DIALECTS, Dialect
from .faults import FaultPlan
from .server import LocalSimulator

__all__ = ["LocalSimulator", "FaultPlan", "SyntheticChain", "Dialect", "DIALECTS", "serve"]

log = logging.getLogger("simclient.local")


def serve(port: int = 8900, api_key: str = "local-dev-key", seed: int = 0, bundle_size: int = 100,
          host: str = "127.0.0.1", **kwargs: Any) -> None:
    """Run a :class:`LocalSimulator` in the foreground until interrupted (Ctrl-C).

    Extra keyword arguments (``num_bundles``, ``first_slot``, ``replay_window``, ``slot_pace_ms``,
    ``create_delay_ms``, ``faults``, ``dialect``) are passed to :class:`LocalSimulator`.
    """
    sim = LocalSimulator(port=port, api_key=api_key, seed=seed, bundle_size=bundle_size, host=host, **kwargs)
    sim.start()
    try:  # from here on: a Ctrl-C, even while the banner is printed, still stops the server thread
        chain = sim.chain
        banner = (f"simclient local simulator on {sim.url} (http {sim.http_url}); slots {chain.first_slot}.."
                  f"{chain.last_slot} in {chain.num_bundles} bundles of {chain.bundle_size}; seed {chain.seed}; "
                  f"dialect {sim.dialect.name}; "
                  f"Ctrl-C to stop")
        from .chain import PROGRAM_NAMES

        names = dict(zip(chain.program_ids, PROGRAM_NAMES))
        ids = ("program ids (simclient run learns them from this server when --program-id is not given): "
               + ", ".join(f"{names.get(p, '?')} {p}" for p in chain.program_ids))
        print(banner + "\n" + ids, file=sys.stderr, flush=True)
        log.info("%s", banner)
        sim.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
