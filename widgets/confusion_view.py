"""A run's confusion matrix: a heat map, per-class precision/recall/F1, and misclassified images.

Reads the ``confusion_matrix.json`` that a classification run writes
(studio.training.confusion). Rows are the true classes, columns the predicted
ones; a cell's colour is its share of the row (the recall of the diagonal),
and its count is written inside when the cell is large enough.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.training.confusion import read_report
from studio.training.run_metrics import FRAMEWORK_TITLES, RunRecord
from widgets.run_list import figure
from widgets.theme import LIGHT, Theme

LABEL_LIMIT = 30  # more classes than this: no class names along the axes
SAMPLE_SIZE = 56  # pixels of a misclassified image's thumbnail
EMPTY_TEXT = (
    "No confusion matrix yet: a classification run writes one when it ends (validation set, final weights)."
)


def _mix(low: QColor, high: QColor, amount: float) -> QColor:
    amount = min(max(amount, 0.0), 1.0)
    return QColor.fromRgbF(
        low.redF() + (high.redF() - low.redF()) * amount,
        low.greenF() + (high.greenF() - low.greenF()) * amount,
        low.blueF() + (high.blueF() - low.blueF()) * amount,
    )


class HeatMap(QWidget):
    """The matrix as coloured cells, class names along the axes when there are few classes."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("confusionHeatMap")
        self.setMouseTracking(True)
        self.setMinimumSize(140, 140)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.matrix = np.zeros((0, 0), dtype=np.int64)
        self.classes: list[str] = []
        self.theme: Theme = LIGHT

    def sizeHint(self) -> QSize:
        return QSize(320, 320)

    def set_matrix(self, matrix: np.ndarray, classes: list[str]) -> None:
        self.matrix, self.classes = matrix, classes
        self.update()

    def row_shares(self) -> np.ndarray:
        totals = self.matrix.sum(axis=1, keepdims=True)
        return np.divide(self.matrix, totals, out=np.zeros(self.matrix.shape), where=totals > 0)

    def _geometry(self) -> tuple[float, float, float]:
        """(left margin, top margin, cell side) in pixels."""
        n = len(self.matrix)
        labelled = n <= LABEL_LIMIT
        metrics = self.fontMetrics()
        widest = max((metrics.horizontalAdvance(name) for name in self.classes), default=0)
        left = min(widest, 90) + 24 if labelled else 20
        top = metrics.height() + 6
        bottom = metrics.height() * 2 + 8
        side = max(
            min((self.width() - left - 4) / max(n, 1), (self.height() - top - bottom) / max(n, 1)), 1.0
        )
        left += max(0.0, (self.width() - left - 4 - side * n) / 2)  # centred in the room left over
        return left, top, side

    def cell_at(self, x: float, y: float) -> tuple[int, int] | None:
        left, top, side = self._geometry()
        row, column = int((y - top) // side), int((x - left) // side)
        n = len(self.matrix)
        return (row, column) if 0 <= row < n and 0 <= column < n and y >= top and x >= left else None

    def mouseMoveEvent(self, event) -> None:
        cell = self.cell_at(event.position().x(), event.position().y())
        if cell is None:
            self.setToolTip("")
            return
        row, column = cell
        share = self.row_shares()[row, column]
        self.setToolTip(
            f"true {self.classes[row]}, predicted {self.classes[column]}: "
            f"{self.matrix[row, column]} ({share:.0%} of the true {self.classes[row]})"
        )

    def paintEvent(self, event) -> None:
        n = len(self.matrix)
        if n == 0:
            return
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        theme, shares = self.theme, self.row_shares()
        low, high = QColor(theme.base), QColor(theme.plot_pytorch)
        left, top, side = self._geometry()
        font = QFont(self.font())
        font.setPointSizeF(max(6.0, min(9.0, side / 3.2)))
        painter.setFont(font)
        for row in range(n):
            for column in range(n):
                rect = QRectF(left + column * side, top + row * side, side, side)
                color = _mix(low, high, shares[row, column] ** 0.6)  # small shares stay visible
                painter.fillRect(rect, color)
                if side >= 16 and self.matrix[row, column]:
                    dark = color.lightnessF() < 0.55
                    painter.setPen(QColor("#ffffff") if dark else QColor("#1a1a1a"))
                    painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, str(self.matrix[row, column]))
        painter.setPen(QColor(theme.node_border))
        painter.drawRect(QRectF(left, top, side * n, side * n))
        painter.setFont(self.font())
        painter.setPen(QColor(theme.text))
        height = self.fontMetrics().height()
        if n <= LABEL_LIMIT:
            for index, name in enumerate(self.classes):
                short = self.fontMetrics().elidedText(name, Qt.TextElideMode.ElideRight, int(left) - 8)
                painter.drawText(
                    QRectF(0, top + index * side, left - 6, side),
                    Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                    short,
                )
                painter.drawText(
                    QRectF(left + index * side, top + n * side + 2, side, height),
                    Qt.AlignmentFlag.AlignCenter,
                    self.fontMetrics().elidedText(name, Qt.TextElideMode.ElideRight, int(side)),
                )
        painter.setPen(QColor(theme.muted_text))
        painter.drawText(QRectF(left, 0, side * n, top - 2), Qt.AlignmentFlag.AlignCenter, "predicted →")
        painter.drawText(
            QRectF(left, top + n * side + height + 2, side * n, height + 4),
            Qt.AlignmentFlag.AlignCenter,
            "rows: true class",
        )
        painter.end()


def _fraction(value: float | None) -> str:
    """0.875 as "0.875"; a figure with nothing to divide by as a dash."""
    return "–" if value is None else f"{value:.3f}"


