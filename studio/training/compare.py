"""``compare``: train in both frameworks from the same weights on the same batches, and measure fairly.

Both frameworks get the same compute threads (PyTorch's intra- and inter-op
threads, TensorFlow's intra- and inter-op parallelism). By default they run
one after the other, each with every core; ``parallel`` runs them at once,
each with half the cores. ``repeats`` runs the pair several times: each
timing is then given as the median with the min and max.

Per framework: training seconds per epoch (training batches only: no
validation, and the first step apart), the first step (tracing, compilation,
first allocations), samples/s, inference latency at batch size 1 and at the
training batch size, model memory (weights and buffers plus optimizer
state; on an accelerator also its peak, activations included), the final
loss and validation accuracy. Between them: the largest absolute difference
of the per-batch loss curves. With identical weights, batch order and no
randomness inside the model, the curves differ by float rounding only,
which grows slowly with the number of steps.

The figures are saved as ``compare.json`` (see :meth:`CompareReport.to_dict`)
and ``compare.png`` (loss curves and speed bars) in the compare folder.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codegen.layers import LOWERINGS
from studio.training import messages
from studio.training.config import ConfigError, RunConfig
from studio.training.run import BothRun
from studio.training.rundir import slug

FRAMEWORK_ORDER = ("keras", "pytorch")
COMPARE_JSON, COMPARE_PNG = "compare.json", "compare.png"
BUSY_LOAD_PER_CORE = 0.5  # a 1-minute load average above this share of the cores skews timings


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
    results: dict[str, FrameworkResult]  # of the first repeat: curves and final metrics
    max_loss_difference: float | None  # None when a run failed or no steps are in common
    at_step: int | None  # the global step (from 1) of the largest difference
    steps_compared: int
    notes: list[str] = field(default_factory=list)  # why the curves may differ by more than rounding
    weight_drift: dict[str, float] = field(default_factory=dict)  # layer -> final weights' relative drift
    verdict: str | None = None  # "equivalent within ..." or "diverged at ..."
    rounds: list[dict[str, FrameworkResult]] = field(default_factory=list)  # every repeat, the first too
    warnings: list[str] = field(default_factory=list)  # why the timings may be unreliable
    parallel: bool = False
    cores: int = 1
    load_average: dict[str, float | None] = field(default_factory=dict)  # "before" and "after" the runs
    folder: Path | None = None  # where compare.json and compare.png are
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results.values())

    @property
    def json_path(self) -> Path | None:
        return None if self.folder is None else self.folder / COMPARE_JSON

    @property
    def png_path(self) -> Path | None:
        return None if self.folder is None else self.folder / COMPARE_PNG

    def to_dict(self) -> dict[str, Any]:
        """The content of compare.json: a ``keras`` and a ``pytorch`` object, the loss-curve gap, and
        how it was measured. Timings are ``{"median", "min", "max"}`` over the repeats."""
        data: dict[str, Any] = {
            "project": self.settings.get("project"),
            "settings": {key: value for key, value in self.settings.items() if key != "project"},
            "repeats": len(self.rounds),
            "parallel": self.parallel,
            "cores": self.cores,
            "load_average": self.load_average,
        }
        for framework in FRAMEWORK_ORDER:
            data[framework] = framework_figures([round_[framework] for round_ in self.rounds])
        data["loss_curve_gap"] = {
            "max_abs_difference": _finite(self.max_loss_difference),
            "at_step": self.at_step,
            "steps_compared": self.steps_compared,
        }
        data["weight_drift"] = dict(self.weight_drift)
        data["verdict"] = self.verdict
        data["notes"] = list(self.notes)
        data["warnings"] = list(self.warnings)
        return data


def compare_frameworks(
    config: RunConfig,
    parallel: bool = False,
    repeats: int = 1,
    threads: int | None = None,
    on_message: Callable[[dict[str, Any]], None] | None = None,
    interval: float = 0.05,
) -> CompareReport:
    """Run both frameworks ``repeats`` times and compare them; the report is saved in its folder.

    ``threads`` per framework defaults to every core, or half of them when ``parallel``.
    Raises ConfigError for a bad ``repeats`` or ``threads``, or a folder that cannot be made.
    """
    if not isinstance(repeats, int) or repeats < 1:
        raise ConfigError(f"repeats: expected a positive integer. Received: {repeats!r}")
    cores = os.cpu_count() or 1
    if threads is None:
        threads = max(1, cores // 2) if parallel else cores
    folder = compare_folder(config)
    config = config.with_changes(threads=threads, benchmark=True, out_dir=str(folder))
    load_before = _load_average()
    rounds = []
    for repeat in range(repeats):
        out_dir = folder if repeats == 1 else folder / f"repeat-{repeat + 1}"
        streams = run_pair(config.with_changes(out_dir=str(out_dir)), parallel, on_message, interval)
        rounds.append({framework: _result(framework, streams[framework]) for framework in FRAMEWORK_ORDER})
        if not all(result.ok for result in rounds[-1].values()):
            break
    report = build_report(config, rounds)
    report.parallel, report.cores, report.folder = parallel, cores, folder
    report.load_average = {"before": load_before, "after": _load_average()}
    report.warnings = busy_warnings(report.load_average, cores)
    if report.ok:
        report.weight_drift = final_weight_drift(config, report.results)
        report.verdict = verdict(report)
        save_report(report)
    return report


# The loss curves and the final weights agree when they differ by at most this much, relative.
AGREEMENT = 1e-3


def final_weight_drift(config: RunConfig, results: dict[str, FrameworkResult]) -> dict[str, float]:
    """Each layer's largest difference between the two runs' final weights, relative to its largest
    weight: the Keras weights converted to the PyTorch program's state_dict, as verify does."""
    from codegen.verify import layer_drifts
    from codegen.weights import keras_to_torch_state
    from studio.frameworks import import_quietly
    from studio.training.session import generate_code, read_project

    paths = {name: result.summary.get("files", {}).get("final") for name, result in results.items()}
    if not all(paths.values()):
        return {}
    import_quietly("tensorflow", "keras", "torch")
    import keras
    import torch

    plan = generate_code(read_project(config))["keras"].plan
    model = keras.saving.load_model(paths["keras"], safe_mode=True, compile=False)
    weights = {
        layer.ident: model.get_layer(layer.ident).get_weights()
        for layer in plan.layers
        if not layer.spec.is_source
    }
    actual = torch.load(paths["pytorch"], weights_only=True)
    return layer_drifts(plan, keras_to_torch_state(plan, weights), actual)


