"""The ``patternnet`` command: one module per command (``check``, ``compile``, ``expand``,
``fmt``, ``draw``, and ``train`` for train/eval/predict), each with ``add(sub)`` (its
options) and the function it runs; ``common`` holds what they share.

Exit codes: 0 clean; 1 problems in the input (diagnostics printed); 2 usage or I/O
errors (one line, no traceback), a missing extra included; 3 an internal error (a bug:
please report it); 130 interrupted.  ``check``, ``fmt``, ``expand`` and ``draw`` need
only the light install (lark); ``compile`` needs ``[jax]``, train/eval/predict
``[train]``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from . import check, compile, draw, expand, explain, fmt, train
from .common import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, Usage

__all__ = ["EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_PROBLEMS", "EXIT_USAGE",
           "EXTRAS", "Usage", "build_parser", "main", "missing_extra"]

#: the commands in --help order; each module's ``add`` defines its options
COMMANDS = (check, compile, expand, fmt, draw, train, explain)
#: per extra, the modules it installs (pyproject.toml's optional-dependencies), and what
#: the commands that need it are called in the one-line message
EXTRAS = {"jax": (("jax", "jaxlib", "flatbuffers"), "JAX"),
          "train": (("jax", "jaxlib", "optax", "sklearn", "matplotlib", "rich"),
                    "the training extra")}
#: the extra each command needs (its module's NEEDS)
_NEEDS = {"compile": compile.NEEDS, "train": train.NEEDS, "eval": train.NEEDS,
          "predict": train.NEEDS}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (and exit 2), like every other error."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"patternnet: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    p = _Parser(
        prog="patternnet", description="A language and compiler for ConvNet architectures.",
        epilog="exit codes: 0 ok, 1 problems in the input, 2 usage or I/O error, "
               "3 internal error")
    p.add_argument("--version", action="version", version=f"patternnet {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command in COMMANDS:
        command.add(sub)
    return p


def missing_extra(command: str) -> Optional[str]:
    """The one line for a command whose extra is not installed, else None."""
    extra = _NEEDS.get(command)
    if extra is None:
        return None
    import importlib.util

    modules, what = EXTRAS[extra]
    absent = [m for m in modules if importlib.util.find_spec(m) is None]
    if not absent:
        return None
    return (f"patternnet {command} needs {what} ({', '.join(absent)} not installed): "
            f"pip install 'patternnet[{extra}]'")


def _quit_on_ctrl_c():
    """Ctrl-C ends the command at once with 130 and no traceback.  A KeyboardInterrupt
    raised wherever Python happens to be can crash an extension module's import (jax's,
    seen as a segfault) or be swallowed and re-raised as another error by a library; a
    handler that exits cannot.  Files being written atomically are removed first (their
    targets are untouched).  ``train`` installs its own handler for its loop, which
    stops at a step boundary and checkpoints (patternnet/training/loop.py)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        from ..atomic import PENDING, discard

        for tmp in list(PENDING):
            discard(tmp)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(EXIT_INTERRUPTED)
    return signal.signal(signal.SIGINT, handler)


def main(argv: Optional[Sequence[str]] = None) -> int:
    # A short-lived process that builds many small acyclic objects: the cyclic GC only
    # costs time here (it more than doubles a ResNet-152 check), so it stays off.
    import gc

    gc.disable()
    previous = _quit_on_ctrl_c()
    try:
        return _run(argv)
    finally:
        if previous is not None:  # a caller in the same process gets its own back
            import signal

            signal.signal(signal.SIGINT, previous)


def _run(argv: Optional[Sequence[str]]) -> int:
    args = build_parser().parse_args(argv)
    missing = missing_extra(args.command)
    if missing:
        print(f"patternnet: error: {missing}", file=sys.stderr)
        return EXIT_USAGE
    if args.command in _NEEDS:  # before any of them starts JAX (xla_cpu.py)
        from ..xla_cpu import configure

        configure()
    try:
        return args.func(args)
    except Usage as e:
        print(f"patternnet: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except Exception:  # a bug in PatternNet, never an input mistake
        print("patternnet: internal error: this is a bug in PatternNet, not in your file; "
              "please report it with the file that triggered it"
              + ("" if args.debug else " (run with --debug for the traceback)"),
              file=sys.stderr)
        if args.debug:
            import traceback

            traceback.print_exc()
        return EXIT_INTERNAL