def sample_pixmap(image: list, size: int = SAMPLE_SIZE) -> QPixmap:
    """A grey (H, W) or colour (H, W, 3) image of any range, stretched to [0, 255] and scaled up."""
    array = np.asarray(image, dtype=np.float64)
    low, high = float(np.nanmin(array)), float(np.nanmax(array))
    scaled = np.nan_to_num((array - low) / (high - low) if high > low else np.zeros_like(array))
    pixels = np.ascontiguousarray((scaled * 255).round().astype(np.uint8))
    if pixels.ndim == 2:
        height, width = pixels.shape
        picture = QImage(pixels.data, width, height, width, QImage.Format.Format_Grayscale8)
    else:
        height, width, _ = pixels.shape
        picture = QImage(pixels.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return QPixmap.fromImage(picture.copy()).scaled(
        size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation
    )


class ConfusionView(QWidget):
    """The confusion matrix of one run (a framework chooser for side-by-side runs)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("confusionView")
        self.record: RunRecord | None = None
        self.reports: dict[str, dict] = {}
        self.title = QLabel(EMPTY_TEXT, objectName="confusionTitle")
        self.title.setWordWrap(True)
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.framework = QComboBox(objectName="confusionFramework")
        self.framework.currentIndexChanged.connect(self._show_current)
        self.heat_map = HeatMap()
        self.table = QTableWidget(0, 5, objectName="perClassTable")
        self.table.setHorizontalHeaderLabels(["class", "precision", "recall", "F1", "support"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.setMinimumWidth(260)
        self.table.setMaximumWidth(420)
        self.samples = QWidget(objectName="misclassifiedSamples")
        self.samples_layout = QHBoxLayout(self.samples)
        self.samples_layout.setContentsMargins(0, 0, 0, 0)
        self.samples_layout.setSpacing(6)
        samples_area = QScrollArea()
        samples_area.setWidget(self.samples)
        samples_area.setWidgetResizable(True)
        samples_area.setFixedHeight(SAMPLE_SIZE + 40)
        samples_area.setFrameShape(QScrollArea.Shape.NoFrame)
        self.samples_area = samples_area

        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.framework)
        body = QHBoxLayout()
        body.addWidget(self.heat_map, 1)
        body.addWidget(self.table)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 2, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(header)
        layout.addLayout(body, 1)
        layout.addWidget(samples_area)
        self._show_current()

    def set_theme(self, theme: Theme) -> None:
        self.heat_map.theme = theme
        self.heat_map.update()

    def show_record(self, record: RunRecord | None) -> None:
        """Show ``record``'s matrices (read again: a run that just ended has written its file)."""
        self.record = record
        self.reports = {}
        if record is not None:
            for name, metrics in record.frameworks.items():
                path = metrics.confusion_file()
                report = read_report(path) if path else None
                if report is not None:
                    self.reports[name] = report
        current = self.framework.currentData()
        self.framework.blockSignals(True)
        self.framework.clear()
        for name in self.reports:
            self.framework.addItem(FRAMEWORK_TITLES[name], name)
        self.framework.setCurrentIndex(max(0, self.framework.findData(current)))
        self.framework.blockSignals(False)
        self.framework.setVisible(len(self.reports) > 1)
        self._show_current()

    def current_report(self) -> dict | None:
        return self.reports.get(self.framework.currentData())

    def _show_current(self) -> None:
        report = self.current_report()
        has = report is not None
        for widget in (self.heat_map, self.table, self.samples_area):
            widget.setVisible(has)
        if not has:
            self.title.setText(EMPTY_TEXT)
            return
        matrix = np.asarray(report.get("matrix") or [], dtype=np.int64).reshape(len(report["classes"]), -1)
        self.heat_map.set_matrix(matrix, [str(name) for name in report["classes"]])
        framework = FRAMEWORK_TITLES.get(str(report.get("framework")), "")
        self.title.setText(
            f"{framework} · validation set, final weights after epoch {report.get('epoch', '?')} · "
            f"accuracy {figure(report.get('accuracy'), percent=True)} · "
            f"macro F1 {figure(report.get('macro_f1'))}"
        )
        self._fill_table(report.get("per_class") or [])
        self._fill_samples(report.get("samples") or [])

    def _fill_table(self, rows: list[dict]) -> None:
        self.table.setRowCount(len(rows))
        for index, row in enumerate(rows):
            cells = [
                str(row.get("class")),
                *(_fraction(row.get(key)) for key in ("precision", "recall", "f1")),
                str(row.get("support", "")),
            ]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(index, column, item)

    def _fill_samples(self, samples: list[dict]) -> None:
        while self.samples_layout.count():
            widget = self.samples_layout.takeAt(0).widget()
            if widget is not None:
                widget.setParent(None)  # out of the view now, deleted later
                widget.deleteLater()
        if not samples:
            self.samples_area.hide()
            return
        caption = QLabel("Misclassified:")
        self.samples_layout.addWidget(caption)
        for sample in samples:
            cell = QLabel(objectName="misclassifiedSample")
            cell.setPixmap(sample_pixmap(sample["image"]))
            cell.setToolTip(
                f"validation sample {sample['index']}: true {sample['true']}, predicted {sample['predicted']}"
            )
            text = QLabel(f"{sample['true']} → {sample['predicted']}")
            text.setAlignment(Qt.AlignmentFlag.AlignCenter)
            box = QWidget()
            column = QVBoxLayout(box)
            column.setContentsMargins(0, 0, 0, 0)
            column.setSpacing(1)
            column.addWidget(cell, 0, Qt.AlignmentFlag.AlignCenter)
            column.addWidget(text)
            self.samples_layout.addWidget(box)
        self.samples_layout.addStretch(1)
