"""``patternnet.train`` (``patternnet.training.train``): train a network on the digits or
a ``.npz``, with checkpoints.

    >>> import patternnet
    >>> run = patternnet.train("examples/digits.pn", epochs=5)      # silent by default
    >>> run.test_accuracy, run.history[-1]["test_loss"], run.params

The loop (docs/training.md):

* optax for the optimizer and the learning-rate schedule (``make_optimizer``); the step
  is the library's (``patternnet.backend.steps.update``, training mode), jitted with the
  number of correct predictions and the learning rate added;
* the training split is shuffled every epoch by a permutation that is a pure function
  of ``(seed, epoch)`` and cut into ``len // batch`` full batches (the remainder is
  dropped: one compiled step shape, and a batch divisible by the devices); the rng of
  step ``i`` is ``fold_in(base, i)``.  So training is a pure function of the seed and
  the step count, and a resumed run continues bit for bit;
* after each epoch the test split is evaluated, a record is appended to
  ``metrics.jsonl`` and a checkpoint replaces the last one (``patternnet.training.checkpoint``);
  Ctrl-C stops at the next step boundary, checkpoints and raises ``KeyboardInterrupt``;
  a non-finite loss raises ``NonFiniteLoss`` and keeps the last good checkpoint;
* ``devices=N`` shards each batch over N devices (``jax.sharding``: a one-axis
  ``Mesh``, the batch split along it, params/state/optimizer state replicated).
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from typing import TYPE_CHECKING, Optional, TextIO, Union

import numpy as np

from ..record import record
from . import checkpoint as ckpt
from .data import Dataset, MismatchError, TrainError, check_fits
from .data import load as load_data
from .metrics import Metrics
from .progress import reporter

if TYPE_CHECKING:  # jax, optax and the compiler are imported where they are used
    import optax

    from ..backend.model import Model
    from ..backend.types import Array, DType, PyTree
    from ..checker import CheckedNet
    from ..pipeline import SourceLike

    Net = Union[SourceLike, CheckedNet]   # what compile takes

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "step")
DTYPES = ("float32", "bfloat16", "float64")

#: the defaults, tuned on the digits demo (docs/training.md, docs/performance.md)
DEFAULTS = dict(epochs=30, batch=64, lr=1e-3, optimizer="adam", schedule="cosine",
                weight_decay=None, seed=0, dtype="float32")
#: ``weight_decay=None`` means this per optimizer (adamw's optax default; L2 off otherwise)
DEFAULT_DECAY = {"adamw": 1e-4}
MOMENTUM = 0.9
EVAL_BATCH = 512


class NonFiniteLoss(TrainError):
    """The loss became NaN or infinite: training stopped (the last checkpoint is kept)."""

    def __init__(self, message: str, epoch: int, step: int) -> None:
        super().__init__(message)
        self.epoch, self.step = epoch, step


@record
class Hyper:
    """What a run was trained with (stored in its checkpoints and ``metrics.jsonl``)."""
    epochs: int
    batch: int
    lr: float
    optimizer: str
    schedule: str
    weight_decay: float
    seed: int
    dtype: str

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in DEFAULTS}


@record
class TrainResult:
    """What ``train`` returns: the model and its trained values, and the history."""
    model: object              # patternnet.backend.Model
    params: dict
    state: dict
    opt_state: object
    history: tuple             # one dict per epoch: loss, accuracy, test_loss, test_accuracy, ...
    hyper: Hyper
    data: Dataset
    epoch: int                 # epochs completed
    step: int                  # optimizer steps taken
    run_dir: Optional[str]     # None: nothing written (``out=None``)

    @property
    def test_accuracy(self) -> Optional[float]:
        return self.history[-1]["test_accuracy"] if self.history else None

    @property
    def test_loss(self) -> Optional[float]:
        return self.history[-1]["test_loss"] if self.history else None

    @property
    def checkpoint(self) -> Optional[str]:
        return os.path.join(self.run_dir, ckpt.NAME) if self.run_dir else None


# --- optimizers and schedules --------------------------------------------------------


def make_schedule(name: str, lr: float, total_steps: int) -> optax.Schedule:
    """An optax schedule: constant; cosine decay to 0 over the run; or step: x0.1 at
    50 % and again at 75 % of the run."""
    import optax

    if name == "constant":
        return optax.constant_schedule(lr)
    if name == "cosine":
        return optax.cosine_decay_schedule(lr, max(total_steps, 1))
    if name == "step":
        return optax.piecewise_constant_schedule(
            lr, {int(total_steps * 0.5): 0.1, int(total_steps * 0.75): 0.1})
    raise ValueError(f"schedule={name!r}: expected one of {', '.join(SCHEDULES)}")


def make_optimizer(name: str, schedule: optax.ScalarOrSchedule, weight_decay: float,
                   ) -> optax.GradientTransformation:
    """An optax optimizer.  ``adamw`` decays weights decoupled (its own argument); the
    others add ``weight_decay * params`` to the gradient (L2) when it is not 0."""
    import optax

    if name == "adamw":
        return optax.adamw(schedule, weight_decay=weight_decay)
    if name == "adam":
        opt = optax.adam(schedule)
    elif name == "sgd":
        opt = optax.sgd(schedule)
    elif name == "momentum":
        opt = optax.sgd(schedule, momentum=MOMENTUM)
    else:
        raise ValueError(f"optimizer={name!r}: expected one of {', '.join(OPTIMIZERS)}")
    return optax.chain(optax.add_decayed_weights(weight_decay), opt) if weight_decay else opt


# --- the jitted functions ------------------------------------------------------------


class _Programs:
    """The jitted train step and evaluation, placed on ``devices`` devices."""

    def __init__(self, model, optimizer, schedule, devices: int):
        import jax
        import jax.numpy as jnp

        from ..backend import losses, steps

        # the library's step (backend/steps.py), plus what the loop reports: the
        # correct predictions, and the learning rate the step used
        update = steps.update(model, optimizer) if optimizer is not None else None

        def step(params, state, opt_state, x, y, base, i):
            assert update is not None, "an evaluation-only _Programs has no step"
            params, state, opt_state, loss, logits = update(params, state, opt_state, x, y,
                                                            jax.random.fold_in(base, i))
            correct = jnp.sum(jnp.argmax(logits, -1) == y)
            return params, state, opt_state, loss, correct, schedule(i)

        def evaluate(params, state, x, y, mask):
            logits = model.logits(params, state, x, train=False)[0]
            hit = (jnp.argmax(logits, -1) == y) & mask
            return (jnp.sum(jnp.where(mask, losses.cross_entropies(logits, y), 0.0)),
                    jnp.sum(hit))

        self.devices = devices
        if devices == 1:
            self.step, self.evaluate = jax.jit(step), jax.jit(evaluate)
            self.replicated = self.batch_sharding = None
            return
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        from ..backend import onednn

        # XLA's partitioner has no rule for oneDNN's custom call: it would gather the
        # whole batch onto every device for it (backend/onednn.py)
        step, evaluate = onednn.xla_only(step), onednn.xla_only(evaluate)
        mesh = Mesh(np.array(jax.devices()[:devices]), ("batch",))
        rep = NamedSharding(mesh, PartitionSpec())
        bat = NamedSharding(mesh, PartitionSpec("batch"))
        self.replicated, self.batch_sharding = rep, bat
        self.step = jax.jit(step, in_shardings=(rep, rep, rep, bat, bat, rep, rep),
                            out_shardings=rep)
        self.evaluate = jax.jit(evaluate, in_shardings=(rep, rep, bat, bat, bat),
                                out_shardings=rep)

    def put(self, tree):
        """Params/state/optimizer state onto the devices (replicated)."""
        import jax
        return tree if self.replicated is None else jax.device_put(tree, self.replicated)

    def batch(self, *arrays):
        import jax
        if self.batch_sharding is None:
            return arrays
        return tuple(jax.device_put(a, self.batch_sharding) for a in arrays)


def check_devices(devices: int, batch: int) -> None:
    import jax

    if devices < 1:
        raise TrainError(f"--devices {devices}: expected 1 or more")
    if batch % devices:
        raise TrainError(f"--batch {batch} is not divisible by --devices {devices}: each "
                         f"device takes an equal share; use --batch "
                         f"{max(devices, batch // devices * devices)}")
    have = jax.devices()
    if devices > len(have):
        kind = have[0].platform
        fix = (f"; on CPU set XLA_FLAGS=--xla_force_host_platform_device_count={devices} "
               "before starting Python" if kind == "cpu" else "")
        raise TrainError(f"--devices {devices}: only {len(have)} {kind} device(s) here{fix}")


def evaluate(programs: _Programs, params: PyTree, state: PyTree, x: np.ndarray, y: np.ndarray,
             batch: int = EVAL_BATCH) -> tuple[float, float]:
    """(mean loss, accuracy) over ``x``, in fixed-size batches (the last one padded and
    masked, so one compiled shape serves every batch)."""
    n = len(x)
    batch = min(batch, n)
    batch = -(-batch // programs.devices) * programs.devices
    loss_sum, correct = 0.0, 0
    for lo in range(0, n, batch):
        xb, yb = x[lo:lo + batch], y[lo:lo + batch]
        k = len(xb)
        mask = np.arange(batch) < k
        if k < batch:
            xb = np.concatenate([xb, np.zeros((batch - k,) + xb.shape[1:], xb.dtype)])
            yb = np.concatenate([yb, np.zeros(batch - k, yb.dtype)])
        ls, c = programs.evaluate(params, state, *programs.batch(xb, yb, mask))
        loss_sum += float(ls)
        correct += int(c)
    return loss_sum / n, correct / n


def predict(model: Model, params: PyTree, state: PyTree, x: Array, batch: int = EVAL_BATCH,
            ) -> tuple[np.ndarray, np.ndarray]:
    """``(logits, probabilities)`` of the network on ``x`` (NumPy), batch by batch; for a
    network ending in SOFTMAX the logits are that SOFTMAX's input."""
    import jax

    logits_fn = jax.jit(lambda p, s, x: model.logits(p, s, x)[0])
    outs = [np.asarray(logits_fn(params, state, x[lo:lo + batch]), np.float32)
            for lo in range(0, len(x), batch)]
    logits = np.concatenate(outs)
    return logits, np.asarray(jax.nn.softmax(logits, axis=-1))


