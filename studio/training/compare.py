"""``compare``: train in both frameworks from the same weights on the same batches, and measure.

Per framework: time per epoch, samples/s, peak memory, final losses and
accuracies, parameter count. Between them: the largest absolute difference
of the per-batch loss curves. With identical weights, batch order and no
randomness inside the model (no Dropout), the curves differ by float
rounding only, which grows slowly with the number of steps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from codegen.layers import LOWERINGS
from studio.training import messages
from studio.training.config import RunConfig
from studio.training.run import BothRun


@dataclass
class FrameworkResult:
    framework: str
    outcome: dict[str, Any]  # the finished/failed/stopped message
    batch_losses: list[float]  # by global step
    epochs: list[dict[str, Any]]  # the epoch messages

    @property
    def ok(self) -> bool:
        return self.outcome.get("type") == messages.FINISHED

    @property
    def summary(self) -> dict[str, Any]:
        return self.outcome.get("summary", {})


@dataclass
class CompareReport:
    results: dict[str, FrameworkResult]
    max_loss_difference: float | None  # None when a run failed or no steps are in common
    at_step: int | None  # the global step (from 1) of the largest difference
    steps_compared: int
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results.values())


def compare_frameworks(
    config: RunConfig,
    parallel: bool = False,
    on_message: Callable[[dict[str, Any]], None] | None = None,
    interval: float = 0.05,
) -> CompareReport:
    """Run both frameworks (one after the other unless ``parallel``) and compare them."""
    both = BothRun(config, parallel=parallel)
    both.start()
    try:
        while both.is_running:
            for message in both.poll():
                if on_message is not None:
                    on_message(message)
            if both.is_running:
                time.sleep(interval)
    except BaseException:
        both.stop()
        raise
    finally:
        both.close()
    return build_report(config, {framework: run.messages for framework, run in both.runs.items()})


def build_report(config: RunConfig, streams: dict[str, list[dict[str, Any]]]) -> CompareReport:
    results = {framework: _result(framework, stream) for framework, stream in streams.items()}
    keras_losses, torch_losses = results["keras"].batch_losses, results["pytorch"].batch_losses
    difference, step = loss_curve_difference(keras_losses, torch_losses)
    steps = min(len(keras_losses), len(torch_losses))
    return CompareReport(results, difference, step, steps, notes=comparison_notes(config))


def _result(framework: str, stream: list[dict[str, Any]]) -> FrameworkResult:
    outcome = next((m for m in stream if m.get("type") in messages.TERMINAL), {"type": messages.FAILED})
    losses = [m["loss"] for m in stream if m.get("type") == messages.BATCH]
    epochs = [m for m in stream if m.get("type") == messages.EPOCH]
    return FrameworkResult(framework, outcome, losses, epochs)


def loss_curve_difference(a: list[float], b: list[float]) -> tuple[float | None, int | None]:
    """(max |a[i] - b[i]| over the common steps, the 1-based step where it is largest)."""
    steps = min(len(a), len(b))
    if steps == 0:
        return None, None
    worst, at = -1.0, 0
    for index in range(steps):
        gap = abs(a[index] - b[index])
        if math.isnan(gap):
            return math.nan, index + 1
        if gap > worst:
            worst, at = gap, index + 1
    return worst, at


def comparison_notes(config: RunConfig) -> list[str]:
    """Known, documented reasons why the two curves may differ by more than rounding."""
    notes = []
    kinds = _layer_kinds(config)
    notes += [
        lowering.training_note
        for kind, lowering in LOWERINGS.kinds.items()
        if kind in kinds and lowering.training_note
    ]
    return notes


def _layer_kinds(config: RunConfig) -> set[str]:
    from studio.training.session import read_project

    try:
        project = read_project(config)
    except Exception:  # noqa: BLE001 - notes are best effort; the runs report real errors
        return set()
    return {node.kind for node in project.graph.nodes}
