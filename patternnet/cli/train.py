"""``patternnet train``, ``eval`` and ``predict`` (docs/training.md).

``build_parser`` imports this module on every run, ``patternnet check`` included, so it
imports nothing heavy at the top: jax, numpy, scikit-learn, matplotlib and rich come in
with ``patternnet.training`` when a command runs.

Errors follow the other commands: a usage or I/O problem (a bad flag value, an
unreadable data file or checkpoint) is one line and exit 2; a .pn problem is rendered as
``check`` renders it and a network/data mismatch or a diverged run is one line, both
exit 1; Ctrl-C checkpoints the run and exits 130.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Callable, TypeVar, Union

from .common import (EXIT_INTERRUPTED, EXIT_OK, Usage, net_options, nonneg_float,
                     parse_defines, positive, positive_float, print_problems, whole)

if TYPE_CHECKING:  # names for annotations: the commands import these when they run
    from ..backend.model import Model
    from ..backend.types import PyTree
    from ..training.checkpoint import Checkpoint

_R = TypeVar("_R")

NEEDS = "train"   # the extra these commands need (cli/__init__.py says so when missing)

#: the defaults shown in --help; patternnet.training.DEFAULTS is the truth (a test checks
#: that they agree: importing it here would import numpy for `patternnet check`)
HELP_DEFAULTS = dict(epochs="default 30", batch="default 64", lr="default 0.001",
                     optimizer="default adam", schedule="default cosine", seed="default 0",
                     dtype="default float32")


def _network_options(p: argparse.ArgumentParser) -> None:
    # the data decides the input shape and the classes: no --input, --classes
    net_options(p, "the network to use (default: the file's default network)", shape=False)


def _checkpoint_command(sub, name: str, help: str, data_help: str, *, data_required=False):
    """``eval`` and ``predict``: a .pn file, a checkpoint, data, the network options."""
    p = sub.add_parser(name, help=help)
    p.add_argument("file", metavar="FILE")
    p.add_argument("--ckpt", required=True, metavar="PATH",
                   help="a checkpoint.npz or a run folder")
    p.add_argument("--data", required=data_required, default=None,
                   metavar="X.npz" if data_required else "digits|PATH.npz", help=data_help)
    _network_options(p)
    return p


def add(sub: argparse._SubParsersAction) -> None:
    """Add ``train``, ``eval`` and ``predict`` to the ``patternnet`` subparsers."""
    d = HELP_DEFAULTS
    t = sub.add_parser("train", help="train a network on the bundled digits or a .npz; "
                                     "checkpoints, metrics, a plot")
    t.add_argument("file", metavar="FILE")
    t.add_argument("--data", default=None, metavar="digits|PATH.npz",
                   help="the data: scikit-learn's bundled digits (default) or a .npz with "
                        "x (N,H,W,C), y (N,) and optional x_test, y_test")
    t.add_argument("--epochs", type=positive, help=f"epochs to train to ({d['epochs']})")
    t.add_argument("--batch", type=positive, help=f"batch size ({d['batch']})")
    t.add_argument("--lr", type=positive_float, help=f"peak learning rate ({d['lr']})")
    t.add_argument("--optimizer", choices=("sgd", "momentum", "adam", "adamw"),
                   help=f"the optax optimizer ({d['optimizer']})")
    t.add_argument("--schedule", choices=("constant", "cosine", "step"),
                   help=f"learning-rate schedule ({d['schedule']})")
    t.add_argument("--weight-decay", type=nonneg_float, metavar="WD",
                   help="weight decay (default 1e-4 for adamw, else 0)")
    t.add_argument("--seed", type=whole, help=f"seed of init, shuffling, dropout ({d['seed']})")
    t.add_argument("--out", metavar="RUN_DIR",
                   help="the run folder (default runs/<net>-<timestamp>)")
    t.add_argument("--resume", nargs="?", const=True, default=None, metavar="RUN_DIR",
                   help="continue a run from its checkpoint: RUN_DIR, else --out, else the "
                        "newest runs/<net>-*")
    t.add_argument("--devices", type=positive, default=1, metavar="N",
                   help="shard each batch over N devices (data parallel)")
    t.add_argument("--dtype", choices=("float32", "bfloat16", "float64"),
                   help=f"parameter and compute dtype ({d['dtype']})")
    _network_options(t)
    t.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar or epoch lines; only the result")
    t.set_defaults(func=lambda args: guarded(train, args))

    e = _checkpoint_command(sub, "eval", "loss and accuracy of a checkpoint on the test split",
                            "the data (default: the run's); its test split is scored")
    e.set_defaults(func=lambda args: guarded(evaluate, args))
    p = _checkpoint_command(sub, "predict", "a checkpoint's predictions for the inputs of a "
                            ".npz", "a .npz with x (N,H,W,C) (or 'digits': its test split)",
                            data_required=True)
    p.add_argument("-o", "--output", required=True, metavar="PREDS.npz",
                   help="where to write logits, probabilities and labels (atomically)")
    p.set_defaults(func=lambda args: guarded(predict, args))


# --- shared --------------------------------------------------------------------------


def guarded(fn: Callable[[argparse.Namespace], _R], args: argparse.Namespace) -> Union[_R, int]:
    """Run a command, turning the expected errors into the one-line conventions."""
    from ..diagnostics import PatternNetError, SourceError
    from ..training import TrainError

    try:
        return fn(args)
    except SourceError as e:
        raise Usage(e.diagnostics[0].message) from None
    except PatternNetError as e:
        return print_problems(e)
    except TrainError as e:
        print(f"patternnet: error: {e}", file=sys.stderr)
        return e.exit_code


def _source(path: str) -> str:
    """The .pn path, or a usage error when it is not a readable file (a path is always a
    path here: source text is for the Python API)."""
    if not os.path.isfile(path):
        raise Usage(f"{path}: no such file" if not os.path.exists(path) else f"{path}: not a file")
    return path


def _enable_x64_if(dtype) -> None:
    if dtype == "float64":
        import jax
        jax.config.update("jax_enable_x64", True)


def restored(args: argparse.Namespace) -> tuple[Model, PyTree, PyTree, Checkpoint]:
    """``(model, params, state, checkpoint)`` of ``--ckpt`` for the .pn ``args.file``."""
    from ..training import checkpoint as ckpt
    from ..training import restore

    source = _source(args.file)
    saved = ckpt.load(args.ckpt)
    _enable_x64_if(saved.config.get("hyper", {}).get("dtype"))
    return restore(source, saved, net=args.net, define=parse_defines(args.define) or None)


# --- the commands --------------------------------------------------------------------


def train(args: argparse.Namespace) -> int:
    from ..training import checkpoint as ckpt
    from ..training import default_run_dir, run_label
    from ..training import train as train_net

    source = _source(args.file)
    define = parse_defines(args.define) or None
    resume = args.resume
    if resume is True:
        resume = args.out or ckpt.find_latest("runs", run_label(source, args.net))
        if resume is None:
            raise Usage(f"--resume: no run of {run_label(source, args.net)} under "
                        "runs/ to continue; pass --resume RUN_DIR or --out RUN_DIR")
    dtype = args.dtype
    if resume is not None:
        dtype = dtype or ckpt.load(resume).config.get("hyper", {}).get("dtype")
    _enable_x64_if(dtype)
    out = args.out if resume is None else None
    if out is None and resume is None:
        out = default_run_dir(source, args.net)
    try:
        result = train_net(source, data=args.data or "digits", epochs=args.epochs,
                           batch=args.batch, lr=args.lr, optimizer=args.optimizer,
                           schedule=args.schedule, weight_decay=args.weight_decay,
                           seed=args.seed, out=out, resume=resume or False,
                           devices=args.devices, dtype=args.dtype, net=args.net,
                           define=define, progress=not args.quiet)
    except KeyboardInterrupt:
        where = resume if resume is not None else out
        assert where is not None  # a run without a folder is the Python API's
        print(f"patternnet: interrupted; checkpoint in {os.path.join(where, ckpt.NAME)}; "
              f"continue with: patternnet train {args.file} --resume {where}", file=sys.stderr)
        return EXIT_INTERRUPTED
    last = result.history[-1] if result.history else None
    if last is not None:
        n = len(result.data.x_test)
        print(f"test accuracy {100 * last['test_accuracy']:.2f}% "
              f"({round(last['test_accuracy'] * n)}/{n}), test loss {last['test_loss']:.4f}, "
              f"after {result.epoch} epochs")
    print(f"run directory: {result.run_dir} (checkpoint.npz, metrics.jsonl, metrics.png)")
    return EXIT_OK


def evaluate(args: argparse.Namespace) -> int:
    from ..training import evaluate_checkpoint
    from ..training.data import load

    model, params, state, saved = restored(args)
    data = load(args.data or saved.config.get("data_spec") or "digits")
    loss, acc = evaluate_checkpoint(model, params, state, data)
    n = len(data.x_test)
    print(f"{data.name} test split: loss {loss:.4f}, accuracy {100 * acc:.2f}% "
          f"({round(acc * n)}/{n}); checkpoint {saved.path} (epoch {saved.epoch}, "
          f"step {saved.step})")
    return EXIT_OK


def predict(args: argparse.Namespace) -> int:
    import numpy as np

    from ..atomic import atomic_open
    from ..training import MismatchError
    from ..training import predict as predict_net
    from ..training.data import load_inputs

    model, params, state, saved = restored(args)
    x = load_inputs(args.data)
    if tuple(x.shape[1:]) != tuple(model.input_shape):
        have, want = "x".join(map(str, x.shape[1:])), "x".join(map(str, model.input_shape))
        raise MismatchError(f"{args.data}: inputs of shape {have}, the network takes {want}")
    logits, probs = predict_net(model, params, state, x)
    labels = probs.argmax(axis=-1).astype(np.int32)
    try:
        with atomic_open(args.output, "wb") as f:
            np.savez(f, logits=logits, probabilities=probs, labels=labels)
    except OSError as e:
        raise Usage(f"{args.output}: cannot write: {e.strerror or e}") from None
    print(f"wrote {len(labels):,} predictions (logits, probabilities, labels) to {args.output}")
    return EXIT_OK
