"""The layer palette: every catalog kind by category, with a search box.

Drag a kind onto the canvas to add it there; double-click (or Enter in the
search box) to add it next to the selection.
"""

from __future__ import annotations

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLineEdit,
    QStyle,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.catalog import CATALOG, Registry
from widgets.clipboard import MIME_KIND
from widgets.icons import category_icon

KIND_ROLE = Qt.ItemDataRole.UserRole + 1


class PaletteTree(QTreeWidget):
    """A tree whose kind items drag out as MIME_KIND data."""

    def mimeTypes(self) -> list[str]:
        return [MIME_KIND]

    def mimeData(self, items: list[QTreeWidgetItem]) -> QMimeData:
        mime = QMimeData()
        kinds = [item.data(0, KIND_ROLE) for item in items if item.data(0, KIND_ROLE)]
        if kinds:
            mime.setData(MIME_KIND, kinds[0].encode("utf-8"))
            mime.setText(kinds[0])
        return mime

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction


class Palette(QWidget):
    addRequested = Signal(str)  # a layer kind to add next to the selection

    def __init__(self, registry: Registry = CATALOG, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("paletteWidget")
        self.registry = registry
        self.search = QLineEdit(placeholderText="Search layers…", clearButtonEnabled=True)
        self.search.setObjectName("paletteSearch")
        self.tree = PaletteTree()
        self.tree.setObjectName("paletteTree")
        self._configure_tree()
        self._fill()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(6)
        layout.addWidget(self.search)
        layout.addWidget(self.tree)
        self.search.textChanged.connect(self.filter)
        self.search.returnPressed.connect(self._add_first_match)
        self.tree.itemActivated.connect(self._on_activated)  # double-click or Enter

    def _configure_tree(self) -> None:
        self.tree.setHeaderHidden(True)
        self.tree.setIndentation(12)
        self.tree.setRootIsDecorated(False)  # a category is a heading; kind names get the room
        self.tree.setDragEnabled(True)
        self.tree.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setUniformRowHeights(True)

    def _fill(self) -> None:
        bold = QFont()
        bold.setBold(True)
        for category, specs in self.registry.by_category().items():
            group = QTreeWidgetItem(self.tree, [category])
            group.setIcon(0, category_icon(category))
            group.setFont(0, bold)
            group.setFlags(Qt.ItemFlag.ItemIsEnabled)
            group.setToolTip(0, f"{category}: {len(specs)} layer kinds")
            for spec in specs:
                item = QTreeWidgetItem(group, [spec.key])
                item.setToolTip(0, spec.summary())
                item.setData(0, KIND_ROLE, spec.key)
                item.setFlags(
                    Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled
                )
        self.tree.expandAll()

    def preferred_width(self) -> int:
        """Pixels for the longest kind name, whole, beside a scroll bar."""
        text = max(self.tree.fontMetrics().horizontalAdvance(item.text(0)) for item in self.kind_items())
        scroll_bar = self.tree.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
        margins = self.layout().contentsMargins()
        frame = 2 * self.tree.frameWidth()
        return text + self.tree.indentation() + scroll_bar + frame + margins.left() + margins.right() + 12

    def kind_items(self) -> list[QTreeWidgetItem]:
        items = []
        for index in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(index)
            items += [group.child(row) for row in range(group.childCount())]
        return items

    def filter(self, text: str) -> None:
        """Show the kinds whose name, category or description contains ``text``."""
        needle = text.strip().lower()
        for index in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(index)
            visible = 0
            for row in range(group.childCount()):
                item = group.child(row)
                spec = self.registry.get(item.data(0, KIND_ROLE))
                match = not needle or any(
                    needle in text.lower() for text in (spec.key, spec.category, spec.doc)
                )
                item.setHidden(not match)
                visible += match
            group.setHidden(visible == 0)
            group.setExpanded(True)

    def visible_kinds(self) -> list[str]:
        return [
            item.data(0, KIND_ROLE)
            for item in self.kind_items()
            if not item.isHidden() and not item.parent().isHidden()
        ]

    def _add_first_match(self) -> None:
        kinds = self.visible_kinds()
        if self.search.text().strip() and kinds:
            exact = [kind for kind in kinds if kind.lower() == self.search.text().strip().lower()]
            self.addRequested.emit((exact or kinds)[0])

    def _on_activated(self, item: QTreeWidgetItem, column: int = 0) -> None:
        kind = item.data(0, KIND_ROLE)
        if kind:
            self.addRequested.emit(kind)