# --- data order ----------------------------------------------------------------------


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The training examples' order in ``epoch``: a pure function of (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n)


# --- compiling the network against the data ------------------------------------------


def compile_for(source_or_path: Net, data_shape: tuple, classes: int, *,
                net: Optional[str] = None, define: Optional[dict] = None,
                dtype: DType = "float32") -> Model:
    """The model, with a bare INPUT taking the data's shape and a bare final FC the
    data's classes.  A written shape that disagrees is a ``MismatchError``."""
    from ..backend import compile as _compile

    model = _compile(source_or_path, net=net, define=define, input_shape=tuple(data_shape),
                     classes=int(classes), dtype=dtype)
    return model


# --- Ctrl-C at step boundaries -------------------------------------------------------


class _Interrupts:
    """SIGINT sets a flag the loop checks between steps (so the checkpoint holds one
    consistent step); a second Ctrl-C interrupts at once.  Only in the main thread."""

    def __init__(self):
        self.hit = False
        self.previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.getsignal(signal.SIGINT)

            def handler(signum, frame):
                if self.hit:
                    raise KeyboardInterrupt
                self.hit = True
            signal.signal(signal.SIGINT, handler)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


# --- the run -------------------------------------------------------------------------


def _hyper(args: dict, saved: Optional[dict]) -> Hyper:
    """The run's hyperparameters: the given ones, else the checkpoint's (resuming), else
    the defaults.  A resumed run may change ``epochs`` only."""
    values = {}
    for k, default in DEFAULTS.items():
        given = args.get(k)
        if saved is not None and k != "epochs":
            if given is not None and given != saved[k]:
                raise TrainError(f"{k}={given!r} differs from the checkpoint's {saved[k]!r}: "
                                 "a resumed run keeps its settings (only --epochs may change); "
                                 "start a new run to change it")
            values[k] = saved[k]
        else:
            values[k] = given if given is not None else (
                saved[k] if saved is not None else default)
    if values["weight_decay"] is None:
        values["weight_decay"] = DEFAULT_DECAY.get(values["optimizer"], 0.0)
    h = Hyper(**values)
    _validate(h)
    return h


