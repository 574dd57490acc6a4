"""Errors of a training run, and how an unexpected exception becomes a readable message."""

from __future__ import annotations

import errno
import math
import os

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


DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def write_error(error: OSError, path: str | os.PathLike) -> TrainingError:
    """A failed write of a run file, naming the file and, when the disk is full, what to do."""
    text = f"cannot write {path}: {error.strerror or error}"
    if error.errno in DISK_FULL:
        text += "; the disk is full: free some space, or train into a folder on another disk with --out"
    return TrainingError(text)


def is_pickled(error: BaseException) -> bool:
    """Whether a load failed because the file needs unpickling (torch then advises weights_only=False)."""
    return type(error).__name__ == "UnpicklingError" or "weights_only" in str(error)


def checkpoint_error(error: BaseException, path: str | os.PathLike) -> TrainingError:
    """A resume checkpoint that cannot be read: damaged, or holding pickled objects.

    Never relays the frameworks' own advice to load with ``weights_only=False``: a checkpoint
    that needs unpickling could run any code, and is never loaded.
    """
    if is_pickled(error):
        problem = "it holds pickled Python objects, which are never loaded (they could run code)"
    else:
        first = (_shorten(str(error)).splitlines() or [""])[0].split(". ")[0]
        problem = f"it is damaged or not a checkpoint ({type(error).__name__}: {first})"
    return TrainingError(
        f"cannot resume from the checkpoint {path}: {problem}; start a new run, or resume another run folder",
        reason="checkpoint",
    )


def readable_error(error: BaseException) -> tuple[str, str]:
    """(message, reason) for any exception: a few lines, no traceback."""
    if isinstance(error, TrainingError):
        return str(error), error.reason
    if isinstance(error, OSError) and error.errno in DISK_FULL:
        where = error.filename or "the run folder"
        return str(write_error(error, where)), "error"
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
