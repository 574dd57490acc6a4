"""What the training dashboard knows about runs: numpy buffers per framework, no Qt.

Messages from a run (see ``studio.training.messages``) go into a
:class:`RunRecord`; the plots read the buffers on their own timer. The x axis
is in epochs for every curve: batch ``step`` of epoch ``e`` is drawn at
``e - 1 + step / batches_per_epoch``, an epoch's figures at ``e``.

Past runs are read back from their folders (``metrics.jsonl`` holds every
message), so the dashboard lists them after a restart as well.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from studio.project import FRAMEWORKS
from studio.training.rundir import CONFIG as CONFIG_FILE
from studio.training.rundir import METRICS as METRICS_FILE
from studio.training.rundir import RunFolder

FRAMEWORK_TITLES = {"keras": "Keras", "pytorch": "PyTorch"}
EMA_SMOOTHING = 0.9  # weight of the past in the smoothed batch loss (TensorBoard's default 0.6 is jumpier)
MAX_METRICS_BYTES = 50_000_000  # past runs with larger logs are skipped when listing
TERMINAL = ("finished", "failed", "stopped")


class GrowingBuffer:
    """Float64 columns that double their capacity when full; ``view()`` returns the filled part."""

    def __init__(self, columns: int, capacity: int = 256) -> None:
        self._data = np.empty((capacity, columns), dtype=np.float64)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def append(self, *values: float) -> None:
        if self._size == len(self._data):
            bigger = np.empty((2 * len(self._data), self._data.shape[1]), dtype=np.float64)
            bigger[: self._size] = self._data[: self._size]
            self._data = bigger
        self._data[self._size] = values
        self._size += 1

    def column(self, index: int) -> np.ndarray:
        """A view of one filled column (valid until the next append that grows the buffer)."""
        return self._data[: self._size, index]

    def view(self) -> np.ndarray:
        return self._data[: self._size]


def _number(value: Any) -> float:
    """NaN for None (not measured), the float otherwise (NaN and inf stay: a diverged loss shows)."""
    return math.nan if value is None else float(value)


class FrameworkMetrics:
    """One framework's curves in one run."""

    # batch columns: x (epochs), global step, loss, smoothed loss, samples/s
    BX, BSTEP, BLOSS, BEMA, BRATE = range(5)
    # epoch columns: epoch, train loss, train accuracy, val loss, val accuracy, seconds, learning rate
    EX, ETRAIN, ETRAIN_ACC, EVAL, EVAL_ACC, ETIME, ELR = range(7)

    def __init__(self, framework: str) -> None:
        self.framework = framework
        self.batches = GrowingBuffer(5)
        self.epochs = GrowingBuffer(7)
        self.batches_per_epoch = 0
        self.initial_epoch = 0
        self.total_epochs = 0
        self.num_train = 0
        self.started: dict[str, Any] | None = None
        self.outcome: dict[str, Any] | None = None
        self.run_dir: str | None = None
        self.files: dict[str, str] = {}
        self.first_time: float | None = None  # when the first batch arrived (for the ETA)
        self.last_time: float | None = None
        self.epoch = 0
        self.step = 0
        self.samples_per_s = 0.0
        self._ema = 0.0
        self._ema_count = 0
        self.version = 0  # bumped on every change: the plots redraw what changed only

    def checkpoint_file(self) -> Path | None:
        """The resume checkpoint the run left in its folder, if any."""
        if not self.run_dir:
            return None
        path = RunFolder(self.run_dir).checkpoint(self.framework)
        return path if path.is_file() else None

    # ----- messages ------------------------------------------------------------------

    def add(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(message)
            self.version += 1

    def _on_started(self, message: dict[str, Any]) -> None:
        self.started = message
        self.batches_per_epoch = int(message.get("batches_per_epoch") or 0)
        self.initial_epoch = int(message.get("initial_epoch") or 0)
        self.num_train = int(message.get("num_train") or 0)
        config = message.get("config") or {}
        self.total_epochs = int(config.get("epochs") or self.total_epochs or 0)
        self.run_dir = message.get("run_dir") or self.run_dir

    def _on_batch(self, message: dict[str, Any]) -> None:
        epoch, step = int(message["epoch"]), int(message["step"])
        per_epoch = self.batches_per_epoch or max(step, 1)
        loss = _number(message.get("loss"))
        if math.isfinite(loss):  # a NaN batch leaves a gap, not a NaN smoothed curve forever
            self._ema = EMA_SMOOTHING * self._ema + (1 - EMA_SMOOTHING) * loss
            self._ema_count += 1
        smoothed = self._ema / (1 - EMA_SMOOTHING**self._ema_count) if self._ema_count else math.nan
        rate = _number(message.get("samples_per_s"))
        x = epoch - 1 + step / per_epoch
        self.batches.append(x, float(message.get("global_step", 0)), loss, smoothed, rate)
        self.epoch, self.step, self.samples_per_s = epoch, step, rate
        now = float(message.get("time") or 0.0)
        if self.first_time is None:
            self.first_time = now
        self.last_time = now

    def _on_epoch(self, message: dict[str, Any]) -> None:
        self.epochs.append(
            float(message["epoch"]),
            _number(message.get("train_loss")),
            _number(message.get("train_accuracy")),
            _number(message.get("val_loss")),
            _number(message.get("val_accuracy")),
            _number(message.get("epoch_time")),
            _number(message.get("learning_rate")),  # NaN in logs from before schedules
        )
        self.epoch = int(message["epoch"])

    def _on_checkpoint(self, message: dict[str, Any]) -> None:
        self.files[str(message.get("kind"))] = str(message.get("path"))

    def _on_finished(self, message: dict[str, Any]) -> None:
        self.outcome = message
        summary = message.get("summary") or {}
        self.files.update({key: str(value) for key, value in (summary.get("files") or {}).items()})
        self.run_dir = summary.get("run_dir") or self.run_dir

    _on_stopped = _on_finished

    def _on_failed(self, message: dict[str, Any]) -> None:
        self.outcome = message

    # ----- reading -------------------------------------------------------------------

    @property
    def status(self) -> str:
        if self.outcome is not None:
            return str(self.outcome["type"])
        return "running" if self.started else "starting"

    @property
    def total_steps(self) -> int:
        epochs = max(self.total_epochs - self.initial_epoch, 0)
        return epochs * self.batches_per_epoch

    @property
    def done_steps(self) -> int:
        if not self.batches_per_epoch:
            return 0
        return max(0, (self.epoch - 1 - self.initial_epoch) * self.batches_per_epoch + self.step)

    def progress(self) -> float:
        """0..1 of the planned batches."""
        if self.outcome is not None and self.outcome["type"] == "finished":
            return 1.0
        total = self.total_steps
        return min(1.0, self.done_steps / total) if total else 0.0

    def eta_seconds(self) -> float | None:
        done, total = self.done_steps, self.total_steps
        if self.outcome is not None or not done or not total or self.first_time is None:
            return None
        elapsed = (self.last_time or self.first_time) - self.first_time
        if elapsed <= 0:
            return None
        return elapsed / done * (total - done)

    def last_epoch(self) -> dict[str, float] | None:
        if not len(self.epochs):
            return None
        row = self.epochs.view()[-1]
        return {
            "epoch": row[self.EX],
            "train_loss": row[self.ETRAIN],
            "train_accuracy": row[self.ETRAIN_ACC],
            "val_loss": row[self.EVAL],
            "val_accuracy": row[self.EVAL_ACC],
        }

    def confusion_file(self) -> Path | None:
        """The run's confusion_matrix.json, if it wrote one."""
        candidates = [self.files.get("confusion_matrix")]
        if self.run_dir:
            candidates.append(str(RunFolder(self.run_dir).confusion))
        return next((Path(path) for path in candidates if path and Path(path).is_file()), None)

    def tensorboard_folder(self) -> Path | None:
        """The run's TensorBoard event folder, if it wrote one."""
        candidates = [self.files.get("tensorboard")]
        if self.run_dir:
            candidates.append(str(RunFolder(self.run_dir).tensorboard))
        return next((Path(path) for path in candidates if path and Path(path).is_dir()), None)

    def has_accuracy(self) -> bool:
        if not len(self.epochs):
            return False
        view = self.epochs.view()
        return bool(np.isfinite(view[:, self.ETRAIN_ACC]).any() or np.isfinite(view[:, self.EVAL_ACC]).any())

    def error(self) -> str | None:
        if self.outcome is not None and self.outcome["type"] == "failed":
            return str(self.outcome.get("message") or "the run failed")
        return None


@dataclass
class RunRecord:
    """One run in the list: one framework, or Keras and PyTorch side by side ("both")."""

    number: int
    label: str
    kind: str  # "keras" | "pytorch" | "both"
    frameworks: dict[str, FrameworkMetrics] = field(default_factory=dict)
    folder: str | None = None  # the run folder ("both": the folder holding keras/ and pytorch/)
    live: bool = False  # started in this session and not ended yet
    visible: bool = True

    @classmethod
    def create(cls, number: int, label: str, kind: str, folder: str | None = None) -> RunRecord:
        names = FRAMEWORKS if kind == "both" else (kind,)
        return cls(number, label, kind, {name: FrameworkMetrics(name) for name in names}, folder)

    def add_messages(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            metrics = self.frameworks.get(str(message.get("framework")))
            if metrics is not None:
                metrics.add(message)

    @property
    def version(self) -> int:
        return sum(metrics.version for metrics in self.frameworks.values())

    @property
    def status(self) -> str:
        states = {metrics.status for metrics in self.frameworks.values()}
        for state in ("failed", "running", "starting", "stopped"):
            if state in states:
                return state
        return "finished"

    def errors(self) -> list[str]:
        return [
            f"{FRAMEWORK_TITLES[name]}: {metrics.error()}"
            for name, metrics in self.frameworks.items()
            if metrics.error()
        ]

    def progress(self) -> float:
        values = [metrics.progress() for metrics in self.frameworks.values()]
        return min(values) if values else 0.0

    def eta_seconds(self) -> float | None:
        values = [eta for metrics in self.frameworks.values() if (eta := metrics.eta_seconds()) is not None]
        return max(values) if values else None

    def files(self, framework: str) -> dict[str, str]:
        metrics = self.frameworks.get(framework)
        return dict(metrics.files) if metrics else {}

    def run_folder(self) -> str | None:
        """The run's folder ("both": the folder holding keras/ and pytorch/)."""
        if self.folder:
            return self.folder
        return next((m.run_dir for m in self.frameworks.values() if m.run_dir), None)

    def weights_file(self, framework: str) -> Path | None:
        """The trained weights of ``framework`` (final, else best), if the run saved them."""
        metrics = self.frameworks.get(framework)
        if metrics is None:
            return None
        candidates = [metrics.files.get("final"), metrics.files.get("best")]
        if metrics.run_dir:
            candidates.append(str(RunFolder(metrics.run_dir).weights("final", framework)))
        return next((Path(path) for path in candidates if path and Path(path).is_file()), None)

    def warnings(self) -> list[str]:
        """What the frameworks' summaries warned about (a failed ONNX export, for one)."""
        found = []
        for metrics in self.frameworks.values():
            summary = (metrics.outcome or {}).get("summary") or {}
            found += [str(text) for text in summary.get("warnings") or []]
        return found

    def unavailable(self, export: str) -> str | None:
        """Why ``export`` ("keras", "pytorch" or "onnx") cannot be taken from this run; None if it can."""
        if export == "onnx":
            if "pytorch" not in self.frameworks:
                return "ONNX models come from PyTorch runs; this run trained Keras only"
            if self.onnx_file() is not None:
                return None
            failed = [text for text in self.warnings() if "ONNX" in text]
            if failed:
                return failed[0]
            return self._not_saved("an ONNX model")
        if export not in self.frameworks:
            return f"this run did not train {FRAMEWORK_TITLES.get(export, export)}"
        if self.weights_file(export) is not None:
            return None
        return self._not_saved(f"{FRAMEWORK_TITLES[export]} weights")

    def _not_saved(self, what: str) -> str:
        if self.status in ("running", "starting"):
            return f"the run is still training; {what} will be saved when it ends"
        if self.status == "failed":
            return f"the run failed before it saved {what}"
        return f"the run saved no {what}"

    def trained_project(self) -> dict[str, Any] | None:
        """The project as the run trained it (from its config file), if it can be read."""
        folder = self.run_folder()
        if not folder:
            return None
        for candidate in (Path(folder), *(Path(folder) / name for name in FRAMEWORK_TITLES)):
            try:
                config = json.loads((candidate / CONFIG_FILE).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            project = config.get("project") if isinstance(config, dict) else None
            if isinstance(project, str):
                try:
                    project = json.loads(Path(project).read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    project = None
            if isinstance(project, dict):
                return project
        return None

    def onnx_file(self) -> Path | None:
        """The ONNX model exported after training (PyTorch runs), if there is one."""
        for metrics in self.frameworks.values():
            for path in (
                metrics.files.get("onnx"),
                metrics.run_dir and RunFolder(metrics.run_dir).onnx,
            ):
                if path and Path(path).is_file():
                    return Path(path)
        return None


CSV_COLUMNS = (
    "run",
    "framework",
    "row",
    "epoch",
    "step",
    "global_step",
    "batch_loss",
    "smoothed_loss",
    "samples_per_s",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "epoch_time",
    "learning_rate",
)


def _cell(value: float) -> str:
    return "" if math.isnan(value) else repr(float(value))


def write_csv(records: list[RunRecord], path: str | os.PathLike) -> int:
    """Metrics of ``records`` as one CSV table (batch rows, then epoch rows, per framework)."""
    rows = 0
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for record in records:
            for name, metrics in record.frameworks.items():
                per_epoch = metrics.batches_per_epoch or 0
                for x, step, loss, ema, rate in metrics.batches.view():
                    epoch = int(math.floor(x - 1e-9)) + 1
                    in_epoch = int(round((x - epoch + 1) * per_epoch)) if per_epoch else ""
                    writer.writerow(
                        [record.label, name, "batch", epoch, in_epoch, int(step), _cell(loss), _cell(ema)]
                        + [_cell(rate), "", "", "", "", "", ""]
                    )
                    rows += 1
                for epoch, train, train_acc, val, val_acc, seconds, rate in metrics.epochs.view():
                    writer.writerow(
                        [record.label, name, "epoch", int(epoch), "", "", "", "", ""]
                        + [_cell(train), _cell(train_acc), _cell(val), _cell(val_acc), _cell(seconds)]
                        + [_cell(rate)]
                    )
                    rows += 1
    return rows


# ----- past runs ------------------------------------------------------------------------


def read_messages(path: Path) -> list[dict[str, Any]]:
    """The messages of a ``metrics.jsonl`` file; a torn last line (a killed run) is skipped."""
    messages = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict):
                messages.append(message)
    return messages


def _framework_of(folder: Path) -> str | None:
    try:
        config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    framework = config.get("framework") if isinstance(config, dict) else None
    if framework in FRAMEWORK_TITLES:
        return framework
    for name in FRAMEWORK_TITLES:
        if name in folder.name:
            return name
    return None


def load_run_folder(folder: Path, number: int) -> RunRecord | None:
    """A past run from its folder (one framework, or ``keras/`` + ``pytorch/`` inside); None if unreadable."""
    folder = Path(folder)
    parts = {name: folder / name for name in FRAMEWORK_TITLES if (folder / name / METRICS_FILE).is_file()}
    if parts:
        record = RunRecord.create(number, folder.name, "both", str(folder))
        record.frameworks = {name: FrameworkMetrics(name) for name in parts}
    elif (folder / METRICS_FILE).is_file():
        framework = _framework_of(folder)
        if framework is None:
            return None
        parts = {framework: folder}
        record = RunRecord.create(number, folder.name, framework, str(folder))
    else:
        return None
    try:
        for name, path in parts.items():
            metrics_path = path / METRICS_FILE
            if metrics_path.stat().st_size > MAX_METRICS_BYTES:
                return None
            metrics = record.frameworks[name]
            metrics.run_dir = str(path)
            for message in read_messages(metrics_path):
                if message.get("framework") == name:
                    metrics.add(message)
            if metrics.outcome is None:  # the app ended while it trained
                metrics.outcome = {"type": "stopped", "framework": name, "summary": {}}
    except OSError:
        return None
    record.visible = False
    return record


def scan_runs(root: Path, limit: int = 12, first_number: int = 1) -> list[RunRecord]:
    """The ``limit`` most recent runs under ``root``, oldest first."""
    root = Path(root)
    try:
        folders = [entry for entry in root.iterdir() if entry.is_dir()]
    except OSError:
        return []
    folders.sort(key=lambda entry: entry.stat().st_mtime, reverse=True)
    records = []
    for folder in folders:
        if len(records) >= limit:
            break
        record = load_run_folder(folder, 0)
        if record is not None:
            records.append(record)
    records.reverse()
    for offset, record in enumerate(records):
        record.number = first_number + offset
    return records


def model_of(project: dict[str, Any]) -> dict[str, Any]:
    """The parts of a project dict that make the model (layers, connections, outputs): not where
    the nodes sit on the canvas, nor the training settings."""
    nodes = [
        {key: value for key, value in node.items() if key != "position"}
        for node in project.get("nodes") or []
        if isinstance(node, dict)
    ]
    return {"nodes": nodes, "edges": project.get("edges") or [], "outputs": project.get("outputs") or []}


def format_eta(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return ""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
