"""A run-like message source with the real message keys, for tests and benchmarks (no process)."""

from __future__ import annotations

import time
from typing import Any


class FakeRun:
    """A run-like message source for tests and benchmarks: ``rate`` batch messages per second.

    Messages are produced in groups, as the real training process sends them
    (one group every ``group_s`` seconds), with the same keys.
    """

    def __init__(
        self,
        framework: str = "keras",
        epochs: int = 3,
        batches_per_epoch: int = 100,
        rate: float = 300.0,
        fail_with: str | None = None,
    ) -> None:
        self.framework = framework
        self.epochs = epochs
        self.batches_per_epoch = batches_per_epoch
        self.rate = rate
        self.fail_with = fail_with
        self._start: float | None = None
        self._sent = 0
        self._outcome = False

    @property
    def is_running(self) -> bool:
        return self._start is not None and not self._outcome

    def start(self) -> None:
        self._start = time.perf_counter()

    def _message(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "framework": self.framework, "time": time.time(), **fields}

    def poll(self) -> list[dict[str, Any]]:
        if self._start is None or self._outcome:
            return []
        out: list[dict[str, Any]] = []
        if self._sent == 0:
            out.append(
                self._message(
                    "started",
                    config={"epochs": self.epochs},
                    batches_per_epoch=self.batches_per_epoch,
                    initial_epoch=0,
                    num_train=self.batches_per_epoch * 32,
                )
            )
            if self.fail_with:
                out.append(self._message("failed", message=self.fail_with, reason="dataset"))
                self._outcome = True
                return out
        total = self.epochs * self.batches_per_epoch
        due = min(total, int((time.perf_counter() - self._start) * self.rate))
        while self._sent < due:
            self._sent += 1
            epoch, step = divmod(self._sent - 1, self.batches_per_epoch)
            loss = 2.0 * (0.97 ** (self._sent / 10)) + 0.05 * ((self._sent * 7919) % 13) / 13
            out.append(
                self._message(
                    "batch",
                    epoch=epoch + 1,
                    step=step + 1,
                    global_step=self._sent,
                    loss=loss,
                    samples_per_s=self.rate * 32,
                )
            )
            if step + 1 == self.batches_per_epoch:
                out.append(
                    self._message(
                        "epoch",
                        epoch=epoch + 1,
                        train_loss=loss,
                        train_accuracy=min(0.99, 0.3 + 0.2 * (epoch + 1)),
                        val_loss=loss * 1.1,
                        val_accuracy=min(0.98, 0.25 + 0.2 * (epoch + 1)),
                        epoch_time=self.batches_per_epoch / self.rate,
                    )
                )
        if self._sent >= total:
            out.append(self._message("finished", summary={"epochs_completed": self.epochs, "files": {}}))
            self._outcome = True
        return out

    def stop(self) -> list[dict[str, Any]]:
        if self._outcome:
            return []
        self._outcome = True
        return [self._message("stopped", summary={"epochs_completed": 0, "files": {}})]

    def close(self) -> None:
        pass
