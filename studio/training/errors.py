"""Errors of a training run, and how an unexpected exception becomes a readable message."""

from __future__ import annotations

import math

# Long framework errors (TensorFlow prints whole graphs) are cut to this many lines and characters.
MAX_LINES, MAX_CHARS = 4, 600


class TrainingError(Exception):
    """A run cannot go on. ``str(error)`` is the readable message; ``reason``: see studio.training.messages."""

    def __init__(self, message: str, reason: str = "error") -> None:
        super().__init__(message)
        self.reason = reason


class LossNotFinite(TrainingError):
    """The loss became NaN or infinite."""

    def __init__(self, value: float, epoch: int, batch: int, global_step: int) -> None:
        word = "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"
        super().__init__(
            f"loss became {word} at epoch {epoch}, step {global_step} (batch {batch} of epoch {epoch}): "
            "try a lower learning rate",
            reason="nan",
        )
        self.epoch, self.batch, self.global_step = epoch, batch, global_step


class StopRequested(Exception):  # noqa: N818 - a signal, not an error
    """The caller asked the run to stop (raised inside the training loop, caught by the engine)."""


def readable_error(error: BaseException) -> tuple[str, str]:
    """(message, reason) for any exception: a few lines, no traceback."""
    if isinstance(error, TrainingError):
        return str(error), error.reason
    if isinstance(error, MemoryError) or type(error).__name__ in (
        "OutOfMemoryError",
        "ResourceExhaustedError",
    ):
        return (
            "out of memory while training: try a smaller batch size or a smaller model "
            f"({type(error).__name__}: {_shorten(str(error))})",
            "error",
        )
    text = _shorten(str(error))
    name = type(error).__name__
    return (f"{name}: {text}" if text else name), "error"


def _shorten(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    short = "\n".join(lines[:MAX_LINES])
    if len(lines) > MAX_LINES:
        short += "\n..."
    if len(short) > MAX_CHARS:
        short = short[: MAX_CHARS - 3] + "..."
    return short
