"""``Model.export`` / ``patternnet.load``: the ``.pnx`` file, its round trip in a fresh
process without the compiler, atomic writing, and the errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import jax
import numpy as np
import pytest

import patternnet
from patternnet.backend import export as E

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "digits.pn"
SMALL = "INPUT(8x8x1) -> CONV(4) -> BN -> RELU -> POOL -> FC(10)"


@pytest.fixture(scope="module")
def digits():
    model = patternnet.compile(str(DIGITS))
    params, state = model.init(jax.random.key(0))
    return model, params, state


@pytest.fixture(scope="module")
def small():
    model = patternnet.compile(SMALL)
    params, state = model.init(jax.random.key(1))
    # non-trivial running statistics, so that state really travels
    state = jax.tree.map(lambda a: a + 0.25, state)
    return model, params, state


@pytest.fixture(scope="module")
def files(tmp_path_factory, digits):
    model, params, state = digits
    d = tmp_path_factory.mktemp("pnx")
    model.export(d / "any.pnx", params, state)
    model.export(d / "four.pnx", params, state, batch=4)
    return d


def _x(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 8, 8, 1)).astype(np.float32)


FRESH = """
import sys
import numpy as np
import patternnet
loaded = patternnet.load(sys.argv[1])
for n in (1, 5):
    x = np.load(sys.argv[2] + f"/x{n}.npy")
    np.save(sys.argv[2] + f"/y{n}.npy", np.asarray(loaded(x)))
bad = [m for m in ("patternnet.parser", "patternnet.resolver", "patternnet.checker",
                   "patternnet.pipeline", "patternnet.backend.model", "lark") if m in sys.modules]