def _validate(h: Hyper) -> None:
    if h.optimizer not in OPTIMIZERS:
        raise TrainError(f"optimizer={h.optimizer!r}: expected one of {', '.join(OPTIMIZERS)}")
    if h.schedule not in SCHEDULES:
        raise TrainError(f"schedule={h.schedule!r}: expected one of {', '.join(SCHEDULES)}")
    if h.dtype not in DTYPES:
        raise TrainError(f"dtype={h.dtype!r}: expected one of {', '.join(DTYPES)}")
    for k in ("epochs", "batch"):
        v = getattr(h, k)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise TrainError(f"{k}={v!r}: expected a positive whole number")
    if not (isinstance(h.lr, (int, float)) and h.lr > 0 and math.isfinite(h.lr)):
        raise TrainError(f"lr={h.lr!r}: expected a positive number, e.g. 1e-3")
    if not (isinstance(h.weight_decay, (int, float)) and h.weight_decay >= 0):
        raise TrainError(f"weight_decay={h.weight_decay!r}: expected a number >= 0")


def _data_id(data: Dataset) -> dict:
    """What a checkpoint records of its data, to refuse resuming on other data."""
    import hashlib

    h = hashlib.blake2b(digest_size=8)
    for a in (data.y_train, data.y_test):
        h.update(np.ascontiguousarray(a).tobytes())
    return {"name": data.name, "train": len(data.x_train), "test": len(data.x_test),
            "shape": list(data.input_shape), "classes": data.classes, "labels": h.hexdigest()}


