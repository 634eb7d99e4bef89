"""Data sets for ``patternnet train``: the bundled digits, or a ``.npz`` file.

A ``Dataset`` holds a train and a test split as NumPy arrays, images NHWC float32
(or vectors (N, D)) and int32 labels.  Every check runs here, before any training, and
a problem is a ``DataError`` with one line that names the fix:

* ``"digits"``: scikit-learn's bundled digits (``sklearn.datasets.load_digits``, 1,797
  8x8x1 images, 10 classes; no network access), pixels 0..16 scaled to [0, 1] then
  standardised with the train split's mean and standard deviation, split 75/25 by a
  fixed seeded permutation (``SPLIT_SEED``: the same split in every run, so ``eval``
  scores the same held-out images that training did).
* ``PATH.npz``: ``x`` (N, H, W, C) or (N, D) and ``y`` (N,) integer labels; optional
  ``x_test``/``y_test``.  Without them a fixed seeded quarter of ``x`` is held out.
  The values are used as given (no normalisation).

This module imports numpy (and scikit-learn for the digits) and is imported lazily by
the command line.  It never imports jax.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Optional

from ..record import record

if TYPE_CHECKING:
    from ..backend.types import Array

#: the seed of every held-out split, fixed (not ``--seed``): a run's test split must not
#: change with the seed, or ``eval`` of a checkpoint would score training images
SPLIT_SEED = 0
TEST_FRACTION = 0.25
BUILTIN = ("digits",)


class TrainError(Exception):
    """A problem ``patternnet train``/``eval``/``predict`` reports as one line.

    ``exit_code``: 2 for usage and I/O problems (a bad data file or checkpoint), 1 for
    problems in the input (the network and the data disagree, training diverged)."""
    exit_code = 1


class DataError(TrainError):
    """The data cannot be used: missing, unreadable, wrong keys, ranks, dtypes, NaNs."""
    exit_code = 2


class MismatchError(TrainError):
    """The network and the data disagree (input shape, number of classes)."""
    exit_code = 1


@record
class Dataset:
    name: str
    x_train: Any             # np.ndarray (N, H, W, C) or (N, D), float32
    y_train: Any             # np.ndarray (N,), int32
    x_test: Any
    y_test: Any
    classes: int             # max label + 1 over both splits

    @property
    def input_shape(self) -> tuple:
        return tuple(int(d) for d in self.x_train.shape[1:])

    def describe(self) -> str:
        shape = "x".join(map(str, self.input_shape))
        return (f"{self.name}: {len(self.x_train):,} train / {len(self.x_test):,} test, "
                f"{shape}, {self.classes} classes")


def load(spec: str = "digits", *, need_labels: bool = True) -> Dataset:
    """The data set named by ``spec``: "digits" or a path to a ``.npz`` file."""
    spec = os.fspath(spec)
    if spec == "digits":
        return _digits()
    if not spec.endswith(".npz") and not os.path.exists(spec):
        raise DataError(f"--data {spec}: expected 'digits' or a path to a .npz file "
                        "with x (N,H,W,C) and y (N,)")
    return _npz(spec)


def load_inputs(spec: str) -> Array:
    """Only the inputs, for ``predict``: ``x`` of a .npz (labels optional), or the
    digits' test split."""
    import numpy as np

    spec = os.fspath(spec)
    if spec == "digits":
        return _digits().x_test
    arrays = _read_npz(spec)
    if "x" not in arrays:
        raise DataError(f"{spec}: no array named 'x'; save the inputs with "
                        "np.savez(path, x=images) (N,H,W,C)")
    return _inputs(spec, "x", arrays["x"], np)


# --- the digits ----------------------------------------------------------------------


def _digits() -> Dataset:
    import numpy as np
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[..., None]        # (1797, 8, 8, 1)
    y = d.target.astype(np.int32)
    train, test = _split(len(x))
    mean, std = x[train].mean(), x[train].std()
    x = (x - mean) / std
    return Dataset("digits", x[train], y[train], x[test], y[test], 10)


def _split(n: int):
    """Indices of a fixed seeded train/test split (sorted, so each keeps the file's order)."""
    import numpy as np

    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    cut = n - max(1, int(round(n * TEST_FRACTION)))
    return np.sort(perm[:cut]), np.sort(perm[cut:])


# --- .npz files ----------------------------------------------------------------------