def verdict(report: CompareReport) -> str | None:
    """``equivalent within X`` when the curves and the final weights agree, else where they part."""
    keras, torch = report.results["keras"].batch_losses, report.results["pytorch"].batch_losses
    parted = next(
        (
            step
            for step, (a, b) in enumerate(zip(keras, torch, strict=False), 1)
            if abs(a - b) > AGREEMENT * max(abs(a), 1.0)
        ),
        None,
    )
    worst = max(report.weight_drift.items(), key=lambda item: item[1], default=None)
    if worst is not None and worst[1] > AGREEMENT:
        where = f" (the loss curves part after step {parted})" if parted else ""
        return f"diverged at layer {worst[0]}: its final weights differ by {worst[1]:.2g} relative{where}"
    if parted is not None:
        return f"diverged after step {parted}: the losses differ by more than {AGREEMENT:g} relative"
    within = max(worst[1] if worst else 0.0, report.max_loss_difference or 0.0)
    return f"equivalent within {within:.2g}"


def compare_folder(config: RunConfig) -> Path:
    """``config.out_dir``, or a new ``<runs_root>/<project>-compare-<time>`` folder."""
    if config.out_dir is not None:
        path = Path(config.out_dir).resolve()
        if (path / COMPARE_JSON).exists():
            raise ConfigError(f"{path} already holds a comparison; choose another folder with --out")
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = Path(config.runs_root).resolve() / f"{slug(config.project_name())}-compare-{stamp}"
        path, counter = base, 1
        while path.exists():
            counter += 1
            path = base.with_name(f"{base.name}-{counter}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot create the folder {path}: {error.strerror}") from None
    return path


def run_pair(
    config: RunConfig,
    parallel: bool,
    on_message: Callable[[dict[str, Any]], None] | None,
    interval: float,
) -> dict[str, list[dict[str, Any]]]:
    """Both frameworks once; the messages of each."""
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
    return {framework: run.messages for framework, run in both.runs.items()}


def build_report(config: RunConfig, rounds: list[dict[str, FrameworkResult]]) -> CompareReport:
    results = rounds[0]
    keras_losses, torch_losses = results["keras"].batch_losses, results["pytorch"].batch_losses
    difference, step = loss_curve_difference(keras_losses, torch_losses)
    steps = min(len(keras_losses), len(torch_losses))
    settings = {
        "project": config.project_name(),
        "dataset": config.dataset,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "optimizer": config.optimizer,
        "learning_rate": config.learning_rate,
        "loss": config.loss,
        "seed": config.seed,
        "device": config.device,
        "threads": config.threads,
    }
    return CompareReport(
        results, difference, step, steps, comparison_notes(config), rounds=rounds, settings=settings
    )


