"""Every problem of the latest analysis; clicking one selects and centres its layer."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QAbstractItemView, QStyle, QTreeWidget, QTreeWidgetItem, QWidget

from studio.analysis import ERROR, Problem
from widgets.document import Document

NODE_ROLE = Qt.ItemDataRole.UserRole + 1


class ProblemsPanel(QTreeWidget):
    nodeActivated = Signal(str)

    def __init__(self, document: Document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("problemsWidget")
        self.document = document
        self.setColumnCount(2)
        self.setHeaderLabels(["Problem", "Layer"])
        self.setRootIsDecorated(False)
        self.setUniformRowHeights(True)
        self.setAlternatingRowColors(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setWordWrap(False)
        self.header().setStretchLastSection(False)
        self.header().setSectionResizeMode(0, self.header().ResizeMode.Stretch)
        self.header().setSectionResizeMode(1, self.header().ResizeMode.ResizeToContents)
        self.itemClicked.connect(self._on_clicked)
        self.itemActivated.connect(self._on_clicked)
        document.analysisChanged.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        self.clear()
        problems = self.document.analysis.problems
        for problem in problems:
            self.addTopLevelItem(self._item(problem))
        if not problems:
            item = QTreeWidgetItem(["No problems: the model is valid.", ""])
            item.setIcon(0, self.style().standardIcon(QStyle.StandardPixmap.SP_DialogApplyButton))
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            self.addTopLevelItem(item)

    def _item(self, problem: Problem) -> QTreeWidgetItem:
        graph = self.document.graph
        layer = graph.node(problem.node_id).name if problem.node_id in graph else ""
        item = QTreeWidgetItem([problem.message, layer])
        icon = (
            QStyle.StandardPixmap.SP_MessageBoxCritical
            if problem.severity == ERROR
            else QStyle.StandardPixmap.SP_MessageBoxWarning
        )
        item.setIcon(0, self.style().standardIcon(icon))
        item.setToolTip(0, f"{problem.severity}: {problem.message}")
        item.setData(0, NODE_ROLE, problem.node_id)
        return item

    def problem_count(self) -> int:
        return len(self.document.analysis.problems)

    def messages(self) -> list[str]:
        return [problem.message for problem in self.document.analysis.problems]

    def _on_clicked(self, item: QTreeWidgetItem, column: int = 0) -> None:
        node_id = item.data(0, NODE_ROLE)
        if node_id and node_id in self.document.graph:
            self.nodeActivated.emit(node_id)
