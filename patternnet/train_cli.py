"""The ``train``, ``eval`` and ``predict`` commands (``add_commands``).

``build_parser`` imports this module on every run, ``patternnet check`` included, so it
imports nothing heavy at the top: jax, numpy, scikit-learn, matplotlib and rich are
imported inside the command functions.

Errors follow cli.py: a usage or I/O problem (a bad flag value, an unreadable data file
or checkpoint) is one line and exit 2; a .pn problem is rendered as ``check`` renders it
and a network/data mismatch or a diverged run is one line, both exit 1; Ctrl-C
checkpoints the run and exits 130.  docs/training.md is the reference.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import cli


#: the defaults shown in --help; patternnet.train.DEFAULTS is the truth (a test checks
#: that they agree: importing train.py here would import numpy for `patternnet check`)
HELP_DEFAULTS = dict(epochs="default 30", batch="default 64", lr="default 0.001",
                     optimizer="default adam", schedule="default cosine", seed="default 0",
                     dtype="default float32")


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def _nonneg_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not v >= 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return v


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _net_options(p) -> None:
    # the data decides the input shape and the classes: no --input, --classes
    cli.net_options(p, "the network to use (default: the file's default network)",
                    shape=False)


def add_commands(sub) -> None:
    """Add ``train``, ``eval`` and ``predict`` to the ``patternnet`` subparsers."""
    d = HELP_DEFAULTS
    t = sub.add_parser("train", help="train a network on the bundled digits or a .npz; "
                                     "checkpoints, metrics, a plot")
    t.add_argument("file", metavar="FILE")
    t.add_argument("--data", default=None, metavar="digits|PATH.npz",
                   help="the data: scikit-learn's bundled digits (default) or a .npz with "
                        "x (N,H,W,C), y (N,) and optional x_test, y_test")
    t.add_argument("--epochs", type=cli._positive, help=f"epochs to train to ({d['epochs']})")
    t.add_argument("--batch", type=cli._positive, help=f"batch size ({d['batch']})")
    t.add_argument("--lr", type=_positive_float, help=f"peak learning rate ({d['lr']})")
    t.add_argument("--optimizer", choices=("sgd", "momentum", "adam", "adamw"),
                   help=f"the optax optimizer ({d['optimizer']})")
    t.add_argument("--schedule", choices=("constant", "cosine", "step"),
                   help=f"learning-rate schedule ({d['schedule']})")
    t.add_argument("--weight-decay", type=_nonneg_float, metavar="WD",
                   help="weight decay (default 1e-4 for adamw, else 0)")
    t.add_argument("--seed", type=_whole, help=f"seed of init, shuffling, dropout ({d['seed']})")
    t.add_argument("--out", metavar="RUN_DIR",
                   help="the run folder (default runs/<net>-<timestamp>)")
    t.add_argument("--resume", nargs="?", const=True, default=None, metavar="RUN_DIR",
                   help="continue a run from its checkpoint: RUN_DIR, else --out, else the "
                        "newest runs/<net>-*")
    t.add_argument("--devices", type=cli._positive, default=1, metavar="N",
                   help="shard each batch over N devices (data parallel)")
    t.add_argument("--dtype", choices=("float32", "bfloat16", "float64"),
                   help=f"parameter and compute dtype ({d['dtype']})")
    _net_options(t)
    t.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar or epoch lines; only the result")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="loss and accuracy of a checkpoint on the test split")
    e.add_argument("file", metavar="FILE")
    e.add_argument("--ckpt", required=True, metavar="PATH",
                   help="a checkpoint.npz or a run folder")
    e.add_argument("--data", default=None, metavar="digits|PATH.npz",
                   help="the data (default: the run's); its test split is scored")
    _net_options(e)
    e.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="a checkpoint's predictions for the inputs of a .npz")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--ckpt", required=True, metavar="PATH",
                   help="a checkpoint.npz or a run folder")
    p.add_argument("--data", required=True, metavar="X.npz",
                   help="a .npz with x (N,H,W,C) (or 'digits': its test split)")
    p.add_argument("-o", "--output", required=True, metavar="PREDS.npz",
                   help="where to write logits, probabilities and labels (atomically)")
    _net_options(p)
    p.set_defaults(func=cmd_predict)


# --- shared --------------------------------------------------------------------------


def _guarded(fn, args) -> int:
    """Run a command, turning the expected errors into cli.py's one-line conventions."""
    from .data import TrainError
    from .diagnostics import PatternNetError, SourceError

    try:
        return fn(args)
    except SourceError as e:
        raise cli._Usage(e.diagnostics[0].message) from None
    except PatternNetError as e:
        print(e.render(color=cli._use_color(sys.stdout)))
        return cli.EXIT_PROBLEMS
    except TrainError as e:
        print(f"patternnet: error: {e}", file=sys.stderr)
        return e.exit_code


