"""Train → Compare Keras and PyTorch: ``studio compare`` in a child process, its figures shown here.

The dialog saves the open project to a temporary file, runs ``studio compare``
with the repeats and core split the user picked into a new folder under the
runs folder, shows its progress lines as they come, then reads the
``compare.json`` and ``compare.png`` it wrote there: the same figures the
command line prints, as a table (median, with min–max over the repeats), the
loss curves and speed bars, the verdict, and any warning (a busy machine).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from html import escape
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.project import ProjectError, save_project
from studio.training.rundir import slug
from widgets.document import Document
from widgets.studio_process import StudioProcess, last_error_line

FRAMEWORKS = (("keras", "Keras"), ("pytorch", "PyTorch"))
MAX_REPEATS = 20


def _spread(value: dict[str, float] | None, scale: float = 1.0, digits: int = 3) -> str:
    """``median (min–max)`` of a compare.json timing; one figure when there was one repeat."""
    if not value:
        return "–"
    median, low, high = (value[key] * scale for key in ("median", "min", "max"))
    text = f"{median:.{digits}g}"
    return text if low == high else f"{text} ({low:.{digits}g}–{high:.{digits}g})"


def _number(value: float | None, percent: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:.1%}" if percent else f"{value:.4g}"


def _bytes(value: int | None) -> str:
    if not value:
        return "–"
    return f"{value / 1024:.1f} KiB" if value < 1024**2 else f"{value / 1024**2:.2f} MiB"


def _threads(value: Any) -> str:
    """compare.json's threads, {"intra_op": N, "inter_op": M}, as a short text."""
    if isinstance(value, dict):
        return ", ".join(f"{count} {name.replace('_', '-')}" for name, count in value.items())
    return str(value or "default")


