"""Export a compiled network's inference to one ``.pnx`` file, and load it back.

    >>> model.export("digits.pnx", params, state)            # any batch size
    >>> model.export("digits4.pnx", params, state, batch=4)  # a fixed batch
    >>> loaded = patternnet.load("digits.pnx")               # no .pn source, no compiler
    >>> y = loaded(x)                                        # == model.forward(params, state, x)

A ``.pnx`` file is a zip archive (docs/backend.md, "Export") of four members:

* ``manifest.json``: ``{"format": "patternnet-export", "version": 1, ...}`` with the
  PatternNet and JAX versions, the network's name, input and output shapes (without the
  batch), the batch (``null``: any), dtype, platforms, the checker's totals, and for
  every parameter and state tensor its name (``"conv1/w"``), its keys in the nested
  dicts, shape and dtype;
* ``exported.bin``: ``jax.export.Exported.serialize()`` of ``f(params, state, x) ->
  y``, the jitted ``apply(..., train=False)``; the weights are arguments, not constants;
* ``params.npz`` and ``state.npz``: the arrays (``numpy.savez``), keyed by name.

``load`` reads it with jax, numpy and the standard library: it does not import the
parser, the resolver or the checker.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

import jax
import numpy as np

from ..diagnostics import Diagnostic, SourceError
from ..source import read_bytes
from . import onednn, trees
from .types import Array, PyTree

if TYPE_CHECKING:  # pragma: no cover
    from .model import Model

FORMAT = "patternnet-export"
VERSION = 1
MANIFEST, EXPORTED, PARAMS, STATE = "manifest.json", "exported.bin", "params.npz", "state.npz"


# --- exporting ------------------------------------------------------------------------


def _abstract(tree):
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), a.dtype), tree)


def _x_spec(model: "Model", batch: Optional[int]):
    if batch is None:
        n = jax.export.symbolic_shape("b")[0]
    else:
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
            raise ValueError(f"batch={batch!r}: expected a positive integer, or None for any "
                             "batch size")
        n = int(batch)
    return jax.ShapeDtypeStruct((n,) + tuple(model.input_shape), model.dtype)


def exported(model: "Model", params: PyTree, state: PyTree, batch: Optional[int] = None,
             platforms: Optional[Sequence[str]] = None) -> "jax.export.Exported":
    """``jax.export`` of ``f(params, state, x) = model.forward(params, state, x)``.

    ``batch=None`` makes the batch dimension symbolic; an int fixes it.  ``platforms``:
    e.g. ``("cpu", "cuda")``; by default the platform JAX runs on.  The program is
    portable: XLA's own convolutions, never the oneDNN library's (``onednn.xla_only``),
    so it loads wherever JAX does."""
    kw: dict[str, Any] = {} if platforms is None else {"platforms": tuple(platforms)}
    return jax.export.export(_portable_forward(model), **kw)(
        _abstract(params), _abstract(state), _x_spec(model, batch))


def _portable_forward(model: "Model"):
    """The jitted forward with XLA's convolutions only (``onednn.xla_only``)."""
    return jax.jit(onednn.xla_only(_inference(model)))


def lower(model: "Model", params: PyTree, state: PyTree, batch: int = 1) -> Any:
    """``jax.jit(forward).lower(...)`` at a fixed batch: a ``jax.stages.Lowered``."""
    return jax.jit(_inference(model)).lower(_abstract(params), _abstract(state),
                                               _x_spec(model, batch))


def stablehlo(model: "Model", params: Optional[PyTree] = None, state: Optional[PyTree] = None,
              batch: Optional[int] = None) -> str:
    """The StableHLO text of inference: with ``batch=None`` the exported module (batch
    symbolic), else the lowering at that batch.  Without ``params``/``state`` their
    shapes come from ``jax.eval_shape(model.init, 0)``."""
    if params is None or state is None:
        p, s = jax.eval_shape(model.init, jax.random.key(0))
        params = p if params is None else params
        state = s if state is None else state
    if batch is None:
        return exported(model, params, state, None).mlir_module()
    return _portable_forward(model).lower(_abstract(params), _abstract(state),
                                          _x_spec(model, batch)).as_text()


