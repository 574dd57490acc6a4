"""New, Open, Save, Save As, recent files, recovery and the unsaved-changes prompt.

Every file error is shown in a message box and leaves the open document as it was.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Signal
from PySide6.QtWidgets import QDialog, QFileDialog, QMessageBox, QWidget

from studio.project import EXTENSION, Project, ProjectError, load_project, save_project
from widgets.document import Document
from widgets.fit_layout import fitted_layout
from widgets.recovery import Autosaver, newer_recovery
from widgets.templates import BLANK, Template, TemplateDialog, example_templates

FILE_FILTER = f"Layer Studio project (*{EXTENSION})"
RECENT_KEY = "recentFiles"
MAX_RECENT = 8


class FileController(QObject):
    recentChanged = Signal()

    def __init__(
        self,
        window: QWidget,
        document: Document,
        settings: QSettings,
        recovery_dir: Path,
        examples_dir: Path,
    ) -> None:
        super().__init__(window)
        self.window = window
        self.document = document
        self.settings = settings
        self.examples_dir = examples_dir
        self.interactive = True  # False: report errors on stderr instead of in dialogs
        self.autosaver = Autosaver(document, recovery_dir, self)

    # ----- recent files --------------------------------------------------------------

    def recent_files(self) -> list[str]:
        value = self.settings.value(RECENT_KEY, [])
        if isinstance(value, str):
            value = [value]
        return [str(item) for item in (value or [])]

    def _remember(self, path: Path) -> None:
        entry = str(Path(path).resolve())
        recent = [entry] + [item for item in self.recent_files() if item != entry]
        self.settings.setValue(RECENT_KEY, recent[:MAX_RECENT])
        self.settings.sync()  # on disk now: after a crash, the next start reopens it (and its recovery)
        self.recentChanged.emit()

    def _forget(self, path: Path) -> None:
        entry = str(Path(path).resolve())
        self.settings.setValue(RECENT_KEY, [item for item in self.recent_files() if item != entry])
        self.recentChanged.emit()

    def clear_recent(self) -> None:
        self.settings.setValue(RECENT_KEY, [])
        self.recentChanged.emit()

    # ----- new and open --------------------------------------------------------------

    def templates(self) -> list[Template]:
        return [BLANK, *example_templates(self.examples_dir)]

    def new(self) -> bool:
        """Ask for a template and start a new untitled project from it."""
        if not self.maybe_save():
            return False
        dialog = TemplateDialog(self.templates(), self.window)
        if dialog.exec() != QDialog.DialogCode.Accepted or dialog.selected() is None:
            return False
        return self.new_from(dialog.selected())

    def new_from(self, template: Template) -> bool:
        try:
            project = template.create()
        except ProjectError as error:
            self._error("Cannot open the template", str(error))
            return False
        self.fit_to_window(project)
        self.document.set_project(project, None)
        return True

    def fit_to_window(self, project: Project) -> None:
        """Lay a new project (or an example) out to fit the canvas, so that it opens whole and readable.

        A project of the user's own keeps the layout it was saved with."""
        if not project.graph.nodes:
            return
        layout = fitted_layout(project.graph, self.window.canvas_size())
        for node_id, position in layout.positions.items():
            project.graph.move_node(node_id, position)

    def open(self) -> bool:
        if not self.maybe_save():
            return False
        path, _ = QFileDialog.getOpenFileName(self.window, "Open project", str(self._folder()), FILE_FILTER)
        return bool(path) and self.open_path(Path(path), ask=False)

    def open_path(self, path: Path, ask: bool = True, offer_recovery: bool = True) -> bool:
        """Open ``path``; on an error, say why and keep the current document."""
        if ask and not self.maybe_save():
            return False
        try:
            project = load_project(path)
        except ProjectError as error:
            self._error("Cannot open the project", str(error))
            if not Path(path).exists():
                self._forget(path)
            return False
        if Path(path).resolve().parent == Path(self.examples_dir).resolve():
            self.fit_to_window(project)  # examples ship with one layout; they open fitted to this window
        if not (offer_recovery and self.recover(Path(path))):
            self.document.set_project(project, Path(path))
        self._remember(Path(path))
        return True

    def recover(self, path: Path | None) -> bool:
        """Offer the recovery file of ``path`` if it is newer; True if it was loaded."""
        candidate = newer_recovery(self.autosaver.directory, path)
        if candidate is None or not self.interactive:
            return False
        name = Path(path).name if path else "an untitled project"
        answer = QMessageBox.question(
            self.window,
            "Recover unsaved changes?",
            f"Layer Studio found unsaved changes to {name} from a session that did not end normally.\n\n"
            "Recover them?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Discard,
            QMessageBox.StandardButton.Yes,
        )
        if answer != QMessageBox.StandardButton.Yes:
            candidate.unlink(missing_ok=True)
            return False
        try:
            project = load_project(candidate)
        except ProjectError as error:
            self._error("Cannot recover the changes", str(error))
            return False
        self.document.set_project(project, path, recovered=True)
        return True

    # ----- save ----------------------------------------------------------------------

    def save(self) -> bool:
        if self.document.path is None:
            return self.save_as()
        return self.save_to(self.document.path)

    def save_as(self) -> bool:
        suggestion = self.document.path or self._folder() / f"{self.document.display_name}{EXTENSION}"
        path, _ = QFileDialog.getSaveFileName(self.window, "Save project as", str(suggestion), FILE_FILTER)
        if not path:
            return False
        if not path.endswith(EXTENSION):
            path = path.removesuffix(".json") + EXTENSION
        return self.save_to(Path(path))

    def save_to(self, path: Path) -> bool:
        project: Project = self.document.project
        if project.name in ("", "Untitled"):
            project.name = path.name.removesuffix(EXTENSION)
        try:
            save_project(project, path)
        except (OSError, ProjectError) as error:
            detail = getattr(error, "strerror", None) or str(error)
            self._error(
                "Cannot save the project",
                f"{path}: {detail}\n\nYour changes are still open; try another place.",
            )
            return False
        self.document.mark_saved(path)
        self._remember(path)
        return True

    # ----- unsaved changes -----------------------------------------------------------

    def maybe_save(self) -> bool:
        """True if the current document may be replaced or closed (saved, or changes dropped)."""
        if not self.document.is_dirty:
            return True
        answer = QMessageBox.warning(
            self.window,
            "Unsaved changes",
            f"Save the changes to {self.document.display_name} before closing it?",
            QMessageBox.StandardButton.Save
            | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Save,
        )
        if answer == QMessageBox.StandardButton.Save:
            return self.save()
        if answer == QMessageBox.StandardButton.Discard:
            self.autosaver.discard()
            return True
        return False

    # ----- helpers -------------------------------------------------------------------

    def _folder(self) -> Path:
        if self.document.path is not None:
            return self.document.path.parent
        recent = self.recent_files()
        return Path(recent[0]).parent if recent else Path.home()

    def _error(self, title: str, message: str) -> None:
        if self.interactive:
            QMessageBox.critical(self.window, title, message)
        else:
            print(f"error: {title}: {message}", file=sys.stderr)