def figure_rows(data: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """The rows of the table: a label and one cell per framework, from compare.json."""
    sizes = sorted(
        {size for name, _ in FRAMEWORKS for size in (data.get(name, {}).get("inference_ms_per_batch") or {})},
        key=int,
    )
    rows: list[tuple[str, Any]] = [
        ("Threads", lambda f: _threads(f.get("threads"))),
        ("Training s / epoch", lambda f: _spread(f.get("train_seconds_per_epoch"))),
        ("First step (warm-up) s", lambda f: _spread(f.get("first_step_seconds"))),
        ("Samples / s", lambda f: _spread(f.get("samples_per_second"), digits=4)),
        *(
            (
                f"Inference ms, batch {size}",
                lambda f, size=size: _spread((f.get("inference_ms_per_batch") or {}).get(size)),
            )
            for size in sizes
        ),
        ("Model memory (weights + optimizer)", lambda f: _bytes(f.get("model_bytes"))),
        ("Final training loss", lambda f: _number(f.get("final_loss"))),
        ("Validation accuracy", lambda f: _number(f.get("val_accuracy"), percent=True)),
    ]
    table = []
    for label, cell in rows:
        cells = []
        for name, _ in FRAMEWORKS:
            figures = data.get(name) or {}
            cells.append(f"failed: {figures['error']}" if "error" in figures else cell(figures))
        table.append((label, cells))
    return table


class CompareDialog(QDialog):
    def __init__(self, document: Document, runs_root: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("compareDialog")
        self.setWindowTitle("Compare Keras and PyTorch")
        self.document = document  # the model as it is when Start is pressed is compared
        self.runs_root = Path(runs_root)
        self.folder: Path | None = None  # the compare folder of the current or last run
        self.data: dict[str, Any] | None = None
        self._temp: str | None = None
        self.process = StudioProcess(self)
        self.process.outputLine.connect(self._on_line)
        self.process.done.connect(self._on_done)

        intro = QLabel(
            "Trains the model in Keras and in PyTorch from the same initial weights, on the same batches, "
            "with the same number of compute threads, and measures each: training time per epoch (without "
            "validation; the first, warm-up step apart), samples per second, inference latency and model "
            "memory. The loss curves should overlap: the frameworks compute the same model.",
            wordWrap=True,
        )
        self.repeats = QSpinBox(minimum=1, maximum=MAX_REPEATS, value=1, objectName="compareRepeats")
        self.repeats.setToolTip("Train each framework this many times: the median, with the min and max")
        self.parallel = QCheckBox("Both at once, half the cores each", objectName="compareParallel")
        self.parallel.setToolTip("By default they run one after the other, each with every core")
        self.start_button = QPushButton("Start", objectName="compareStart", default=True)
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel", objectName="compareCancel", enabled=False)
        self.cancel_button.clicked.connect(self.cancel)
        options = QHBoxLayout()
        options.addWidget(QLabel("Repeats:"))
        options.addWidget(self.repeats)
        options.addSpacing(12)
        options.addWidget(self.parallel)
        options.addStretch(1)
        options.addWidget(self.start_button)
        options.addWidget(self.cancel_button)

        self.log = QPlainTextEdit(readOnly=True, objectName="compareLog", maximumBlockCount=500)
        self.log.setPlaceholderText("Progress shows here.")
        self.log.setMaximumHeight(110)
        self.status = QLabel(objectName="compareStatus", wordWrap=True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.table = QTableWidget(0, len(FRAMEWORKS), objectName="compareTable")
        self.table.setHorizontalHeaderLabels([title for _, title in FRAMEWORKS])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.picture = QLabel(objectName="comparePicture", alignment=Qt.AlignmentFlag.AlignCenter)
        self._pixmap = QPixmap()
        self.scroll = QScrollArea(widgetResizable=True)
        self.scroll.setWidget(self.picture)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(options)
        layout.addWidget(self.log)
        layout.addWidget(self.status)
        results = QHBoxLayout()
        self.table.setMinimumWidth(480)
        results.addWidget(self.table, 1)
        results.addWidget(self.scroll, 1)
        layout.addLayout(results, 1)
        layout.addWidget(buttons)
        self.resize(1100, 640)

    @property
    def is_running(self) -> bool:
        return self.process.is_running

    def start(self) -> None:
        if self.is_running:
            return
        self._cleanup()
        self._temp = tempfile.mkdtemp(prefix="layer-studio-compare-")
        path = Path(self._temp) / "model.layers.json"
        try:
            save_project(self.document.project, path)
            self.runs_root.mkdir(parents=True, exist_ok=True)
        except (OSError, ProjectError) as error:
            self._show_failure(escape(f"Cannot start the comparison: {error}"))
            return
        self.folder = (
            self.runs_root / f"{slug(self.document.display_name)}-compare-{time.strftime('%Y%m%d-%H%M%S')}"
        )
        arguments = ["-m", "studio", "compare", str(path), "--out", str(self.folder)]
        arguments += ["--repeats", str(self.repeats.value())]
        if self.parallel.isChecked():
            arguments.append("--parallel")
        self.log.clear()
        self.table.setRowCount(0)
        self.picture.clear()
        self.data = None
        self.status.setText("Comparing… (each framework trains the project's epochs; Cancel stops it)")
        self.process.start(arguments)
        self._set_running(True)

    def cancel(self) -> None:
        if self.is_running:
            self.process.kill()
            self._set_running(False)
            self.status.setText("Cancelled.")
            self._cleanup()

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.repeats.setEnabled(not running)
        self.parallel.setEnabled(not running)

    def _on_line(self, line: str) -> None:
        if line.strip():
            self.log.appendPlainText(line.rstrip())

    def _on_done(self, exit_code: int, stdout: str, stderr: str) -> None:
        self._set_running(False)
        self._cleanup()
        report = self.folder / "compare.json" if self.folder else None
        if exit_code != 0 or report is None or not report.is_file():
            self._show_failure(f"The comparison failed: {escape(last_error_line(stderr))}")
            return
        try:
            self.data = json.loads(report.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            self._show_failure(escape(f"Cannot read {report}: {error}"))
            return
        self.show_report(self.data, self.folder / "compare.png")

    def show_report(self, data: dict[str, Any], picture: Path) -> None:
        rows = figure_rows(data)
        self.table.setRowCount(len(rows))
        self.table.setVerticalHeaderLabels([label for label, _ in rows])
        for row, (_, cells) in enumerate(rows):
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, column, item)
        gap = data.get("loss_curve_gap") or {}
        lines = []
        if data.get("verdict"):
            lines.append(f"<b>{escape(str(data['verdict']))}</b>")
        if gap.get("max_abs_difference") is not None:
            lines.append(
                f"Largest loss-curve difference {gap['max_abs_difference']:.3g} "
                f"(step {gap.get('at_step')} of {gap.get('steps_compared')})."
            )
        how = "at once, sharing the cores" if data.get("parallel") else "one after the other"
        lines.append(
            f"{data.get('repeats', 1)} repeat(s), {how}, on {data.get('cores')} cores. "
            f"Saved in {escape(str(self.folder))}."
        )
        lines += [f"Note: {escape(str(text))}" for text in data.get("notes", [])]
        lines += [f"Warning: {escape(str(text))}" for text in data.get("warnings", [])]
        self.status.setText("<br>".join(lines))
        self._pixmap = QPixmap(str(picture))
        self._fit_picture()

    def _fit_picture(self) -> None:
        """The picture, as wide as its side of the dialog allows (never enlarged)."""
        if self._pixmap.isNull():
            return
        space = self.scroll.viewport().width() - 4
        width = max(160, min(self._pixmap.width(), space))
        self.picture.setPixmap(self._pixmap.scaledToWidth(width, Qt.TransformationMode.SmoothTransformation))

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        QTimer.singleShot(0, self._fit_picture)  # once the layout has given the picture its room

    def _show_failure(self, text: str) -> None:
        self._cleanup()
        self._set_running(False)
        self.status.setText(text)

    def _cleanup(self) -> None:
        if self._temp is not None:
            shutil.rmtree(self._temp, ignore_errors=True)
            self._temp = None

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.cancel()
        super().closeEvent(event)