def _inference(model: "Model"):
    """Pure inference, ``apply(params, state, x)[0]``: what ``forward`` jits."""
    return lambda params, state, x: model.apply(params, state, x)[0]


def _tensors(model: "Model", tree, kind: str) -> list:
    """[(name, keys, array)] for every leaf: name = layer path + "/" + leaf keys."""
    out = []
    for layer in model.entries:  # the layers with an entry in this model's layout
        if not (layer.params if kind == "params" else layer.state):
            continue
        sub = trees.entry(tree, layer, kind)
        leaves, _ = jax.tree_util.tree_flatten_with_path(sub)
        for kp, leaf in leaves:
            inner = tuple(str(getattr(k, "key", k)) for k in kp)
            out.append(("/".join((layer.path,) + inner), list(layer.keys + inner),
                        np.asarray(leaf)))
    return out


def _npz(tensors) -> bytes:
    buf = io.BytesIO()
    # npz cannot hold bfloat16: such arrays are stored as their uint16 bit patterns (the
    # manifest keeps "dtype": "bfloat16"; `load` views them back)
    np.savez(buf, **{name: (a.view(np.uint16) if a.dtype.name == "bfloat16" else a)
                     for name, _, a in tensors})
    return buf.getvalue()


def export(model: "Model", path: Union[str, os.PathLike[str]], params: PyTree, state: PyTree,
           batch: Optional[int] = None, platforms: Optional[Sequence[str]] = None) -> None:
    """Write ``path`` (conventionally ``.pnx``) atomically: see the module's docstring."""
    from .. import __version__
    from ..atomic import atomic_open

    ex = exported(model, params, state, batch, platforms)
    blob = bytes(ex.serialize())
    ptensors, stensors = _tensors(model, params, "params"), _tensors(model, state, "state")
    c = model.checked
    t = c.totals
    manifest = {
        "format": FORMAT, "version": VERSION,
        "patternnet": __version__, "jax": jax.__version__,
        "network": c.name,
        "input_shape": list(model.input_shape), "output_shape": list(model.output_shape),
        "batch": batch, "dtype": np.dtype(model.dtype).name,
        "platforms": list(ex.platforms),
        "totals": {"params": t.params, "state": t.state, "macs": t.macs, "flops": t.flops,
                   "activations": t.activations},
        "params": [{"name": n, "keys": k, "shape": list(a.shape), "dtype": a.dtype.name}
                   for n, k, a in ptensors],
        "state": [{"name": n, "keys": k, "shape": list(a.shape), "dtype": a.dtype.name}
                  for n, k, a in stensors],
    }
    with atomic_open(path, "wb") as f:
        with zipfile.ZipFile(f, "w") as z:
            z.writestr(MANIFEST, json.dumps(manifest, indent=1) + "\n",
                       compress_type=zipfile.ZIP_DEFLATED)
            z.writestr(EXPORTED, blob, compress_type=zipfile.ZIP_DEFLATED)
            z.writestr(PARAMS, _npz(ptensors), compress_type=zipfile.ZIP_STORED)
            z.writestr(STATE, _npz(stensors), compress_type=zipfile.ZIP_STORED)


# --- loading --------------------------------------------------------------------------


def _fail(code: str, message: str, help: Optional[str] = None) -> SourceError:
    return SourceError([Diagnostic(code, message, help=help)])


def _not_export(name: str, why: str) -> SourceError:
    return _fail("E005", f"{name}: not a PatternNet export: {why}",
                 help="make one with Model.export(path, params, state)")


