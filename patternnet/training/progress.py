"""What a training run shows while it runs: nothing, one line per epoch, or a rich
progress bar (``reporter`` picks); ``patternnet.train`` calls ``header``, ``start``,
``step``, ``epoch`` and ``close``."""

from __future__ import annotations

from typing import Any, Optional, TextIO, Union

# --- reporters -----------------------------------------------------------------------


class _Silent:
    def start(self, *a): pass
    def header(self, text): pass
    def step(self, *a): pass
    def epoch(self, rec): pass
    def close(self): pass


def epoch_line(rec: dict, epochs: int) -> str:
    return (f"epoch {rec['epoch']:>{len(str(epochs))}}/{epochs}  loss {rec['loss']:.4f}  "
            f"acc {100 * rec['accuracy']:5.1f}%  test loss {rec['test_loss']:.4f}  "
            f"test acc {100 * rec['test_accuracy']:5.1f}%  {rec['examples_per_s']:,.0f} ex/s  "
            f"{rec['elapsed_s']:.1f}s")


class _Lines(_Silent):
    """One line per epoch (stdout not a terminal, e.g. a log file or CI)."""

    def __init__(self, stream):
        self.stream = stream

    def header(self, text):
        print(text, file=self.stream, flush=True)

    def start(self, epochs, total_steps, done_steps, done_epochs=0):
        self.epochs = epochs

    def epoch(self, rec):
        print(epoch_line(rec, self.epochs), file=self.stream, flush=True)


class _Bar(_Silent):
    """A rich progress bar over every step of the run: loss and accuracy of the epoch so
    far, examples/s; each finished epoch prints its line above the bar."""

    def __init__(self, stream):
        from rich.console import Console

        self.console = Console(file=stream)
        self.progress: Any = None     # a rich Progress while the bar is shown

    def header(self, text):
        self.console.print(text, highlight=False)

    def start(self, epochs, total_steps, done_steps, done_epochs=0):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.epochs = epochs
        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss [cyan]{task.fields[loss]}"),
            TextColumn("acc [green]{task.fields[acc]}"),
            TextColumn("{task.fields[speed]}"), TimeElapsedColumn(), TextColumn("eta"),
            TimeRemainingColumn(), console=self.console, refresh_per_second=8)
        self.progress.start()
        self.task = self.progress.add_task("train", total=total_steps, completed=done_steps,
                                           epoch=f"{done_epochs + 1}/{epochs}", loss="-",
                                           acc="-", speed="")

    def step(self, epoch, loss, acc, speed):
        self.progress.update(self.task, advance=1, epoch=f"{epoch}/{self.epochs}",
                             loss=f"{loss:.4f}", acc=f"{100 * acc:5.1f}%",
                             speed=f"{speed:,.0f} ex/s")

    def epoch(self, rec):
        self.progress.console.print(epoch_line(rec, self.epochs), highlight=False)

    def close(self):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def reporter(progress: Union[bool, str, None], stream: Optional[TextIO]) -> _Silent:
    import sys

    stream = stream or sys.stdout
    if progress in (False, None, "none"):
        return _Silent()
    if progress == "lines":
        return _Lines(stream)
    if progress == "bar" or (progress is True and stream.isatty()):
        return _Bar(stream)
    return _Lines(stream)