print("MODULES", bad)
"""


@pytest.fixture(scope="module")
def fresh(files, tmp_path_factory):
    """Load and run ``any.pnx`` in a new process that imports only ``patternnet``."""
    d = tmp_path_factory.mktemp("fresh")
    for n in (1, 5):
        np.save(d / f"x{n}.npy", _x(n, seed=n))
    r = subprocess.run([sys.executable, "-c", FRESH, str(files / "any.pnx"), str(d)],
                       capture_output=True, text=True, cwd=ROOT, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    return d, r.stdout


def test_round_trip_in_a_fresh_process_at_two_batch_sizes(digits, fresh):
    model, params, state = digits
    d, _ = fresh
    for n in (1, 5):
        want = np.asarray(model.forward(params, state, _x(n, seed=n)))
        got = np.load(d / f"y{n}.npy")
        assert got.shape == (n, 10)
        np.testing.assert_array_equal(got, want)


def test_load_imports_no_parser_resolver_or_checker(fresh):
    _, out = fresh
    assert out.splitlines()[-1] == "MODULES []", out


def test_round_trip_carries_params_and_state(small, tmp_path):
    model, params, state = small
    path = tmp_path / "small.pnx"
    model.export(path, params, state)
    loaded = patternnet.load(path)
    assert jax.tree.structure(loaded.params) == jax.tree.structure(params)
    assert jax.tree.structure(loaded.state) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves((loaded.params, loaded.state)),
                    jax.tree.leaves((params, state))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for n in (2, 3):
        np.testing.assert_array_equal(np.asarray(loaded(_x(n))),
                                      np.asarray(model.forward(params, state, _x(n))))
    # float64 input is cast, as model.forward does
    np.testing.assert_array_equal(np.asarray(loaded(_x(2).astype(np.float64))),
                                  np.asarray(model.forward(params, state, _x(2))))


def test_the_file_and_its_manifest(digits, files):
    model, params, state = digits
    with zipfile.ZipFile(files / "any.pnx") as z:
        assert sorted(z.namelist()) == sorted([E.MANIFEST, E.EXPORTED, E.PARAMS, E.STATE])
        with z.open(E.PARAMS) as f, np.load(f) as npz:
            np.testing.assert_array_equal(npz["conv1/w"], np.asarray(params["conv1"]["w"]))
    meta = patternnet.load(files / "any.pnx").metadata
    assert meta["format"] == "patternnet-export" and meta["version"] == 1
    assert meta["patternnet"] == patternnet.__version__
    assert meta["network"] == "digits"
    assert meta["input_shape"] == [8, 8, 1] and meta["output_shape"] == [10]
    assert meta["batch"] is None and meta["dtype"] == "float32"
    t = model.checked.totals
    assert meta["totals"] == {"params": t.params, "state": t.state, "macs": t.macs,
                              "flops": t.flops, "activations": t.activations}
    names = [e["name"] for e in meta["params"]]
    assert names == ["conv1/b", "conv1/w", "conv2/b", "conv2/w", "conv3/b", "conv3/w",
                     "fc1/b", "fc1/w", "fc2/b", "fc2/w"]
    assert sum(int(np.prod(e["shape"])) for e in meta["params"]) == model.checked.params
    assert meta["state"] == []


def test_weights_are_arguments_not_constants(digits, files):
    # 62,250 float32 parameters are ~249 kB: the exported program must not hold them
    with zipfile.ZipFile(files / "any.pnx") as z:
        assert z.getinfo(E.EXPORTED).file_size < 60_000


def test_fixed_batch(digits, files):
    model, params, state = digits
    loaded = patternnet.load(files / "four.pnx")
    assert loaded.batch == 4 and loaded.metadata["batch"] == 4
    np.testing.assert_array_equal(np.asarray(loaded(_x(4))),
                                  np.asarray(model.forward(params, state, _x(4))))
    with pytest.raises(ValueError, match=r"\(3, 8, 8, 1\).*shape \(4, 8, 8, 1\).*fixed batch of 4"):
        loaded(_x(3))


def test_wrong_input_shape_says_what_it_expected(files):
    loaded = patternnet.load(files / "any.pnx")
    with pytest.raises(ValueError, match=r"input of shape \(2, 8, 8, 3\).*\(N, 8, 8, 1\)"):
        loaded(np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(N, 8, 8, 1\)"):
        loaded(np.zeros((8, 8, 1), np.float32))


def test_bad_batch_argument(digits, tmp_path):
    model, params, state = digits
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            model.export(tmp_path / "x.pnx", params, state, batch=bad)
    assert list(tmp_path.iterdir()) == []


# --- atomic writing ---------------------------------------------------------------------


def test_a_failed_rename_keeps_the_old_file(digits, tmp_path, monkeypatch):
    model, params, state = digits
    path = tmp_path / "net.pnx"
    path.write_bytes(b"old")

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        model.export(path, params, state)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["net.pnx"]


def test_a_failure_mid_write_leaves_no_partial_file(digits, tmp_path, monkeypatch):
    model, params, state = digits
    old = tmp_path / "old.pnx"
    old.write_bytes(b"old")

    def boom(tensors):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(E, "_npz", boom)  # after the manifest and the program are written
    for path in (old, tmp_path / "new.pnx"):
        with pytest.raises(RuntimeError, match="disk on fire"):
            model.export(path, params, state)
    assert old.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["old.pnx"]


# --- errors -----------------------------------------------------------------------------


def _code(path) -> tuple[str, str]:
    with pytest.raises(patternnet.SourceError) as info:
        patternnet.load(path)
    return info.value.diagnostics[0].code, str(info.value)


def _rezip(src, dst, change):
    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist()}
    change(members)
    with zipfile.ZipFile(dst, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)


def test_missing_file_and_directory(tmp_path):
    code, msg = _code(tmp_path / "nope.pnx")
    assert code == "E001" and "no such file" in msg
    code, msg = _code(tmp_path)
    assert code == "E001" and "directory" in msg


def test_not_an_export(files, tmp_path):
    code, msg = _code(DIGITS)
    assert code == "E005" and "not a PatternNet export: not a zip archive" in msg
    p = tmp_path / "other.zip"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("hello.txt", "hi")
    code, msg = _code(p)
    assert code == "E005" and "no manifest.json" in msg
    _rezip(files / "any.pnx", p, lambda m: m.update({E.MANIFEST: b'{"format": "other"}'}))
    assert _code(p)[0] == "E005"
    _rezip(files / "any.pnx", p, lambda m: m.update({E.MANIFEST: b"not json"}))
    assert _code(p)[0] == "E005"
    _rezip(files / "any.pnx", p, lambda m: m.pop(E.PARAMS))
    code, msg = _code(p)
    assert code == "E005" and "missing params.npz" in msg
    _rezip(files / "any.pnx", p, lambda m: m.update({E.EXPORTED: b"garbage"}))
    assert _code(p)[0] == "E005"


def test_unknown_version(files, tmp_path):
    def bump(m):
        meta = json.loads(m[E.MANIFEST])
        meta["version"] = 99
        m[E.MANIFEST] = json.dumps(meta).encode()
    p = tmp_path / "future.pnx"
    _rezip(files / "any.pnx", p, bump)
    code, msg = _code(p)
    assert code == "E006" and "version 99" in msg


# --- StableHLO ----------------------------------------------------------------------------


def test_stablehlo_text(digits):
    model, params, state = digits
    text = model.stablehlo(params, state)             # batch symbolic
    assert "stablehlo.convolution" in text and "tensor<?x8x8x1xf32>" in text
    fixed = model.stablehlo(batch=2)                  # shapes from init
    assert "stablehlo.convolution" in fixed and "tensor<2x8x8x1xf32>" in fixed
    lowered = model.lower(params, state, batch=3)
    assert "stablehlo.dot_general" in lowered.as_text()


def test_import_patternnet_stays_light_and_keeps_its_functions():
    code = ("import sys, patternnet\n"
            "light = not any(m in sys.modules for m in ('jax', 'patternnet.parser'))\n"
            "import patternnet.parser, patternnet.checker, patternnet.resolver\n"
            "print(light, callable(patternnet.parse), patternnet.check.__module__,"
            " patternnet.resolve.__name__, 'load' in dir(patternnet))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert r.stdout.split() == ["True", "True", "patternnet.pipeline", "resolve", "True"], r.stderr


def test_platforms(digits, tmp_path):
    model, params, state = digits
    path = tmp_path / "multi.pnx"
    model.export(path, params, state, platforms=("cpu", "cuda"))  # lowered without a GPU
    loaded = patternnet.load(path)
    assert loaded.metadata["platforms"] == ["cpu", "cuda"]
    np.testing.assert_array_equal(np.asarray(loaded(_x(2))),
                                  np.asarray(model.forward(params, state, _x(2))))


def test_float64_export_needs_x64_to_load(tmp_path):
    path = tmp_path / "f64.pnx"
    with jax.enable_x64(True):
        model = patternnet.compile(SMALL, dtype="float64")
        params, state = model.init(0)
        model.export(path, params, state)
        loaded = patternnet.load(path)
        assert loaded.metadata["dtype"] == "float64"
        x = _x(2).astype(np.float64)
        np.testing.assert_array_equal(np.asarray(loaded(x)),
                                      np.asarray(model.forward(params, state, x)))
    with pytest.raises(ValueError, match="float64.*jax_enable_x64"):
        patternnet.load(path)
