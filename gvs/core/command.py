"""What every command shares: argument types that refuse bad values at parse time, and the error guard
(a GVSError prints its message and exits 2, Ctrl-C prints one line and exits 130; ``--debug`` adds tracebacks)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Callable

from .cluster import ENGINES, RAY_INSTALL, EngineOptions
from .errors import GVSError, Interrupted


def positive_int(text: str) -> int:
    """argparse type: an integer of 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {value}")
    return value


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """--engine and the Ray options (the caller defines --workers)."""
    group = parser.add_argument_group("engine (docs/cluster.md)")
    group.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="local: processes on this machine (default); ray: actors on a Ray cluster, each loading the models "
        "once (needs the ray extra: " + RAY_INSTALL + ")",
    )
    group.add_argument(
        "--ray-address",
        metavar="auto|HOST:PORT",
        help="with --engine ray: the cluster to join ('auto': the one this machine joined with `ray start`); "
        "default: start Ray on this machine for this run",
    )
    group.add_argument(
        "--cpus-per-worker",
        type=positive_float,
        help="with --engine ray: CPUs (threads) per actor (default: the cluster's CPUs / --workers, else 2)",
    )
    group.add_argument(
        "--gpus-per-worker",
        type=float,
        default=0.0,
        help="with --engine ray: GPUs per actor, e.g. 1, or 0.5 for two actors per GPU (default 0: CPU only)",
    )
    group.add_argument(
        "--ray-dashboard", action="store_true", help="with --engine ray: start Ray's dashboard, print its URL"
    )


def engine_options(args: argparse.Namespace) -> EngineOptions:
    """The EngineOptions :func:`add_engine_arguments` parsed (with the caller's --workers)."""
    return EngineOptions(
        args.engine, args.ray_address, args.workers, args.cpus_per_worker, args.gpus_per_worker, args.ray_dashboard
    )


def set_up_process() -> None:
    """What a command's process sets once, in its entry point, before a stage module loads TensorFlow: TensorFlow's
    C++ logs off (CUDA probing on CPU-only machines, oneDNN notices; TF_CPP_MIN_LOG_LEVEL=0 shows them). Library
    modules set nothing process-wide; worker processes and Ray actors inherit the variable."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def add_debug(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs (for bug reports)")


def guarded(action: Callable[[], int], debug: bool = False) -> int:
    """Run ``action``; turn GVSError and Ctrl-C into one line on stderr and an exit code (2, 130)."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return action()
    except Interrupted as error:
        if debug:
            traceback.print_exc()
        print(str(error), file=sys.stderr)
        return error.exit_code
    except GVSError as error:
        if debug:
            traceback.print_exc()
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print("interrupted; finished work is kept, re-run to resume", file=sys.stderr)
        return 130


def run_module(
    prog: str,
    description: str,
    epilog: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], int],
    argv: list[str] | None = None,
) -> int:
    """Parse ``argv`` with a stage's arguments and run it under the error guard (for ``python -m STAGE``, whose
    ``__main__`` calls :func:`set_up_process` before it imports the stage)."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    add_debug(parser)
    args = parser.parse_args(argv)
    return guarded(lambda: run(args), args.debug)


def add_people_arguments(parser: argparse.ArgumentParser, blur: bool = True) -> None:
    """--no-people (and --blur-faces with ``blur``): the people options of predict, report and serve."""
    parser.add_argument(
        "--no-people",
        dest="people",
        action="store_false",
        help="do not track the people whose faces the video shows (no people/ files, no people section)",
    )
    if blur:
        parser.add_argument(
            "--blur-faces", action="store_true", help="blur the people's face thumbnails (people/<video>/*.jpg)"
        )
