"""Training: the loop, its data, checkpoints, metrics and progress (docs/training.md).

    >>> import patternnet
    >>> run = patternnet.train("examples/digits.pn", epochs=5)      # silent by default
    >>> run.test_accuracy, run.history[-1]["test_loss"], run.params

One module per job: ``loop`` (``train``, ``restore``, the run), ``data`` (the digits and
``.npz`` data sets, their checks), ``checkpoint`` (atomic ``.npz`` checkpoints),
``metrics`` (metrics.jsonl and its plot), ``progress`` (the bar or the epoch lines).
Importing this package imports numpy; jax and optax are imported when a run starts.
"""

from .checkpoint import Checkpoint, CheckpointError
from .data import DataError, Dataset, MismatchError, TrainError
from .loop import (DEFAULTS, DTYPES, OPTIMIZERS, SCHEDULES, Hyper, NonFiniteLoss, TrainResult,
                   check_devices, default_run_dir, evaluate_checkpoint, make_optimizer,
                   make_schedule, predict, restore, run_label, train)

__all__ = ["Checkpoint", "CheckpointError", "DEFAULTS", "DTYPES", "DataError", "Dataset",
           "Hyper", "MismatchError", "NonFiniteLoss", "OPTIMIZERS", "SCHEDULES", "TrainError",
           "TrainResult", "check_devices", "default_run_dir", "evaluate_checkpoint",
           "make_optimizer", "make_schedule", "predict", "restore", "run_label", "train"]
