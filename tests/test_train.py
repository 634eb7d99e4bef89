"""Training (issue 7): ``patternnet.train``, checkpoints, resume, devices, the commands.

Tiny networks on the bundled digits (or small .npz files) keep these fast; the digits
demo itself (examples/digits.pn, >= 97 %) is ``test_digits_demo`` (slow)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from patternnet.training import checkpoint as ckpt
from patternnet import cli
from patternnet.cli import train as train_cli
from patternnet.training.data import TrainError
from patternnet.training import DEFAULTS, NonFiniteLoss, check_devices, train

ROOT = Path(__file__).resolve().parent.parent
# bare INPUT and bare final FC: the data fixes 8x8x1 and 10 classes.  TINY has BN
# (state) and DROPOUT (rng), so that resume must restore both, and no CONV: XLA:CPU
# compiles it in about half the time (most of these tests' time is compiling)
TINY = "INPUT -> FC(32) -> BN -> RELU -> DROPOUT(0.1) -> FC"
CONV = "INPUT -> CONV(4) -> RELU -> POOL -> FC"


def _env(**extra) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **extra}
    env.pop("PYTHONWARNINGS", None)
    return env


def pn(*args, cwd, env=None, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "patternnet", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=env or _env())


def leaves_equal(a, b) -> bool:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y))
                                      for x, y in zip(la, lb))


@pytest.fixture(scope="module")
def tiny_pn(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("net") / "tiny.pn"
    p.write_text(f"tiny = {CONV}\nplain = INPUT -> FC(16) -> RELU -> FC\n")
    return p


def test_short_run_learns():
    run = train(CONV, epochs=3, lr=1e-2)
    losses = [r["loss"] for r in run.history]
    assert len(run.history) == 3 and run.epoch == 3 and run.step == 3 * (1348 // 64)
    assert losses[-1] < 0.6 * losses[0]
    assert run.test_accuracy > 0.6            # chance is 0.1
    assert run.run_dir is None and run.model.output_shape == (10,)
    assert set(run.history[0]) >= {"epoch", "step", "loss", "accuracy", "test_loss",
                                   "test_accuracy", "lr", "examples_per_s"}


def test_resume_is_bit_identical(tmp_path):
    kw = dict(lr=3e-3, schedule="constant", batch=128)
    straight = train(TINY, epochs=4, out=str(tmp_path / "a"), **kw)
    train(TINY, epochs=2, out=str(tmp_path / "b"), **kw)
    resumed = train(TINY, epochs=4, resume=str(tmp_path / "b"))
    assert resumed.step == straight.step
    assert leaves_equal(resumed.params, straight.params)
    assert leaves_equal(resumed.state, straight.state)
    assert leaves_equal(resumed.opt_state, straight.opt_state)
    assert [r["test_loss"] for r in resumed.history] == [r["test_loss"] for r in straight.history]
    # the checkpoint holds what the run returned
    saved = ckpt.load(tmp_path / "b")
    assert (saved.epoch, saved.step) == (4, straight.step)
    assert leaves_equal(saved.params, straight.params)
    assert saved.config["hyper"]["schedule"] == "constant"
    lines = [json.loads(l) for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines if r["type"] == "epoch"] == [1, 2, 3, 4]
    assert (tmp_path / "b" / "metrics.png").stat().st_size > 10_000
    # a resumed run keeps its settings
    with pytest.raises(TrainError, match="differs from the checkpoint"):
        train(TINY, epochs=5, lr=0.1, resume=str(tmp_path / "b"))


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    train_mod = sys.modules["patternnet.training.loop"]

    real = train_mod._Programs.__init__

    def poisoned(self, *a, **k):  # the loss turns NaN at step 30 (epoch 2)
        real(self, *a, **k)
        step = self.step

        def bad(*args):
            out = step(*args)
            return out if int(args[-1]) < 29 else out[:3] + (out[3] * np.nan,) + out[4:]
        self.step = bad
    monkeypatch.setattr(train_mod._Programs, "__init__", poisoned)
    with pytest.raises(NonFiniteLoss) as e:
        train(TINY, epochs=3, out=str(tmp_path))
    assert (e.value.epoch, e.value.step) == (2, 30)
    assert "step 30 (epoch 2" in str(e.value) and "last good checkpoint" in str(e.value)
    assert ckpt.load(tmp_path).epoch == 1


def test_sigkill_while_writing_a_checkpoint_leaves_the_last_one_loadable(tmp_path):
    hook = tmp_path / "hook"
    script = (f"import patternnet\npatternnet.train({TINY!r}, epochs=3, batch=256, "
              f"out={str(tmp_path / 'run')!r})\n")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path,
                            env=_env(PATTERNNET_TEST_CKPT_HOOK=str(hook),
                                     PATTERNNET_TEST_CKPT_PAUSE="60"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not hook.exists():      # the second save has written its temporary file
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    run = tmp_path / "run"
    temps = [n for n in os.listdir(run) if n.startswith(".tmp-")]
    assert temps, "the kill should have left the half-written temporary file"
    saved = ckpt.load(run)                         # the epoch-1 checkpoint, whole
    assert saved.epoch == 1
    resumed = train(TINY, epochs=2, resume=str(run))  # and it resumes
    assert resumed.epoch == 2
    assert not [n for n in os.listdir(run) if n.startswith(".tmp-")]


def test_devices_must_exist_and_divide_the_batch():
    n = len(jax.devices()) + 1
    with pytest.raises(TrainError, match=f"xla_force_host_platform_device_count={n}"):
        train(TINY, epochs=1, devices=n, batch=64 * n)
    with pytest.raises(TrainError, match="--batch 63 is not divisible by --devices 2"):
        check_devices(2, 63)   # checked before the device count only when enough exist


def test_four_devices_match_one(tmp_path):
    """Data parallel over 4 CPU devices computes the same training as one device.

    The only legitimate difference is the order of summation: each device reduces its
    16 examples and the 4 partial sums are added, against one sum over 64.  So the run is
    in float64 (``jax_enable_x64``), where reordering a sum of n terms changes it by at
    most ~n * eps_64 * sum|terms| (eps_64 = 2.2e-16): ~1e-14 for a loss, and the
    perturbation of the parameters grows, step by step, by at most the update's Lipschitz
    factor (below 2 for SGD at lr 0.01 on this net), i.e. < 2**21 ~ 2e6 over the epoch's
    21 steps: < 2e-8.  A real fault (a dropped, doubled or mis-scaled shard) moves the
    loss by more than 1e-3.  In float32 the same reordering gives ~1e-4 after an epoch,
    which depends on the CPU's vector width (1.5e-4 on an AVX2-only EPYC, less with
    AVX-512), so no float32 bound both holds everywhere and means something."""
    script = f"""
