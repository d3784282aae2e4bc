"""``main()``: parse, dispatch to the command, map exceptions to exit codes and one-line messages."""
from __future__ import annotations

import logging
import sys
import traceback
from typing import Optional, Sequence

from ..runfile import RunFileError
from .args import build_parser
from .common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, ConnectError, UsageError, _one_line


def _setup_logging(verbose: int) -> None:
    if verbose <= 0:
        return
    logging.basicConfig(level=logging.INFO if verbose == 1 else logging.DEBUG, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    _setup_logging(args.verbose)
    from ..errors import AuthenticationError, ConnectionLostError, HttpStatusError, SimclientError

    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("simclient: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UsageError, RunFileError, ConnectError, AuthenticationError, ConnectionLostError, HttpStatusError,
            ValueError) as exc:
        _print_error(exc, args.verbose)
        return EXIT_USAGE
    except (SimclientError, OSError) as exc:
        _print_error(exc, args.verbose)
        return EXIT_FAILED
    except BrokenPipeError:  # pragma: no cover - `simclient ranges | head`
        return EXIT_OK


def _print_error(exc: BaseException, verbose: int) -> None:
    if verbose:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    print(f"simclient: error: {_one_line(exc)}", file=sys.stderr)

