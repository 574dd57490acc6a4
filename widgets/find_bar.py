"""Find a layer by name or kind (Ctrl+F): type, press Enter, and the canvas shows it.

Enter again shows the next match. Matches come in this order: the exact name,
names that start with the text, then names or kinds that contain it.
"""

from __future__ import annotations

from PySide6.QtCore import QStringListModel, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QCompleter, QLineEdit, QWidget

from widgets.document import Document


def matching_layers(document: Document, text: str) -> list[str]:
    """Node ids whose name or kind matches ``text``, best first (case-insensitive)."""
    needle = text.strip().lower()
    if not needle:
        return []
    ranked = []
    for order, node in enumerate(document.graph.nodes):
        name, kind = node.name.lower(), node.kind.lower()
        if name == needle:
            rank = 0
        elif name.startswith(needle):
            rank = 1
        elif kind == needle:
            rank = 2
        elif needle in name or needle in kind:
            rank = 3
        else:
            continue
        ranked.append((rank, order, node.id))
    return [node_id for _, _, node_id in sorted(ranked)]


class FindBar(QLineEdit):
    found = Signal(str)  # the node id to select and show
    message = Signal(str)

    def __init__(self, document: Document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("findLayer")
        self.setPlaceholderText("Find layer…")
        self.setClearButtonEnabled(True)
        self.setToolTip("Find a layer by name or kind (Ctrl+F); Enter shows the next match")
        self.document = document
        self._matches: list[str] = []
        self._next = 0
        self._completer = QCompleter(self)
        self._completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self._completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.setCompleter(self._completer)
        self.textChanged.connect(self._reset)
        self.returnPressed.connect(self.find_next)
        document.analysisChanged.connect(self._update_completions)
        self._update_completions()

    def _update_completions(self) -> None:
        self._reset()
        names = [node.name for node in self.document.graph.nodes]
        self._completer.setModel(QStringListModel(names, self._completer))

    def _reset(self) -> None:
        self._matches, self._next = [], 0

    def find_next(self) -> str | None:
        """Show the next layer that matches the text; None (and a message) when none does."""
        if not self._matches:
            self._matches = matching_layers(self.document, self.text())
            self._next = 0
        if not self._matches:
            if self.text().strip():
                self.message.emit(f"No layer's name or kind contains {self.text().strip()!r}.")
            return None
        node_id = self._matches[self._next % len(self._matches)]
        self._next += 1
        count = len(self._matches)
        name = self.document.graph.node(node_id).name
        self.message.emit(f"Match {(self._next - 1) % count + 1} of {count}: {name}")
        self.found.emit(node_id)
        return node_id

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.clear()
            self._reset()
            self.clearFocus()
            return
        super().keyPressEvent(event)