def run_label(source_or_path: Net, net: Optional[str]) -> str:
    """The run's name: ``net``, else the .pn file's stem, else "net"."""
    if net:
        return net
    s = os.fspath(source_or_path) if isinstance(source_or_path, os.PathLike) else source_or_path
    if isinstance(s, str) and s.endswith(".pn") and "\n" not in s:
        return os.path.splitext(os.path.basename(s))[0]
    return "net"


def default_run_dir(source_or_path: Net, net: Optional[str] = None, root: str = "runs",
                    ) -> str:
    """``runs/<net>-<YYYYmmdd-HHMMSS>`` (a suffix when that exists already)."""
    base = os.path.join(root, f"{run_label(source_or_path, net)}-"
                              f"{time.strftime('%Y%m%d-%H%M%S')}")
    path, i = base, 1
    while os.path.exists(path):
        i += 1
        path = f"{base}-{i}"
    return path


def train(source_or_path: Net, *, data: Union[str, Dataset] = "digits",
          epochs: Optional[int] = None,
          batch: Optional[int] = None, lr: Optional[float] = None,
          optimizer: Optional[str] = None, schedule: Optional[str] = None,
          weight_decay: Optional[float] = None, seed: Optional[int] = None,
          out: Optional[str] = None, resume: Union[bool, str, os.PathLike[str]] = False,
          devices: int = 1,
          dtype: Optional[str] = None, net: Optional[str] = None,
          define: Optional[dict] = None, progress: Union[bool, str] = False,
          stream: Optional[TextIO] = None) -> TrainResult:
    """Train a network and return a ``TrainResult`` (model, params, state, history).

    ``data``: "digits" (scikit-learn's bundled digits), a ``.npz`` path, or a
    ``patternnet.training.Dataset``.  Hyperparameters left as None take ``DEFAULTS`` (or,
    resuming, the checkpoint's).  ``out``: the run folder for checkpoints, metrics.jsonl
    and metrics.png (None: nothing is written).  ``resume``: True continues the run in
    ``out`` from its checkpoint; a path (a run folder or a checkpoint) continues that
    run, writing into its folder.  ``progress``: False (silent, the default), True (a
    progress bar on a terminal, else one line per epoch), "bar" or "lines"; printed to
    ``stream`` (default stdout).

    Raises ``TrainError`` subclasses (``DataError``, ``MismatchError``,
    ``NonFiniteLoss``, ``CheckpointError``) and ``PatternNetError`` for the .pn file.
    """
    saved, out = _to_resume(resume, out)
    cfg = saved.config if saved is not None else None
    hyper = _hyper(dict(epochs=epochs, batch=batch, lr=lr, optimizer=optimizer,
                        schedule=schedule, weight_decay=weight_decay, seed=seed, dtype=dtype),
                   cfg["hyper"] if cfg else None)
    if cfg is not None:  # the run's network and data, unless given
        net = net if net is not None else cfg.get("net")
        define = define if define is not None else cfg.get("define")
        if data == "digits" and cfg.get("data_spec") not in (None, "digits"):
            data = cfg["data_spec"]
    data_spec = data if isinstance(data, str) else getattr(data, "name", "dataset")
    dataset = data if isinstance(data, Dataset) else load_data(data)
    _check_run(saved, dataset, hyper, devices)
    model = compile_for(source_or_path, dataset.input_shape, dataset.classes, net=net,
                        define=define, dtype=hyper.dtype)
    check_fits(dataset, model.input_shape, model.output_shape, source=_path_of(source_or_path))
    label = run_label(source_or_path, net)
    config = {"net": net, "define": define, "data_spec": data_spec, "data": _data_id(dataset),
              "hyper": hyper.to_dict(), "input_shape": list(model.input_shape),
              "classes": dataset.classes, "params": model.checked.params, "source": label}
    run = _Run(model, hyper, dataset, devices, saved, out, config)
    return run.train(reporter(progress, stream), label)


