"""The open document: the project, its file, its undo stack and its latest analysis.

Views never copy the graph. They subscribe to ``document.graph_events``, a relay
of the current graph's events that survives opening another project, and to
the Qt signals below; they read everything else from the document when drawn.
"""

from __future__ import annotations

from pathlib import Path

import shiboken6
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoStack

from studio.analysis import Analysis, analyze
from studio.events import GraphEvent, GraphEvents
from studio.graph import Graph
from studio.project import Project, TrainingSettings
from studio.templates import blank_project

# Edits that cannot change shapes, parameters or problems.
_LAYOUT_ONLY = {"node_moved", "blocks_changed"}


class Document(QObject):
    projectReplaced = Signal()  # a new project was opened: rebuild everything
    analysisChanged = Signal()  # shapes, parameter counts or problems may have changed
    dirtyChanged = Signal(bool)
    pathChanged = Signal()
    trainingChanged = Signal()  # the project's TrainingSettings were replaced

    def __init__(
        self, project: Project | None = None, path: Path | None = None, parent: QObject | None = None
    ):
        super().__init__(parent)
        self.undo_stack = QUndoStack(self)
        self.graph_events = GraphEvents()
        self._project: Project | None = None
        self._path: Path | None = None
        self._analysis = Analysis()
        self._recovered = False
        self.undo_stack.cleanChanged.connect(self._on_clean_changed)
        self.set_project(project or blank_project(), path)

    # ----- reading -------------------------------------------------------------------

    @property
    def project(self) -> Project:
        return self._project

    @property
    def graph(self) -> Graph:
        return self._project.graph

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def analysis(self) -> Analysis:
        return self._analysis

    @property
    def is_dirty(self) -> bool:
        return self._recovered or not self.undo_stack.isClean()

    @property
    def display_name(self) -> str:
        if self._project.name and self._project.name != "Untitled":
            return self._project.name
        return self._path.name.removesuffix(".layers.json") if self._path else "Untitled"

    # ----- changing ------------------------------------------------------------------

    def set_project(self, project: Project, path: Path | None = None, recovered: bool = False) -> None:
        """Replace the open project (New, Open, recovery). Clears the undo history."""
        if self._project is not None:
            self._unbind(self._project.graph)
        self._project = project
        self._path = Path(path) if path is not None else None
        self._recovered = recovered
        self._bind(project.graph)
        self.undo_stack.clear()
        self.undo_stack.setClean()
        self._analysis = analyze(project.graph)
        self.projectReplaced.emit()
        self.trainingChanged.emit()
        self.analysisChanged.emit()
        self.pathChanged.emit()
        self.dirtyChanged.emit(self.is_dirty)

    def set_training(self, settings: TrainingSettings) -> None:
        """Replace the project's training settings (called by the undoable SetTraining command)."""
        settings.check()
        self._project.training = settings
        self.trainingChanged.emit()

    def mark_saved(self, path: Path) -> None:
        self._path = Path(path)
        self._recovered = False
        self.undo_stack.setClean()
        self.pathChanged.emit()
        self.dirtyChanged.emit(False)

    # ----- internals -----------------------------------------------------------------

    def _bind(self, graph: Graph) -> None:
        for name in GraphEvents.NAMES:
            if name != "changed":
                graph.events.emitter(name).connect(self.graph_events.emitter(name))
        graph.events.changed.connect(self._on_graph_changed)

    def _unbind(self, graph: Graph) -> None:
        for name in GraphEvents.NAMES:
            if name != "changed":
                graph.events.emitter(name).disconnect(self.graph_events.emitter(name))
        graph.events.changed.disconnect(self._on_graph_changed)

    def _on_graph_changed(self, event: GraphEvent) -> None:
        reasons = set(event.data.get("reasons", ()))
        layout_only = bool(reasons) and reasons <= _LAYOUT_ONLY
        if not layout_only:
            self._analysis = analyze(self.graph)
        self.graph_events.changed(event)
        if not layout_only:
            self.analysisChanged.emit()

    def _on_clean_changed(self, clean: bool) -> None:
        if shiboken6.isValid(self.undo_stack):  # not while the stack is being destroyed
            self.dirtyChanged.emit(self.is_dirty)