import json, jax, numpy as np, patternnet
jax.config.update("jax_enable_x64", True)
assert len(jax.devices()) == 4, jax.devices()
losses = {{}}
for n in (1, 4):
    out = {str(tmp_path)!r} + f"/d{{n}}"
    run = patternnet.train({TINY!r}, epochs=1, batch=64, devices=n, out=out, dtype="float64")
    recs = [json.loads(l) for l in open(out + "/metrics.jsonl")]
    losses[n] = [r["loss"] for r in recs if r["type"] == "step"]
    losses[f"test{{n}}"] = run.test_loss
print(json.dumps(losses))
"""
    r = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                       text=True, timeout=180,
                       env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=4",
                                JAX_PLATFORMS="cpu"))
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    one, four = np.array(got["1"]), np.array(got["4"])
    assert len(one) == 21, len(one)          # 1,348 // 64 full batches: every step compared
    assert not np.array_equal(one, np.round(one, 6))   # float64 losses, not float32 ones
    np.testing.assert_allclose(four, one, atol=2e-8, rtol=0)
    assert abs(got["test1"] - got["test4"]) < 2e-8


def test_cli_train_eval_predict(tmp_path, tiny_pn):
    run = tmp_path / "run"
    r = pn("train", str(tiny_pn), "--net", "tiny", "--epochs", "2", "--lr", "0.01", "--out", str(run),
           cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("tiny: ") and "digits: 1,348 train / 449 test" in lines[0]
    assert lines[1].startswith("epoch 1/2  loss ") and lines[2].startswith("epoch 2/2")
    assert "test accuracy" in lines[3] and f"run directory: {run}" in lines[4]
    assert {"checkpoint.npz", "metrics.jsonl", "metrics.png"} <= set(os.listdir(run))
    acc = float(lines[3].split()[2].rstrip("%"))

    r = pn("eval", str(tiny_pn), "--ckpt", str(run), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"accuracy {acc:.2f}%" in r.stdout and "epoch 2" in r.stdout

    x = np.random.default_rng(0).normal(size=(5, 8, 8, 1)).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    r = pn("predict", str(tiny_pn), "--ckpt", str(run / "checkpoint.npz"), "--data",
           str(tmp_path / "x.npz"), "-o", str(tmp_path / "p.npz"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "p.npz") as p:
        assert p["logits"].shape == (5, 10) and p["labels"].shape == (5,)
        np.testing.assert_allclose(p["probabilities"].sum(-1), 1, rtol=1e-5)
        assert (p["labels"] == p["logits"].argmax(-1)).all()



def test_cli_non_finite_loss(tmp_path, tiny_pn):
    r = pn("train", str(tiny_pn), "--net", "plain", "--epochs", "1", "--lr", "1e30",
           "--optimizer", "sgd", "-q",
           "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "the loss became" in r.stderr and "at step" in r.stderr and "(epoch 1" in r.stderr


@pytest.mark.slow
def test_cli_interrupt_checkpoints_and_exits_130(tmp_path, tiny_pn):
    """Ctrl-C (SIGINT) stops at a step boundary, checkpoints, exits 130 with one line."""
    hook = tmp_path / "hook"
    proc = subprocess.Popen(
        [sys.executable, "-m", "patternnet", "train", str(tiny_pn), "--net", "tiny",
         "--epochs", "50", "--out", str(tmp_path / "run")], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        env=_env(PATTERNNET_TEST_CKPT_HOOK=str(hook), PATTERNNET_TEST_CKPT_PAUSE="0"))
    deadline = time.monotonic() + 120
    while not hook.exists():           # two epochs done: it is in the loop
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.count("\n") == 1 and "interrupted; checkpoint in" in err and "--resume" in err
    saved = ckpt.load(tmp_path / "run")
    assert saved.step >= 2 * (1348 // 64)


def test_help_defaults_match_the_code():
    for k, text in train_cli.HELP_DEFAULTS.items():
        assert text == f"default {DEFAULTS[k]:g}" if isinstance(DEFAULTS[k], float) \
            else text == f"default {DEFAULTS[k]}", k


def test_resume_without_a_run_is_a_usage_error(tmp_path, tiny_pn, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", str(tiny_pn), "--net", "tiny", "--resume"]) == 2
    assert "no run of tiny under runs/" in capsys.readouterr().err
    assert cli.main(["eval", str(tiny_pn), "--ckpt", "nope"]) == 2
    assert "no such checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_digits_demo(tmp_path):
    """The README's demo: examples/digits.pn with the defaults, >= 97 % test accuracy."""
    start = time.monotonic()
    r = pn("train", str(ROOT / "examples" / "digits.pn"), "--out", str(tmp_path / "run"),
           cwd=tmp_path)
    took = time.monotonic() - start
    assert r.returncode == 0, r.stderr
    acc = float(r.stdout.split("test accuracy ")[1].split("%")[0])
    assert acc >= 97.0, r.stdout
    print(f"digits demo: {acc:.2f}% in {took:.1f}s")