def _read_npz(path: str) -> dict:
    import zipfile

    import numpy as np

    try:
        with open(path, "rb") as f:
            magic = f.read(6)
        if magic[:4] != b"PK\x03\x04" and magic != b"\x93NUMPY":
            # np.load would take anything else for a pickle and refuse it as one
            raise DataError(f"{path}: not a readable .npz file (no zip header); write it "
                            "with np.savez(path, x=x, y=y)")
        loaded = np.load(path, allow_pickle=False)
        if not hasattr(loaded, "files"):
            raise DataError(f"{path}: a single .npy array, not a .npz; write it with "
                            "np.savez(path, x=x, y=y)")
        with loaded as f:
            return {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise DataError(f"{path}: no such file; pass --data digits or a .npz with x and y") \
            from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder; pass a .npz file") from None
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None
    except ValueError as e:  # object arrays (allow_pickle=False), bad headers
        raise DataError(f"{path}: cannot read ({_first_line(e)}); save plain numeric arrays "
                        "with np.savez") from None
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npz file ({_first_line(e)}); write it with "
                        "np.savez(path, x=x, y=y)") from None


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _npz(path: str) -> Dataset:
    import numpy as np

    arrays = _read_npz(path)
    for key in ("x", "y"):
        if key not in arrays:
            have = ", ".join(sorted(arrays)) or "nothing"
            raise DataError(f"{path}: no array named {key!r} (it holds {have}); save it with "
                            "np.savez(path, x=images, y=labels), x (N,H,W,C) and y (N,)")
    has_test = ("x_test" in arrays, "y_test" in arrays)
    if any(has_test) and not all(has_test):
        missing = "y_test" if has_test[0] else "x_test"
        raise DataError(f"{path}: has {'x_test' if has_test[0] else 'y_test'} but no {missing}; "
                        "save both or neither")
    x = _inputs(path, "x", arrays["x"], np)
    y = _labels(path, "y", arrays["y"], len(x), np)
    if all(has_test):
        xt = _inputs(path, "x_test", arrays["x_test"], np)
        if xt.shape[1:] != x.shape[1:]:
            raise DataError(f"{path}: x_test has examples of shape {xt.shape[1:]}, x has "
                            f"{x.shape[1:]}; both splits need the same shape")
        yt = _labels(path, "y_test", arrays["y_test"], len(xt), np)
    else:
        if len(x) < 2:
            raise DataError(f"{path}: {len(x)} example(s) cannot be split into train and "
                            "test; add more, or save x_test and y_test")
        train, test = _split(len(x))
        x, y, xt, yt = x[train], y[train], x[test], y[test]
    classes = int(max(y.max(), yt.max())) + 1
    name = os.path.basename(path)
    return Dataset(name, x, y, xt, yt, classes)


def _inputs(path: str, key: str, x, np):
    if x.dtype.kind not in "fiu":
        raise DataError(f"{path}: {key} has dtype {x.dtype}; it must hold numbers (floats "
                        f"or integers), e.g. {key}.astype(np.float32)")
    if x.ndim not in (2, 4):
        raise DataError(f"{path}: {key} has shape {x.shape} (rank {x.ndim}); expected "
                        "(N, H, W, C) images or (N, D) vectors, e.g. x[..., None] for "
                        "grey-scale (N, H, W)")
    if len(x) == 0 or 0 in x.shape:
        raise DataError(f"{path}: {key} is empty (shape {x.shape})")
    x = x.astype(np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        where = np.argwhere(bad)[0]
        what = "NaN" if np.isnan(x[tuple(where)]) else "inf"
        raise DataError(f"{path}: {key} holds {int(bad.sum()):,} NaN/inf values (the first, "
                        f"a {what}, in example {int(where[0])}); clean the data first, e.g. "
                        "np.nan_to_num")
    return x


def _labels(path: str, key: str, y, n: int, np):
    if y.ndim == 2 and y.shape[1] > 1 and y.dtype.kind in "fiu":
        raise DataError(f"{path}: {key} has shape {y.shape}, one-hot perhaps; save integer "
                        f"class labels (N,): {key}.argmax(axis=1)")
    if y.dtype.kind not in "iu":
        raise DataError(f"{path}: {key} has dtype {y.dtype}; labels must be integers 0..C-1, "
                        f"e.g. {key}.astype(np.int64)")
    if y.ndim != 1:
        raise DataError(f"{path}: {key} has shape {y.shape}; expected one label per example, (N,)")
    if len(y) != n:
        xk = "x" if key == "y" else "x_test"
        raise DataError(f"{path}: {key} has {len(y):,} labels but {xk} has {n:,} examples; "
                        "they must match one to one")
    if y.min() < 0:
        raise DataError(f"{path}: {key} holds the label {int(y.min())}; labels must be class "
                        "indices 0..C-1")
    return y.astype(np.int32)


def check_fits(data: Dataset, input_shape: tuple, output_shape: tuple,
               source: Optional[str] = None, exact: bool = True) -> None:
    """Raise ``MismatchError`` when the network cannot train on ``data`` (``exact``:
    its output units must equal the data's classes; else, to evaluate, cover them)."""
    net = f"the network{f' ({source})' if source else ''}"
    if tuple(input_shape) != data.input_shape:
        fmt = "x".join
        raise MismatchError(
            f"{net} takes {fmt(map(str, input_shape))} inputs but {data.name} has "
            f"{fmt(map(str, data.input_shape))}; write a bare INPUT to take the data's shape, "
            f"or INPUT({fmt(map(str, data.input_shape))})")
    if len(output_shape) != 1:
        raise MismatchError(f"{net} outputs {output_shape}, not one score per class; end it "
                            f"with FC({data.classes})")
    units = output_shape[0]
    if units != data.classes and (exact or units < data.classes):
        top = int(max(data.y_train.max(), data.y_test.max()))
        fix = (f"end it with FC({data.classes})" if units < data.classes else
               f"end it with FC({data.classes}), or check the labels")
        raise MismatchError(f"{net} outputs {units} classes but {data.name} has labels "
                            f"0..{top} ({data.classes} classes); {fix}, or write a bare final "
                            "FC to take the data's classes")
