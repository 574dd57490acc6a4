"""The list of runs under the plots: check a run to overlay its curves, right-click for its files."""

from __future__ import annotations

import math

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtWidgets import QHeaderView, QTreeWidget, QTreeWidgetItem, QWidget

from studio.training.run_metrics import FRAMEWORK_TITLES, RunRecord

NUMBER_ROLE = Qt.ItemDataRole.UserRole + 1
COLUMNS = ("Run", "Framework", "Status", "Epochs", "Val loss", "Val acc")


def figure(value: float | None, percent: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.1f} %" if percent else f"{value:.4g}"


class RunList(QTreeWidget):
    """Newest first. Holds the records; ``visibilityToggled(record)`` when a check box changes."""

    visibilityToggled = Signal(object)
    menuRequested = Signal(object, QPoint)  # record, global position

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("runList")
        self.records: list[RunRecord] = []
        self.setColumnCount(len(COLUMNS))
        self.setHeaderLabels(COLUMNS)
        self.setRootIsDecorated(False)
        self.setUniformRowHeights(True)
        self.setAlternatingRowColors(True)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        header = self.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.setToolTip("Check runs to overlay their curves; right-click for the run's files")
        self.itemChanged.connect(self._on_item_changed)
        self.customContextMenuRequested.connect(self._on_menu)

    # ----- records -------------------------------------------------------------------

    def next_number(self) -> int:
        return max((record.number for record in self.records), default=0) + 1

    def record(self, number: int) -> RunRecord | None:
        return next((record for record in self.records if record.number == number), None)

    def visible_records(self) -> list[RunRecord]:
        return [record for record in self.records if record.visible]

    def add(self, record: RunRecord) -> None:
        self.records.append(record)
        item = QTreeWidgetItem()
        item.setData(0, NUMBER_ROLE, record.number)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        self.blockSignals(True)
        self.insertTopLevelItem(0, item)
        self.blockSignals(False)
        self.refresh(record)
        self.setCurrentItem(item)

    def remove(self, record: RunRecord) -> None:
        item = self.item_for(record)
        if item is not None:
            self.takeTopLevelItem(self.indexOfTopLevelItem(item))
        self.records.remove(record)

    def item_for(self, record: RunRecord) -> QTreeWidgetItem | None:
        for index in range(self.topLevelItemCount()):
            item = self.topLevelItem(index)
            if item.data(0, NUMBER_ROLE) == record.number:
                return item
        return None

    def refresh(self, record: RunRecord) -> None:
        """Show the record's status, epochs and last figures (both frameworks: "Keras / PyTorch")."""
        item = self.item_for(record)
        if item is None:
            return
        metrics = list(record.frameworks.values())
        lasts = [m.last_epoch() or {} for m in metrics]
        texts = [
            f"#{record.number} {record.label}",
            " vs ".join(FRAMEWORK_TITLES[m.framework] for m in metrics),
            record.status,
            " / ".join(str(m.epoch) for m in metrics),
            " / ".join(figure(last.get("val_loss")) for last in lasts),
            " / ".join(figure(last.get("val_accuracy"), percent=True) for last in lasts),
        ]
        self.blockSignals(True)
        for column, text in enumerate(texts):
            item.setText(column, text)
        item.setToolTip(0, record.run_folder() or "")
        item.setCheckState(0, Qt.CheckState.Checked if record.visible else Qt.CheckState.Unchecked)
        self.blockSignals(False)

    def refresh_all(self) -> None:
        for record in self.records:
            self.refresh(record)

    def selected_record(self) -> RunRecord | None:
        """The current row's run, else the newest."""
        item = self.currentItem()
        record = self.record(item.data(0, NUMBER_ROLE)) if item is not None else None
        return record or (self.records[-1] if self.records else None)

    # ----- events --------------------------------------------------------------------

    def _on_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        record = self.record(item.data(0, NUMBER_ROLE))
        if record is None or column != 0:
            return
        visible = item.checkState(0) == Qt.CheckState.Checked
        if visible != record.visible:
            record.visible = visible
            self.visibilityToggled.emit(record)

    def _on_menu(self, point: QPoint) -> None:
        item = self.itemAt(point)
        record = self.record(item.data(0, NUMBER_ROLE)) if item is not None else None
        if record is not None:
            self.setCurrentItem(item)
            self.menuRequested.emit(record, self.viewport().mapToGlobal(point))