def _result(framework: str, stream: list[dict[str, Any]]) -> FrameworkResult:
    outcome = next((m for m in stream if m.get("type") in messages.TERMINAL), {"type": messages.FAILED})
    losses = [m["loss"] for m in stream if m.get("type") == messages.BATCH]
    epochs = [m for m in stream if m.get("type") == messages.EPOCH]
    return FrameworkResult(framework, outcome, losses, epochs)


def framework_figures(results: list[FrameworkResult]) -> dict[str, Any]:
    """One framework's object in compare.json, over its repeats."""
    summaries = [result.summary for result in results if result.ok]
    if not summaries:
        failed = next((r.outcome for r in results if not r.ok), {})
        return {"error": failed.get("message", "the run did not finish")}
    first = summaries[0]
    memory = first.get("model_bytes") or {}
    params = first.get("params") or {}
    sizes = list(first.get("inference_ms") or {})
    return {
        "threads": first.get("threads"),
        "device": first.get("device"),
        "train_seconds_per_epoch": spread(s.get("train_epoch_time") for s in summaries),
        "first_step_seconds": spread(s.get("first_step_time") for s in summaries),
        "samples_per_second": spread(s.get("samples_per_s") for s in summaries),
        "inference_ms_per_batch": {
            size: spread((s.get("inference_ms") or {}).get(size) for s in summaries) for size in sizes
        },
        "model_bytes": memory.get("parameters", 0) + memory.get("optimizer_state", 0),
        "parameter_bytes": memory.get("parameters"),
        "optimizer_state_bytes": memory.get("optimizer_state"),
        # the accelerator's peak (weights, optimizer state and activations); None on the CPU
        "device_peak_bytes": _mib_to_bytes(first.get("gpu_peak_memory_mb")),
        "parameters": params.get("trainable", 0) + params.get("non_trainable", 0),
        "final_loss": _finite(first["final"].get("train_loss")),
        "val_loss": _finite(first["final"].get("val_loss")),
        "val_accuracy": _finite(first["final"].get("val_accuracy")),
        "run_dirs": [s.get("run_dir") for s in summaries],
    }


def spread(values) -> dict[str, float] | None:
    """{"median", "min", "max"} of the values that were measured; None when none was."""
    measured = [value for value in values if value is not None]
    if not measured:
        return None
    return {"median": statistics.median(measured), "min": min(measured), "max": max(measured)}


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
    """Known reasons why the two curves may differ by more than rounding, for this model and optimizer."""
    notes = []
    kinds = _random_or_drifting_kinds(config)
    notes += [
        lowering.training_note
        for kind, lowering in LOWERINGS.kinds.items()
        if kind in kinds and lowering.training_note
    ]
    return notes


def _random_or_drifting_kinds(config: RunConfig) -> set[str]:
    """The layer kinds of the project, leaving out layers whose rate is 0 (a Dropout that drops nothing)."""
    from studio.training.session import read_project

    try:
        project = read_project(config)
    except Exception:  # noqa: BLE001 - notes are best effort; the runs report real errors
        return set()
    return {node.kind for node in project.graph.nodes if node.params.get("rate", None) != 0}


def busy_warnings(load_average: dict[str, float | None], cores: int) -> list[str]:
    """A warning when other work loaded the machine before or during the runs."""
    loads = [load for load in load_average.values() if load is not None]
    if not loads or max(loads) < BUSY_LOAD_PER_CORE * cores:
        return []
    return [
        f"the machine is busy (1-minute load average up to {max(loads):.1f} on {cores} cores): other "
        "processes competed for the cores, so the timings are uncertain; rerun when it is idle"
    ]


def save_report(report: CompareReport) -> None:
    """Write compare.json and compare.png to the report's folder (each atomically)."""
    from studio.project import write_text_atomic
    from studio.training.compare_plot import write_compare_png

    data = report.to_dict()
    data["files"] = {"json": str(report.json_path), "png": str(report.png_path)}
    write_compare_png(report, report.png_path)
    write_text_atomic(report.json_path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):  # not on every platform
        return None


def _mib_to_bytes(mib: float | None) -> int | None:
    return None if mib is None else round(mib * 2**20)


def _finite(value: float | None) -> float | None:
    """JSON has no NaN: a value that is not finite is written as null."""
    return value if value is not None and math.isfinite(value) else None
