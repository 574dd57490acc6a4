"""Where a run stands: the epoch and step counters, the best epoch and early stopping.

Framework-neutral, and saved inside every checkpoint (``to_meta``), so a
resumed run continues its counters, its best loss and its patience.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class EpochVerdict:
    improved: bool  # this epoch has the best monitored loss so far
    stop: bool  # early stopping: no improvement for ``patience`` epochs


@dataclass
class Progress:
    epochs: int  # the epoch to stop after (counting earlier, resumed epochs)
    patience: int = 0  # 0: no early stopping
    epoch: int = 0  # epochs completed
    global_step: int = 0  # batches completed
    best_loss: float = math.inf
    best_epoch: int | None = None
    wait: int = 0  # epochs since the best one
    stopped_early: bool = False
    last: dict[str, Any] = field(default_factory=dict)  # the last epoch's metrics

    @property
    def first_epoch(self) -> int:
        """The 0-based index of the next epoch to train."""
        return self.epoch

    def end_epoch(self, metrics: dict[str, Any]) -> EpochVerdict:
        """Record a finished epoch; its monitored loss is val_loss, or train_loss without validation."""
        self.epoch += 1
        self.last = dict(metrics)
        monitored = monitored_loss(metrics)
        improved = monitored is not None and monitored < self.best_loss
        if improved:
            self.best_loss, self.best_epoch, self.wait = monitored, self.epoch, 0
        else:
            self.wait += 1
        stop = self.patience > 0 and self.wait >= self.patience and self.epoch < self.epochs
        self.stopped_early = stop
        return EpochVerdict(improved, stop)

    def to_meta(self) -> dict[str, Any]:
        data = asdict(self)
        data["best_loss"] = None if math.isinf(self.best_loss) else self.best_loss
        return data

    @classmethod
    def from_meta(cls, meta: dict[str, Any], epochs: int, patience: int) -> Progress:
        """The progress saved in a checkpoint, going on to ``epochs`` with ``patience``."""
        best = meta.get("best_loss")
        return cls(
            epochs=epochs,
            patience=patience,
            epoch=int(meta["epoch"]),
            global_step=int(meta["global_step"]),
            best_loss=math.inf if best is None else float(best),
            best_epoch=meta.get("best_epoch"),
            wait=int(meta.get("wait", 0)),
            last=dict(meta.get("last", {})),
        )


def monitored_loss(metrics: dict[str, Any]) -> float | None:
    value = metrics.get("val_loss")
    if value is None:
        value = metrics.get("train_loss")
    if value is None or not math.isfinite(value):
        return None
    return float(value)