class Loaded:
    """An exported network: ``loaded(x) -> y`` (jitted), ``params``, ``state``,
    ``metadata`` (the manifest), ``input_shape``, ``output_shape``, ``batch`` (None: any),
    ``exported`` (the ``jax.export.Exported``), ``stablehlo()``."""

    def __init__(self, exported: "jax.export.Exported", params: dict, state: dict,
                 metadata: dict, file: str = "") -> None:
        self.exported, self.params, self.state = exported, params, state
        self.metadata, self.file = metadata, file
        self.input_shape = tuple(metadata["input_shape"])
        self.output_shape = tuple(metadata["output_shape"])
        self.batch = metadata.get("batch")
        self.dtype = np.dtype(jax.numpy.dtype(metadata["dtype"]))
        if jax.dtypes.canonicalize_dtype(self.dtype) != self.dtype:
            raise ValueError(f"{file or 'this export'} computes in {self.dtype.name}: call "
                             "jax.config.update('jax_enable_x64', True) (or load and call it "
                             "inside `with jax.enable_x64(True):`)")
        self._call = jax.jit(exported.call)

    def __call__(self, x: Array) -> Array:
        x = jax.numpy.asarray(x)
        want = self.input_shape
        n = "N" if self.batch is None else str(self.batch)
        expected = f"({', '.join([n] + [str(d) for d in want])})"
        if x.ndim != len(want) + 1 or tuple(x.shape[1:]) != want \
                or (self.batch is not None and x.shape[0] != self.batch):
            fixed = (f" (exported with a fixed batch of {self.batch}; export with batch=None "
                     "for any batch size)" if self.batch is not None else "")
            raise ValueError(f"input of shape {tuple(x.shape)}: this export takes a batch of "
                             f"shape {expected}{fixed}")
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        return self._call(self.params, self.state, x)

    def stablehlo(self) -> str:
        return self.exported.mlir_module()

    def __repr__(self) -> str:
        name = self.metadata.get("network") or "(default network)"
        return (f"<patternnet Loaded {name}: input {self.input_shape}, output "
                f"{self.output_shape}, batch {self.batch if self.batch is not None else 'any'}>")


def _nested(entries, npz, name: str, member: str) -> dict:
    root: dict = {}
    for e in entries:
        try:
            a = npz[e["name"]]
            keys = e["keys"]
        except (KeyError, TypeError) as err:
            raise _not_export(name, f"{member} lacks {err}") from None
        if list(a.shape) != list(e["shape"]):
            raise _not_export(name, f"{member}: {e['name']} has shape {list(a.shape)}, the "
                              f"manifest says {e['shape']}")
        if e.get("dtype") == "bfloat16" and a.dtype == np.uint16:
            a = a.view(jax.numpy.bfloat16)
        d = root
        for k in keys[:-1]:
            d = d.setdefault(k, {})
        d[keys[-1]] = jax.numpy.asarray(a)
    return root


def load(path: Union[str, os.PathLike[str]]) -> Loaded:
    """Read a ``.pnx`` file made by ``Model.export``.

    Errors are ``SourceError``: E001 (cannot read the file), E005 (not a PatternNet
    export), E006 (an export format version this PatternNet does not know)."""
    name = os.fspath(path)
    data = read_bytes(name, kind=".pnx file")
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise _not_export(name, "not a zip archive") from None
    with z:
        members = set(z.namelist())
        if MANIFEST not in members:
            raise _not_export(name, f"no {MANIFEST}")
        try:
            manifest = json.loads(z.read(MANIFEST).decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise _not_export(name, f"{MANIFEST} is not JSON ({e})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise _not_export(name, f"{MANIFEST} does not say format {FORMAT!r}")
        version = manifest.get("version")
        if version != VERSION:
            raise _fail("E006", f"{name}: export format version {version!r}; this PatternNet "
                        f"reads version {VERSION}",
                        help=f"the file was written by PatternNet "
                        f"{manifest.get('patternnet', '?')}: load it with that version")
        missing = sorted({EXPORTED, PARAMS, STATE} - members)
        if missing:
            raise _not_export(name, f"missing {', '.join(missing)}")
        try:
            ex = jax.export.deserialize(bytearray(z.read(EXPORTED)))
        except Exception as e:  # noqa: BLE001 -- any failure means a damaged file
            raise _not_export(name, f"{EXPORTED} cannot be deserialized ({e})") from None
        loaded = []
        for member, key in ((PARAMS, "params"), (STATE, "state")):
            try:
                npz = np.load(io.BytesIO(z.read(member)), allow_pickle=False)
            except Exception as e:  # noqa: BLE001
                raise _not_export(name, f"{member} is not a NumPy .npz ({e})") from None
            with npz:
                loaded.append(_nested(manifest.get(key, []), npz, name, member))
    return Loaded(ex, loaded[0], loaded[1], manifest, name)
