"""Data checks of ``patternnet train`` (patternnet/data.py): every bad data file, and
every network/data mismatch, is one line and an exit code before any training.

In-process through ``cli.main`` (cheap); the data errors come before jax is needed."""

from __future__ import annotations

import numpy as np
import pytest

from patternnet import cli
from patternnet.training.data import DataError, load

RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 8, 8, 1)).astype(np.float32)
Y = (np.arange(40) % 10).astype(np.int64)


@pytest.fixture
def run(tmp_path, monkeypatch, capsys):
    """``patternnet train NET --data FILE.npz`` in-process: (exit code, stderr)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.pn").write_text("INPUT -> FC(16) -> RELU -> FC\n")
    (tmp_path / "fixed.pn").write_text("INPUT(8x8x1) -> FC(16) -> RELU -> FC(10)\n")

    def call(net="net.pn", **arrays):
        path = tmp_path / "d.npz"
        if arrays:
            np.savez(path, **arrays)
        capsys.readouterr()
        code = cli.main(["train", net, "--data", str(path), "--epochs", "1", "--batch", "8",
                         "-q", "--out", str(tmp_path / "run")])
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.count("\n") <= 1, err
        return code, err
    return call


BAD = [
    (dict(y=Y), "no array named 'x' (it holds y)"),
    (dict(x=X), "no array named 'y' (it holds x)"),
    (dict(x=X, y=Y, x_test=X), "has x_test but no y_test"),
    (dict(x=X[..., 0, 0], y=Y[:, None].repeat(3, 1)), "one-hot perhaps"),
    (dict(x=X[:, :, :, 0, None][:, 0], y=Y), "rank 3"),
    (dict(x=X, y=Y.astype(np.float32)), "labels must be integers"),
    (dict(x=X, y=Y[:30]), "y has 30 labels but x has 40 examples"),
    (dict(x=X, y=Y - 1), "holds the label -1"),
    (dict(x=np.where(np.arange(40)[:, None, None, None] == 7, np.nan, X), y=Y),
     "NaN/inf values (the first, a NaN, in example 7)"),
    (dict(x=X, y=Y, x_test=np.full((4, 8, 8, 1), np.inf), y_test=Y[:4]),
     "x_test holds 256 NaN/inf values"),
    (dict(x=np.array(["a"] * 40), y=Y), "x has dtype <U1; it must hold numbers"),
    (dict(x=X, y=Y, x_test=X[:, :4], y_test=Y), "both splits need the same shape"),
    (dict(x=X[:0], y=Y[:0]), "x is empty"),
]


@pytest.mark.parametrize("arrays, message", BAD, ids=[m.split(";")[0][:30] for _, m in BAD])
def test_bad_data_is_one_line_exit_2(run, arrays, message):
    code, err = run(**arrays)
    assert code == 2 and message in err, err


def test_unreadable_data_files(run, tmp_path):
    code, err = run()                                  # d.npz does not exist
    assert code == 2 and "no such file" in err
    (tmp_path / "d.npz").write_text("not a zip")
    code, err = run()
    assert code == 2 and "not a readable .npz file" in err
    np.save(tmp_path / "d.npy", X)
    (tmp_path / "d.npy").rename(tmp_path / "d.npz")
    code, err = run()
    assert code == 2 and "a single .npy array, not a .npz" in err
    np.savez(tmp_path / "d.npz", x=np.array([{"a": 1}] * 40, dtype=object), y=Y)
    code, err = run()
    assert code == 2 and "cannot read" in err


def test_input_shape_mismatch_is_exit_1(run):
    code, err = run("fixed.pn", x=X[:, :4, :4], y=Y)
    assert code == 1
    assert "takes 8x8x1 inputs but d.npz has 4x4x1; write a bare INPUT" in err


def test_classes_mismatch_is_exit_1(run):
    code, err = run("fixed.pn", x=X, y=Y % 3)
    assert code == 1
    assert "outputs 10 classes but d.npz has labels 0..2 (3 classes); end it with FC(3)" in err
    code, err = run("fixed.pn", x=X, y=Y + 2)
    assert code == 1 and "(12 classes); end it with FC(12)" in err


def test_bare_input_takes_the_data_shape_and_classes(run, tmp_path):
    """x (N, 6, 5, 2) with 4 classes, no test split: the bare net trains on it."""
    code, err = run(x=RNG.normal(size=(40, 6, 5, 2)).astype(np.float32), y=Y % 4)
    assert code == 0, err
    data = load(str(tmp_path / "d.npz"))
    assert data.input_shape == (6, 5, 2) and data.classes == 4
    assert (len(data.x_train), len(data.x_test)) == (30, 10)   # a fixed quarter held out


def test_digits():
    d = load("digits")
    assert d.input_shape == (8, 8, 1) and d.classes == 10
    assert (len(d.x_train), len(d.x_test)) == (1348, 449)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int32
    assert abs(float(d.x_train.mean())) < 1e-5 and abs(float(d.x_train.std()) - 1) < 1e-4
    again = load("digits")                              # the split is fixed
    assert np.array_equal(again.y_test, d.y_test)


def test_data_spec_must_be_digits_or_npz():
    with pytest.raises(DataError, match="expected 'digits' or a path to a .npz"):
        load("mnist")


def test_batch_larger_than_the_data(run):
    code, err = run(x=X[:6], y=Y[:6])
    assert code == 1 and "larger than the 4 training examples" in err
