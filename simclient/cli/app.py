"""``main()``: parse, dispatch to the command, map exceptions to exit codes and one-line messages."""
from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from typing import Optional, Sequence

from ..runfile import RunFileError
from .args import build_parser
from .common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, ConnectError, UsageError, _one_line

#: stdout's reader went away: what a tool killed by SIGPIPE reports to the shell (128 + SIGPIPE).
EXIT_BROKEN_PIPE = 128 + getattr(signal, "SIGPIPE", 13)


def _setup_logging(verbose: int, log_frames: bool = False) -> None:
    """``-v`` INFO, ``-vv`` DEBUG; ``--log-frames`` adds the frame records (logger ``simclient.frames``) at any
    verbosity."""
    if verbose <= 0 and not log_frames:
        return
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if log_frames:
        logging.getLogger("simclient.frames").setLevel(logging.DEBUG)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    _setup_logging(args.verbose, getattr(args, "log_frames", False))
    from ..errors import AuthenticationError, ConnectionLostError, HttpStatusError, SimclientError

    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a reader that went away (`| head -1`) shows here, not at interpreter exit
        return code
    except BrokenPipeError:  # `simclient ranges | head -1`: the reader has what it wanted; exit quietly
        _silence_stdout()
        return EXIT_BROKEN_PIPE
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


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not raise BrokenPipeError again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # pragma: no cover - stdout replaced by something without a fd
        pass


def _print_error(exc: BaseException, verbose: int) -> None:
    if verbose:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    print(f"simclient: error: {_one_line(exc)}", file=sys.stderr)