def _to_resume(resume, out):
    """(the checkpoint to continue or None, the run folder)."""
    if not resume:
        return None, out
    where = out if resume is True else os.fspath(resume)
    if where is None:
        raise TrainError("resume=True needs out= (the run folder to continue)")
    saved = ckpt.load(where)
    return saved, os.path.dirname(saved.path) or "."


def _check_run(saved, dataset: Dataset, hyper: Hyper, devices: int) -> None:
    """What must hold before anything is compiled."""
    if saved is not None and saved.config.get("data") != _data_id(dataset):
        raise TrainError(f"{saved.path}: was trained on other data "
                         f"({saved.config.get('data', {}).get('name')}); "
                         "resume with the --data the run started with")
    check_devices(devices, hyper.batch)
    if len(dataset.x_train) < hyper.batch:
        raise TrainError(f"batch={hyper.batch} is larger than the {len(dataset.x_train):,} "
                         f"training examples; use --batch {len(dataset.x_train)} or fewer")
    if saved is not None and hyper.epochs < saved.epoch:
        raise TrainError(f"epochs={hyper.epochs}: the checkpoint has {saved.epoch} epochs "
                         "done already; pass a larger --epochs to train on")


def _path_of(source_or_path) -> Optional[str]:
    """The .pn path, for messages, when the network came from a file."""
    if isinstance(source_or_path, (str, os.PathLike)):
        s = os.fspath(source_or_path)
        if "\n" not in s and len(s) < 200:
            return s
    return None


