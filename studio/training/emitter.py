"""The training process's side of the message stream.

:class:`Emitter` appends every message to ``metrics.jsonl`` (one line each,
flushed at once, so a killed run keeps what it logged) and sends messages to
the caller in groups: one queue item at most every ``interval`` seconds,
at once for anything but a batch. :class:`BatchStream` turns per-batch
losses into batch messages; values may stay on the accelerator until the
group is sent, so streaming does not force a device sync every batch.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from studio.training import messages
from studio.training.errors import LossNotFinite

FLUSH_INTERVAL = 0.05  # seconds between groups of batch messages


class Emitter:
    def __init__(self, queue: Any, metrics_path: Path | None, interval: float = FLUSH_INTERVAL) -> None:
        self._queue = queue
        self._log = open(metrics_path, "a", encoding="utf-8", buffering=1) if metrics_path else None  # noqa: SIM115
        self._pending: list[dict[str, Any]] = []
        self._interval = interval
        self._last_send = time.perf_counter()

    def emit(self, message: dict[str, Any]) -> None:
        """Log and send at once (everything but batch messages)."""
        self._write(message)
        self._pending.append(message)
        self.send()

    def emit_batch(self, message: dict[str, Any]) -> None:
        """Log at once; send with the next group."""
        self._write(message)
        self._pending.append(message)
        if time.perf_counter() - self._last_send >= self._interval:
            self.send()

    def send(self) -> None:
        if self._pending and self._queue is not None:
            self._queue.put(self._pending)
        self._pending = []
        self._last_send = time.perf_counter()

    def close(self) -> None:
        self.send()
        if self._log is not None:
            self._log.close()
            self._log = None

    def _write(self, message: dict[str, Any]) -> None:
        if self._log is not None:
            self._log.write(json.dumps(message, ensure_ascii=False) + "\n")


class BatchStream:
    """Per-batch losses of one run, sent as batch messages a window at a time.

    ``add`` takes the loss as a float or as a framework scalar not yet read;
    ``flush(convert)`` reads the pending values with ``convert`` (one device
    sync for the window), checks them, and emits their messages. Throughput
    is measured over each window. It raises LossNotFinite at the first NaN or
    infinite loss, after emitting the messages up to and including it.
    """

    def __init__(self, emitter: Emitter, framework: str, interval: float = FLUSH_INTERVAL) -> None:
        self.emitter = emitter
        self.framework = framework
        self.interval = interval
        self._pending: list[tuple[int, int, int, Any, int]] = []
        self._window_start = time.perf_counter()
        self.epoch_loss_sum = 0.0
        self.epoch_samples = 0

    def start_epoch(self) -> None:
        self.epoch_loss_sum, self.epoch_samples = 0.0, 0
        self._window_start = time.perf_counter()

    def add(self, epoch: int, batch: int, global_step: int, loss: Any, size: int) -> None:
        self._pending.append((epoch, batch, global_step, loss, size))

    def due(self) -> bool:
        return time.perf_counter() - self._window_start >= self.interval

    def flush(self, convert: Callable[[list[Any]], Sequence[float]] | None = None) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        values = convert([item[3] for item in pending]) if convert else [item[3] for item in pending]
        now = time.perf_counter()
        samples = sum(item[4] for item in pending)
        rate = samples / max(now - self._window_start, 1e-9)
        self._window_start = now
        for (epoch, batch, step, _, size), value in zip(pending, values, strict=True):
            loss = float(value)
            self.emitter.emit_batch(messages.batch(self.framework, epoch, batch, step, loss, rate))
            if not math.isfinite(loss):
                self.emitter.send()
                raise LossNotFinite(loss, epoch, batch, step)
            self.epoch_loss_sum += loss * size
            self.epoch_samples += size

    @property
    def epoch_loss(self) -> float:
        return self.epoch_loss_sum / self.epoch_samples if self.epoch_samples else math.nan
