"""Training checkpoints: one ``.npz`` file per run, replaced atomically.

Format (docs/training.md, "Checkpoints"): an uncompressed NumPy ``.npz`` whose entries
are

* ``__meta__``: UTF-8 JSON (a uint8 array): ``format`` (``FORMAT``), the epoch and
  step, the training configuration, and for every array entry its dtype;
* ``params/<path>/<leaf>``, ``state/<path>/<leaf>``: the model's pytrees, keyed by the
  layer path segments joined with ``/`` (``params/conv1/w``);
* ``opt/<i>``: the optimizer state's leaves in ``jax.tree_util`` order (rebuilt on load
  from ``optimizer.init(params)``, which fixes the structure);
* ``rng``: the run's base key data (uint32).

bfloat16 arrays (not a NumPy dtype) are stored as their uint16 bits; ``__meta__``
names the real dtype.  Writing goes through ``patternnet.atomic``: a temporary file in
the same folder, fsync, ``os.replace``, so a reader (or a process killed at any moment)
sees the old checkpoint or the new one, never a mix.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Optional, Union

import numpy as np

from .data import TrainError

if TYPE_CHECKING:
    from ..backend.types import Array, PyTree

FORMAT = "patternnet-checkpoint/1"
NAME = "checkpoint.npz"

#: test hook: when set to a path, ``save`` replacing an existing checkpoint creates
#: that file after writing the temporary one and before renaming it, then sleeps
#: ``PATTERNNET_TEST_CKPT_PAUSE`` seconds (default 5), so a test can SIGKILL mid-write
_HOOK_ENV, _PAUSE_ENV = "PATTERNNET_TEST_CKPT_HOOK", "PATTERNNET_TEST_CKPT_PAUSE"


class CheckpointError(TrainError):
    """A checkpoint is missing, unreadable, or does not fit the network/optimizer."""
    exit_code = 2


def _flatten(tree, prefix: str, out: dict) -> None:
    for k, v in tree.items():
        key = f"{prefix}/{k}"
        if isinstance(v, dict):
            _flatten(v, key, out)
        else:
            out[key] = v


def _unflatten(flat: dict, prefix: str) -> dict:
    root: dict = {}
    for key, value in flat.items():
        if not key.startswith(prefix + "/"):
            continue
        parts = key[len(prefix) + 1:].split("/")
        d = root
        for p in parts[:-1]:
            d = d.setdefault(p, {})
        d[parts[-1]] = value
    return root


def _to_numpy(value):
    """(array NumPy can store, dtype name): bfloat16 becomes its uint16 bits."""
    a = np.asarray(value)
    name = a.dtype.name
    if a.dtype.kind == "V" or name == "bfloat16":
        a = a.view(np.uint16)
    return a, name


def _from_numpy(a, name: str):
    if name == "bfloat16":
        import ml_dtypes
        return a.view(ml_dtypes.bfloat16)
    return a


def save(path: Union[str, os.PathLike[str]], *, params: PyTree, state: PyTree,
         opt_state: PyTree, rng: Array, meta: dict) -> None:
    """Write a checkpoint atomically (the old one stays whole until the rename)."""
    import jax

    from ..atomic import atomic_open

    arrays: dict = {}
    _flatten(params, "params", arrays)
    _flatten(state, "state", arrays)
    for i, leaf in enumerate(jax.tree_util.tree_leaves(opt_state)):
        arrays[f"opt/{i:05d}"] = leaf
    arrays["rng"] = rng
    stored, dtypes = {}, {}
    for key, value in arrays.items():
        stored[key], dtypes[key] = _to_numpy(value)
    full = {"format": FORMAT, **meta, "dtypes": dtypes}
    stored["__meta__"] = np.frombuffer(json.dumps(full).encode(), np.uint8)
    path = os.fspath(path)
    _remove_stale_temps(path)
    replacing = os.path.exists(path)
    with atomic_open(path, "wb") as f:
        np.savez(f, **stored)
        hook = os.environ.get(_HOOK_ENV)
        if hook and replacing:
            f.flush()
            open(hook, "w").close()
            time.sleep(float(os.environ.get(_PAUSE_ENV, "5")))


def _remove_stale_temps(path: str) -> None:
    """Temporary files a killed process left beside ``path`` (atomic_open's names)."""
    folder, base = os.path.split(os.path.abspath(path))
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if name.startswith(".tmp-") and name.endswith("-" + base):
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass


class Checkpoint:
    """A loaded checkpoint: ``meta`` (the JSON), ``params``, ``state``, ``rng``, and the
    optimizer leaves, rebuilt into a state by ``opt_state(template)``."""

    def __init__(self, path: str, meta: dict, arrays: dict) -> None:
        self.path, self.meta, self._arrays = path, meta, arrays
        self.params = _unflatten(arrays, "params")
        self.state = _unflatten(arrays, "state")
        self.rng = arrays.get("rng")
        self._opt = [arrays[k] for k in sorted(k for k in arrays if k.startswith("opt/"))]

    @property
    def epoch(self) -> int:
        return int(self.meta["epoch"])

    @property
    def step(self) -> int:
        return int(self.meta["step"])

    @property
    def config(self) -> dict:
        return self.meta.get("config", {})

    def opt_state(self, template: PyTree) -> PyTree:
        """The optimizer state, with ``template``'s structure (``optimizer.init(params)``)."""
        import jax
        import jax.numpy as jnp

        leaves, treedef = jax.tree_util.tree_flatten(template)
        if len(leaves) != len(self._opt) or any(
                np.shape(a) != np.shape(b) for a, b in zip(leaves, self._opt)):
            raise CheckpointError(f"{self.path}: the optimizer state does not fit "
                                  f"{self.config.get('optimizer', 'this optimizer')}; resume "
                                  "with the optimizer the run was started with")
        return jax.tree_util.tree_unflatten(
            treedef, [jnp.asarray(v, jnp.asarray(t).dtype) for v, t in zip(self._opt, leaves)])

    def check_fits(self, params: PyTree, state: PyTree) -> None:
        """Raise ``CheckpointError`` unless the arrays have the model's tree and shapes."""
        for what, mine, theirs in (("params", self.params, params), ("state", self.state, state)):
            a: dict[str, tuple] = {}
            b: dict[str, tuple] = {}
            _flatten(mine, what, a)
            _flatten(theirs, what, b)
            if a.keys() != b.keys():
                extra = sorted(set(a) ^ set(b))[0]
                raise CheckpointError(f"{self.path}: was written for another network ({extra} "
                                      f"is in one and not the other); pass the .pn, --net and "
                                      "-D the run used")
            for k in a:
                if np.shape(a[k]) != np.shape(b[k]):
                    raise CheckpointError(f"{self.path}: {k} has shape {np.shape(a[k])}, this "
                                          f"network's has {np.shape(b[k])}; pass the .pn, --net "
                                          "and -D the run used")


def load(path: Union[str, os.PathLike[str]]) -> Checkpoint:
    """Read a checkpoint (a run folder means its ``checkpoint.npz``)."""
    import zipfile

    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, NAME)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint; train first (patternnet train "
                              "writes RUN_DIR/checkpoint.npz)") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, AttributeError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint ({e})") from None
    raw = arrays.pop("__meta__", None)
    try:
        meta = json.loads(raw.tobytes().decode()) if raw is not None else None
    except (ValueError, UnicodeDecodeError):
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a PatternNet checkpoint (no {FORMAT} metadata)")
    dtypes = meta.get("dtypes", {})
    arrays = {k: _from_numpy(v, dtypes.get(k, v.dtype.name)) for k, v in arrays.items()}
    return Checkpoint(path, meta, arrays)


def find_latest(runs_dir: str, prefix: str) -> Optional[str]:
    """The newest ``runs_dir/<prefix>-*`` folder holding a checkpoint, or None."""
    try:
        names = sorted(n for n in os.listdir(runs_dir) if n.startswith(prefix + "-"))
    except OSError:
        return None
    for name in reversed(names):
        if os.path.exists(os.path.join(runs_dir, name, NAME)):
            return os.path.join(runs_dir, name)
    return None