class _Run:
    """One training run: the values being trained and the loop's position (``step``,
    and ``partial``: the epoch-so-far sums of a run stopped mid-epoch)."""

    def __init__(self, model, hyper: Hyper, dataset: Dataset, devices: int, saved, out,
                 config: dict):
        import jax

        self.model, self.hyper, self.dataset, self.out = model, hyper, dataset, out
        self.config, self.saved = config, saved
        self.steps_per_epoch = len(dataset.x_train) // hyper.batch
        self.total_steps = hyper.epochs * self.steps_per_epoch
        schedule = make_schedule(hyper.schedule, hyper.lr, self.total_steps)
        opt = make_optimizer(hyper.optimizer, schedule, hyper.weight_decay)
        self.programs = _Programs(model, opt, schedule, devices)
        params, state = model.init(jax.random.key(hyper.seed))
        opt_state = opt.init(params)
        # dropout keys: fold_in(base, step); init drew from the key itself
        self.base = jax.random.fold_in(jax.random.key(hyper.seed), 1)
        self.step = 0
        self.partial: Optional[dict] = None  # the epoch-so-far sums of a mid-epoch stop
        if saved is not None:
            params, state, opt_state = self._restore(saved, params, state, opt_state)
        put = self.programs.put
        self.params, self.state, self.opt_state = put(params), put(state), put(opt_state)
        if out is not None:
            os.makedirs(out, exist_ok=True)
        self.metrics = Metrics(out)
        self.history = self.metrics.resume(self.step, saved.epoch) if saved is not None else []
        self.metrics.write({"type": "run", "step": self.step, "resumed": saved is not None,
                            "devices": devices, "backend": jax.default_backend(), **config})

    def _restore(self, saved, params, state, opt_state):
        import jax
        import jax.numpy as jnp

        saved.check_fits(params, state)
        cast = lambda a, t: jnp.asarray(a, t.dtype)  # noqa: E731
        params = jax.tree_util.tree_map(cast, saved.params, params)
        state = jax.tree_util.tree_map(cast, saved.state, state)
        self.base = jax.random.wrap_key_data(jnp.asarray(saved.rng))
        self.step, self.partial = saved.step, saved.meta.get("partial")
        return params, state, saved.opt_state(opt_state)

    def save(self) -> None:
        """The checkpoint: after every epoch, and on Ctrl-C (at a step boundary)."""
        if self.out is None:
            return
        import jax

        ckpt.save(os.path.join(self.out, ckpt.NAME), params=self.params, state=self.state,
                  opt_state=self.opt_state, rng=jax.random.key_data(self.base),
                  meta={"epoch": self.step // self.steps_per_epoch, "step": self.step,
                        "steps_per_epoch": self.steps_per_epoch, "config": self.config,
                        "partial": self.partial, "time": time.time()})

    def train(self, report, label: str) -> TrainResult:
        h, saved = self.hyper, self.saved
        report.header(f"{label}: {self.model.checked.params:,} params | "
                      f"{self.dataset.describe()} | {h.optimizer} lr {h.lr:g} {h.schedule}, "
                      f"batch {h.batch}, {h.epochs} epochs | {self._devices()}"
                      + (f" | resuming at epoch {saved.epoch}, step {self.step}"
                         if saved is not None else ""))
        try:
            with _Interrupts() as interrupts:
                report.start(h.epochs, self.total_steps, self.step,
                             self.step // self.steps_per_epoch)
                while self.step < self.total_steps:
                    rec = self.epoch(interrupts, report)
                    self.history.append(rec)
                    self.metrics.write(rec)
                    self.metrics.flush()
                    self.partial = None
                    self.save()                # after the metrics: see Metrics.resume
                    report.epoch(rec)
        except KeyboardInterrupt:
            report.close()
            self.save()
            raise
        finally:
            report.close()
            self.metrics.close()
            if self.out is not None:
                self.metrics.plot(self.history, self.steps_per_epoch, label)
        return self.result()

    def _devices(self) -> str:
        import jax
        return f"{jax.default_backend()} x{self.programs.devices}"

    def epoch(self, interrupts, report) -> dict:
        """The rest of the current epoch (all of it, unless resuming mid-epoch), then the
        test split: the epoch's record."""
        x, y, n = self.dataset.x_train, self.dataset.y_train, self.hyper.batch
        epoch, within = divmod(self.step, self.steps_per_epoch)
        order = epoch_order(self.hyper.seed, epoch, len(x))
        sums = self.partial or {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
        t0 = time.perf_counter() - sums["seconds"]
        for i in range(within, self.steps_per_epoch):
            if interrupts.hit:
                raise KeyboardInterrupt
            idx = order[i * n:(i + 1) * n]
            loss, correct, lr_now = self.one_step(x[idx], y[idx], epoch, i)
            sums = {"loss": sums["loss"] + loss * len(idx),
                    "correct": sums["correct"] + correct, "seen": sums["seen"] + len(idx),
                    "seconds": time.perf_counter() - t0}
            self.partial = sums
            self.metrics.write({"type": "step", "epoch": epoch + 1, "step": self.step,
                                "loss": loss, "accuracy": correct / len(idx), "lr": lr_now})
            report.step(epoch + 1, sums["loss"] / sums["seen"],
                        sums["correct"] / sums["seen"], sums["seen"] / sums["seconds"])
        seconds = time.perf_counter() - t0
        test_loss, test_acc = evaluate(self.programs, self.params, self.state,
                                       self.dataset.x_test, self.dataset.y_test)
        return {"type": "epoch", "epoch": epoch + 1, "step": self.step,
                "loss": sums["loss"] / sums["seen"], "accuracy": sums["correct"] / sums["seen"],
                "test_loss": test_loss, "test_accuracy": test_acc, "lr": lr_now,
                "examples_per_s": sums["seen"] / seconds, "train_s": seconds,
                "elapsed_s": time.perf_counter() - t0}

    def one_step(self, xb, yb, epoch: int, i: int) -> tuple[float, int, float]:
        """One optimizer step; (loss, correct predictions, learning rate).  A non-finite
        loss stops the run before its values replace the last good ones."""
        xb, yb = self.programs.batch(xb, yb)
        new = self.programs.step(self.params, self.state, self.opt_state, xb, yb, self.base,
                                 np.int32(self.step))
        loss, correct, lr_now = float(new[3]), int(new[4]), float(new[5])
        if not math.isfinite(loss):
            kept = (f", the last good checkpoint (epoch {epoch}) is kept"
                    if self.out is not None and epoch > 0 else "")
            raise NonFiniteLoss(
                f"the loss became {loss} at step {self.step + 1} (epoch {epoch + 1}, batch "
                f"{i + 1} of {self.steps_per_epoch}); training stopped{kept}; try a smaller "
                f"--lr (now {self.hyper.lr:g})", epoch + 1, self.step + 1)
        self.params, self.state, self.opt_state = new[:3]
        self.step += 1
        return loss, correct, lr_now

    def result(self) -> TrainResult:
        history = self.history
        if not history and self.saved is not None:  # nothing left to train: score it
            test_loss, test_acc = evaluate(self.programs, self.params, self.state,
                                           self.dataset.x_test, self.dataset.y_test)
            history = [{"type": "epoch", "epoch": self.saved.epoch, "step": self.step,
                        "test_loss": test_loss, "test_accuracy": test_acc}]
        return TrainResult(self.model, self.params, self.state, self.opt_state,
                           tuple(history), self.hyper, self.dataset,
                           self.step // self.steps_per_epoch, self.step, self.out)


# --- a trained network back from its checkpoint --------------------------------------


def restore(source_or_path: Net, checkpoint: Union[ckpt.Checkpoint, str, os.PathLike[str]], *,
            net: Optional[str] = None, define: Optional[dict] = None,
            ) -> tuple[Model, PyTree, PyTree, ckpt.Checkpoint]:
    """``(model, params, state, ckpt)`` from a checkpoint (or run folder) and the .pn
    it was trained from; ``net``/``define`` default to the run's, and a bare INPUT and a
    bare final FC take the shape and classes the run trained with."""
    import jax
    import jax.numpy as jnp

    saved = checkpoint if isinstance(checkpoint, ckpt.Checkpoint) else ckpt.load(checkpoint)
    cfg = saved.config
    net = net if net is not None else cfg.get("net")
    define = define if define is not None else cfg.get("define")
    model = compile_for(source_or_path, tuple(cfg["input_shape"]), cfg["classes"], net=net,
                        define=define, dtype=cfg["hyper"]["dtype"])
    if list(model.input_shape) != list(cfg["input_shape"]):
        trained = "x".join(map(str, cfg["input_shape"]))
        takes = "x".join(map(str, model.input_shape))
        raise MismatchError(f"{saved.path}: the run trained on {trained} inputs, this network "
                            f"takes {takes}; pass the .pn, --net and -D the run used")
    shapes = jax.eval_shape(model.init, jax.random.key(0))
    saved.check_fits(*shapes)
    params = jax.tree_util.tree_map(lambda a, t: jnp.asarray(a, t.dtype), saved.params, shapes[0])
    state = jax.tree_util.tree_map(lambda a, t: jnp.asarray(a, t.dtype), saved.state, shapes[1])
    return model, params, state, saved


def evaluate_checkpoint(model: Model, params: PyTree, state: PyTree, dataset: Dataset,
                        ) -> tuple[float, float]:
    """(mean loss, accuracy) of a restored model on ``dataset``'s test split."""
    check_fits(dataset, model.input_shape, model.output_shape, exact=False)
    return evaluate(_Programs(model, None, None, 1), params, state, dataset.x_test,
                    dataset.y_test)
