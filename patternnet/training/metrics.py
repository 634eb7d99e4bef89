"""A run's record: ``metrics.jsonl`` (one JSON object a line: the run, each step, each
epoch) and its plot ``metrics.png`` (matplotlib, imported only to draw it)."""

from __future__ import annotations

import json
import os
from typing import Optional, TextIO


class Metrics:
    """``metrics.jsonl`` (appended, one JSON object a line) and ``metrics.png``."""

    def __init__(self, run_dir: Optional[str]) -> None:
        self.path = os.path.join(run_dir, "metrics.jsonl") if run_dir else None
        self.steps: list = []     # (step / steps_per_epoch, loss) for the plot
        self.file: Optional[TextIO] = None

    def resume(self, step: int, epoch: int) -> list:
        """Keep the records up to the checkpoint (a killed run may have written past
        it); return the epoch records kept."""
        kept, epochs = [], []
        if self.path and os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue     # a line cut short by a kill
                    kind = rec.get("type")
                    if (kind == "step" and rec["step"] > step) or (
                            kind == "epoch" and rec["epoch"] > epoch):
                        continue
                    kept.append(line if line.endswith("\n") else line + "\n")
                    if kind == "epoch":
                        epochs.append(rec)
                    elif kind == "step":
                        self.steps.append((rec["step"], rec["loss"]))
            from ..atomic import write_atomic
            write_atomic(self.path, "".join(kept))
        return epochs

    def write(self, rec: dict) -> None:
        if rec.get("type") == "step":
            self.steps.append((rec["step"], rec["loss"]))
        if not self.path:
            return
        if self.file is None:
            self.file = open(self.path, "a", encoding="utf-8")
        self.file.write(json.dumps(rec) + "\n")

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None

    def plot(self, history: list, steps_per_epoch: int, title: str) -> Optional[str]:
        if not self.path or not history:
            return None
        out = os.path.join(os.path.dirname(self.path), "metrics.png")
        plot_metrics(out, self.steps, history, steps_per_epoch, title)
        return out


def plot_metrics(path: str, steps: list, history: list, steps_per_epoch: int,
                 title: str) -> None:
    """Loss (per step, and per epoch on train and test) and accuracy (per epoch) against
    epochs, as a PNG written atomically."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from ..atomic import atomic_open

    fig = Figure(figsize=(10, 4), dpi=110, layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    ep = [r["epoch"] for r in history]
    if steps:
        ax_loss.plot([s / steps_per_epoch for s, _ in steps], [l for _, l in steps],
                     color="tab:blue", alpha=0.25, lw=0.8, label="train (per step)")
    ax_loss.plot(ep, [r["loss"] for r in history], "o-", color="tab:blue", ms=3,
                 label="train (epoch mean)")
    ax_loss.plot(ep, [r["test_loss"] for r in history], "s-", color="tab:orange", ms=3,
                 label="test")
    ax_loss.set_yscale("log")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss (log scale)", title="loss")
    ax_acc.plot(ep, [100 * r["accuracy"] for r in history], "o-", color="tab:blue", ms=3,
                label="train")
    ax_acc.plot(ep, [100 * r["test_accuracy"] for r in history], "s-", color="tab:orange",
                ms=3, label="test")
    last = history[-1]
    ax_acc.annotate(f"{100 * last['test_accuracy']:.1f}%", (last["epoch"],
                    100 * last["test_accuracy"]), textcoords="offset points", xytext=(-10, -16),
                    ha="right", color="tab:orange", fontweight="bold")
    low = min(100 * min(r["test_accuracy"] for r in history),
              100 * min(r["accuracy"] for r in history))
    ax_acc.set_ylim(max(0.0, low - 2), 100.5)
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize=8)
        ax.set_xlim(0, max(ep) + 0.5)
    fig.suptitle(f"{title}: test accuracy {100 * last['test_accuracy']:.2f}% after "
                 f"{last['epoch']} epochs")
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png")