def _source(path: str) -> str:
    """The .pn path, or a usage error when it is not a readable file (a path is always a
    path here: source text is for the Python API)."""
    if not os.path.isfile(path):
        raise cli._Usage(f"{path}: no such file" if not os.path.exists(path)
                         else f"{path}: not a file")
    return path


def _enable_x64_if(dtype) -> None:
    if dtype == "float64":
        import jax
        jax.config.update("jax_enable_x64", True)


# --- train ---------------------------------------------------------------------------


def cmd_train(args) -> int:
    return _guarded(_train, args)


def _train(args) -> int:
    from . import checkpoint as ckpt
    from .train import _source_label, default_run_dir, train

    source = _source(args.file)
    define = cli._parse_defines(args.define) or None
    resume = args.resume
    if resume is True:
        resume = args.out or ckpt.find_latest("runs", _source_label(source, args.net))
        if resume is None:
            raise cli._Usage(f"--resume: no run of {_source_label(source, args.net)} under "
                             "runs/ to continue; pass --resume RUN_DIR or --out RUN_DIR")
    dtype = args.dtype
    if resume is not None:
        dtype = dtype or ckpt.load(resume).config.get("hyper", {}).get("dtype")
    _enable_x64_if(dtype)
    out = args.out if resume is None else None
    if out is None and resume is None:
        out = default_run_dir(source, args.net)
    progress = False if args.quiet else True
    try:
        result = train(source, data=args.data or "digits", epochs=args.epochs,
                       batch=args.batch, lr=args.lr, optimizer=args.optimizer,
                       schedule=args.schedule, weight_decay=args.weight_decay, seed=args.seed,
                       out=out, resume=resume or False, devices=args.devices, dtype=args.dtype,
                       net=args.net, define=define, progress=progress)
    except KeyboardInterrupt:
        where = resume if resume is not None else out
        print(f"patternnet: interrupted; checkpoint in {os.path.join(where, ckpt.NAME)}; "
              f"continue with: patternnet train {args.file} --resume {where}", file=sys.stderr)
        return cli.EXIT_INTERRUPTED
    last = result.history[-1] if result.history else None
    if last is not None:
        n = len(result.data.x_test)
        print(f"test accuracy {100 * last['test_accuracy']:.2f}% "
              f"({round(last['test_accuracy'] * n)}/{n}), test loss {last['test_loss']:.4f}, "
              f"after {result.epoch} epochs")
    print(f"run directory: {result.run_dir} (checkpoint.npz, metrics.jsonl, metrics.png)")
    return cli.EXIT_OK


# --- eval ----------------------------------------------------------------------------


def _restored(args):
    from . import checkpoint as ckpt
    from .train import restore

    source = _source(args.file)
    saved = ckpt.load(args.ckpt)
    _enable_x64_if(saved.config.get("hyper", {}).get("dtype"))
    define = cli._parse_defines(args.define) or None
    return restore(source, saved, net=args.net, define=define)


def cmd_eval(args) -> int:
    return _guarded(_eval, args)


def _eval(args) -> int:
    from .data import load
    from .train import evaluate_checkpoint

    model, params, state, saved = _restored(args)
    spec = args.data or saved.config.get("data_spec") or "digits"
    data = load(spec)
    loss, acc = evaluate_checkpoint(model, params, state, data)
    n = len(data.x_test)
    print(f"{data.name} test split: loss {loss:.4f}, accuracy {100 * acc:.2f}% "
          f"({round(acc * n)}/{n}); checkpoint {saved.path} (epoch {saved.epoch}, "
          f"step {saved.step})")
    return cli.EXIT_OK


# --- predict -------------------------------------------------------------------------


def cmd_predict(args) -> int:
    return _guarded(_predict, args)


def _predict(args) -> int:
    import numpy as np

    from .atomic import atomic_open
    from .data import MismatchError, load_inputs
    from .train import predict

    model, params, state, saved = _restored(args)
    x = load_inputs(args.data)
    if tuple(x.shape[1:]) != tuple(model.input_shape):
        have, want = "x".join(map(str, x.shape[1:])), "x".join(map(str, model.input_shape))
        raise MismatchError(f"{args.data}: inputs of shape {have}, the network takes {want}")
    logits, probs = predict(model, params, state, x)
    labels = probs.argmax(axis=-1).astype(np.int32)
    try:
        with atomic_open(args.output, "wb") as f:
            np.savez(f, logits=logits, probabilities=probs, labels=labels)
    except OSError as e:
        raise cli._Usage(f"{args.output}: cannot write: {e.strerror or e}") from None
    print(f"wrote {len(labels):,} predictions (logits, probabilities, labels) to {args.output}")
    return cli.EXIT_OK
