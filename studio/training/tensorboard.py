"""TensorBoard event files of a run, with the same tags in both frameworks.

After every epoch a run writes, at step = the epoch number (from 1):

* scalars ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy`` (those measured)
  and ``learning_rate`` (of the epoch's last batch);
* one histogram per weight tensor, ``weights/<layer>/<name>``, named as in the
  PyTorch state dict (the Keras run converts its weights with codegen.weights,
  as for the ONNX export), so the two runs' histograms line up.

Keras writes with ``tf.summary`` (what ``keras.callbacks.TensorBoard`` uses), PyTorch
with ``torch.utils.tensorboard.SummaryWriter``; both into ``RUN_DIR/tensorboard``.
Keras's own callback would file its scalars as ``epoch_loss`` under ``train/``
and ``validation/`` folders, which PyTorch runs would not match.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

# The epoch message's keys and their tags.
SCALAR_TAGS = {
    "train_loss": "loss",
    "train_accuracy": "accuracy",
    "val_loss": "val_loss",
    "val_accuracy": "val_accuracy",
    "learning_rate": "learning_rate",
}


def epoch_scalars(figures: dict[str, Any]) -> dict[str, float]:
    """The tags and values of an epoch's measured figures."""
    return {tag: float(figures[key]) for key, tag in SCALAR_TAGS.items() if figures.get(key) is not None}


def weight_tag(state_key: str) -> str:
    """``weights/conv2d/weight`` for the state-dict key ``conv2d.weight``."""
    return "weights/" + state_key.replace(".", "/")


def floating(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The floating-point tensors of a state dict (a BatchNorm's step counter is left out)."""
    return {key: value for key, value in state.items() if np.issubdtype(value.dtype, np.floating)}


class EventLog:
    """Writes one epoch's scalars and histograms; framework writers implement the two calls."""

    def write_epoch(self, epoch: int, figures: dict[str, Any], state: dict[str, np.ndarray]) -> None:
        for tag, value in epoch_scalars(figures).items():
            self.scalar(tag, value, epoch)
        for key, value in floating(state).items():
            self.histogram(weight_tag(key), value, epoch)
        self.flush()

    def scalar(self, tag: str, value: float, step: int) -> None:
        raise NotImplementedError

    def histogram(self, tag: str, values: np.ndarray, step: int) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class TorchEventLog(EventLog):
    def __init__(self, folder: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(folder))

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.writer.add_scalar(tag, value, step)

    def histogram(self, tag: str, values: np.ndarray, step: int) -> None:
        self.writer.add_histogram(tag, values, step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class TensorFlowEventLog(EventLog):
    def __init__(self, tf: Any, folder: Path) -> None:
        self.tf = tf
        self.writer = tf.summary.create_file_writer(str(folder))

    def scalar(self, tag: str, value: float, step: int) -> None:
        with self.writer.as_default():
            self.tf.summary.scalar(tag, value, step=step)

    def histogram(self, tag: str, values: np.ndarray, step: int) -> None:
        with self.writer.as_default():
            self.tf.summary.histogram(tag, values, step=step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def read_events(folder: str | Path) -> dict[str, list[tuple[int, float | None]]]:
    """Every tag in the event files under ``folder``: [(step, scalar value or None for a histogram)].

    Reads both spellings of a scalar (SummaryWriter's simple_value, tf.summary's tensor).
    """
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    tags: dict[str, list[tuple[int, float | None]]] = {}
    for path in sorted(Path(folder).rglob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                number = None
                if value.HasField("simple_value"):
                    number = float(value.simple_value)
                elif value.HasField("tensor") and not value.tensor.tensor_shape.dim:
                    number = float(tensor_util.make_ndarray(value.tensor))
                tags.setdefault(value.tag, []).append((int(event.step), number))
    return tags
