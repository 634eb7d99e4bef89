"""``patternnet compile``: check one network, compile it with the JAX backend, time the
compile of inference, print its summary (or jaxpr / StableHLO) and export it."""

from __future__ import annotations

import argparse
import os
import sys

from .common import EXIT_OK, Usage, net_options, one_file, positive, print_problems

NEEDS = "jax"   # the extra this command needs (cli/__init__.py says so when it is missing)


def add(sub: argparse._SubParsersAction) -> None:
    k = sub.add_parser("compile", help="check and compile one network with JAX; export it")
    k.add_argument("file", metavar="FILE")
    net_options(k, "the network to use (when the file has several)")
    k.add_argument("--strict", action="store_true", help="lints become errors")
    k.add_argument("-o", "--output", metavar="MODEL.pnx",
                   help="write the exported model (jax.export; run it with patternnet.load)")
    k.add_argument("--emit", choices=("summary", "jaxpr", "stablehlo"), default="summary",
                   help="what to print: the layer table (default), or inference's jaxpr or "
                        "StableHLO (status lines then go to stderr)")
    k.add_argument("--batch", type=positive, metavar="N",
                   help="a fixed batch size (default: the export takes any batch; the "
                        "timed compile uses 1)")
    k.add_argument("--dtype", choices=("float32", "bfloat16", "float64"), default="float32")
    k.add_argument("--seed", type=int, default=0, help="the init key (default 0)")
    k.add_argument("--ckpt", metavar="PATH",
                   help="use a training checkpoint's parameters (a run folder or its "
                        "checkpoint.npz; the run's shapes, classes and dtype)")
    k.add_argument("--scan", choices=("auto", "on", "off"), default="auto",
                   help="run uniform repeat copies as one lax.scan (docs/backend.md)")
    k.add_argument("--layout", choices=("per_copy", "stacked"), default="per_copy",
                   help="how params hold the copies of a repeat (docs/backend.md)")
    k.set_defaults(func=run)


def _fresh(args: argparse.Namespace):
    """(model, params, state) of the selected network, freshly initialised; or the exit
    code after printing its diagnostics."""
    from ..diagnostics import PatternNetError
    from ..parser import parse_source
    from ..pipeline import one_network

    source, shape, define = one_file(args)
    try:
        checked = one_network(parse_source(source), net=args.net, define=define,
                              input_shape=shape, classes=args.classes, strict=args.strict)
    except PatternNetError as e:
        return print_problems(e)
    import jax

    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    from ..backend import Model

    model = Model(checked, dtype=args.dtype, layout=args.layout,
                  scan={"auto": "auto", "on": True, "off": False}[args.scan])
    params, state = model.init(args.seed)
    return model, params, state


def run(args: argparse.Namespace) -> int:
    import time

    t0 = time.perf_counter()  # init's time below includes the check and JAX's start-up
    if args.ckpt:  # the trained network: the run's shapes, classes and dtype
        from .train import guarded, restored

        loaded = guarded(restored, args)
        if isinstance(loaded, int):
            return loaded
        model, params, state, _ = loaded
    else:
        made = _fresh(args)
        if isinstance(made, int):
            return made
        model, params, state = made
    import jax
    import numpy as np

    jax.block_until_ready((params, state))
    t1 = time.perf_counter()
    batch = args.batch or 1
    model.lower(params, state, batch).compile()
    t2 = time.perf_counter()
    ir = sys.stdout if args.emit != "summary" else None
    status = sys.stderr if ir else sys.stdout
    if args.emit == "summary":
        print(model.summary())
    elif args.emit == "jaxpr":
        x = jax.ShapeDtypeStruct((batch,) + tuple(model.input_shape), model.dtype)
        print(jax.make_jaxpr(lambda p, s, x: model.apply(p, s, x)[0])(params, state, x))
    else:
        print(model.stablehlo(params, state, args.batch))
    dtype = np.dtype(model.dtype).name
    print(f"compiled {model.checked.label}: forward at batch {batch}, {dtype}, on "
          f"{jax.default_backend()}, in {t2 - t1:.2f} s (init {t1 - t0:.2f} s, JAX start-up "
          "included)", file=status)
    if args.output:
        try:
            model.export(args.output, params, state, batch=args.batch)
        except OSError as e:
            raise Usage(f"{args.output}: cannot write: {e.strerror or e}") from None
        size = os.path.getsize(args.output)
        which = f"batch {args.batch}" if args.batch else "any batch size"
        print(f"wrote {args.output} ({size / 1e6:.1f} MB; {which}; load it with "
              f"patternnet.load)", file=status)
    return EXIT_OK