def test_a_network_ending_in_softmax_trains_on_its_logits():
    run = train("INPUT -> FC(16) -> RELU -> FC -> SOFTMAX", epochs=2, lr=1e-2)
    assert run.history[-1]["loss"] < run.history[0]["loss"]
    assert run.test_accuracy > 0.6
    from patternnet.training import predict

    x = np.zeros((2, 8, 8, 1), np.float32)
    logits, probs = predict(run.model, run.params, run.state, x)
    np.testing.assert_allclose(probs, run.model.forward(run.params, run.state, x), rtol=1e-5,
                               atol=1e-6)
    assert not np.allclose(logits, np.log(probs))  # logits, not log-probabilities


def test_resume_after_ctrl_c_mid_epoch_is_bit_identical(tmp_path, monkeypatch):
    """Ctrl-C between two steps of an epoch: the checkpoint holds that step, and the
    resumed run ends where the uninterrupted one does."""
    train_mod = sys.modules["patternnet.training.loop"]

    class CtrlCAtStep13(train_mod._Interrupts):   # the loop asks once before each step
        def __init__(self):
            super().__init__()
            self.asked = 0

        @property
        def hit(self):
            self.asked += 1
            return self.asked > 13

        @hit.setter
        def hit(self, value):
            pass

    kw = dict(lr=3e-3, schedule="cosine", batch=128)   # 10 steps an epoch
    straight = train(TINY, epochs=2, out=str(tmp_path / "a"), **kw)
    monkeypatch.setattr(train_mod, "_Interrupts", CtrlCAtStep13)
    with pytest.raises(KeyboardInterrupt):
        train(TINY, epochs=2, out=str(tmp_path / "b"), **kw)
    monkeypatch.undo()
    saved = ckpt.load(tmp_path / "b")
    assert (saved.epoch, saved.step) == (1, 13)
    resumed = train(TINY, epochs=2, resume=str(tmp_path / "b"))
    assert resumed.step == straight.step == 20
    assert leaves_equal(resumed.params, straight.params)
    assert leaves_equal(resumed.state, straight.state)
    assert leaves_equal(resumed.opt_state, straight.opt_state)
    assert resumed.history[-1]["loss"] == pytest.approx(straight.history[-1]["loss"], rel=1e-6)
    assert resumed.history[-1]["test_loss"] == straight.history[-1]["test_loss"]
