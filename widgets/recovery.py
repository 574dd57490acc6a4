"""Autosave to a recovery file, so that a crash loses at most a few seconds of work.

The recovery file lives in the app-data folder, named after the project's
path (or ``untitled``). It is written every 30 s and shortly after each edit
while the document has unsaved changes, and deleted once they are saved or
discarded.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import shiboken6
from PySide6.QtCore import QObject, QStandardPaths, QTimer

from studio.project import dumps_project, write_text_atomic
from widgets.document import Document

log = logging.getLogger(__name__)

PERIOD_MS = 30_000
AFTER_EDIT_MS = 3_000
# A temporary file older than this is the half-written autosave of a session that was killed.
STALE_TEMPORARY_S = 60


def default_recovery_dir() -> Path:
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(base or Path.home() / ".layer-studio") / "recovery"


def recovery_path(directory: Path, project_path: Path | None) -> Path:
    if project_path is None:
        return directory / "untitled.layers.json"
    digest = hashlib.sha1(str(Path(project_path).resolve()).encode("utf-8")).hexdigest()[:12]
    stem = Path(project_path).name.removesuffix(".layers.json")
    return directory / f"{stem}-{digest}.layers.json"


def newer_recovery(directory: Path, project_path: Path | None) -> Path | None:
    """The recovery file for ``project_path`` if it is newer than the saved file."""
    candidate = recovery_path(directory, project_path)
    if not candidate.exists():
        return None
    if project_path is not None and Path(project_path).exists():
        if candidate.stat().st_mtime <= Path(project_path).stat().st_mtime:
            return None
    return candidate


def remove_stale_temporaries(directory: Path, now: float | None = None) -> None:
    """Delete the temporary files of autosaves cut short by a crash (the recovery files are whole:
    each is replaced in one step, see write_text_atomic)."""
    now = time.time() if now is None else now
    for temp in Path(directory).glob(".*.layers.json.*.tmp"):
        try:
            if now - temp.stat().st_mtime > STALE_TEMPORARY_S:
                temp.unlink()
        except OSError as error:
            log.warning("could not remove the temporary file %s: %s", temp, error)


class Autosaver(QObject):
    def __init__(self, document: Document, directory: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.directory = Path(directory)
        self._written: Path | None = None
        self.periodic = QTimer(self, interval=PERIOD_MS)
        self.periodic.timeout.connect(self.save_now)
        self.after_edit = QTimer(self, singleShot=True, interval=AFTER_EDIT_MS)
        self.after_edit.timeout.connect(self.save_now)
        document.undo_stack.indexChanged.connect(self._on_edit)
        document.dirtyChanged.connect(self._on_dirty_changed)
        document.pathChanged.connect(self._on_path_changed)
        self.periodic.start()
        remove_stale_temporaries(self.directory)

    @property
    def path(self) -> Path:
        return recovery_path(self.directory, self.document.path)

    def _on_edit(self) -> None:
        if shiboken6.isValid(self.document.undo_stack) and self.document.is_dirty:
            self.after_edit.start()

    def _on_dirty_changed(self, dirty: bool) -> None:
        if not dirty:
            self.discard()

    def _on_path_changed(self) -> None:
        if self._written is not None and self._written != self.path:
            self._remove(self._written)

    def save_now(self) -> Path | None:
        """Write the recovery file if there is anything unsaved."""
        self.after_edit.stop()
        if not self.document.is_dirty:
            return None
        target = self.path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(target, dumps_project(self.document.project))
        except OSError as error:
            log.warning("could not write the recovery file %s: %s", target, error)
            return None
        self._written = target
        return target

    def discard(self) -> None:
        """Delete the recovery file (the changes were saved or thrown away)."""
        self.after_edit.stop()
        self._remove(self.path)
        if self._written is not None:
            self._remove(self._written)

    def stop(self) -> None:
        self.periodic.stop()
        self.after_edit.stop()

    def _remove(self, path: Path) -> None:
        try:
            path.unlink(missing_ok=True)
        except OSError as error:
            log.warning("could not remove the recovery file %s: %s", path, error)
        if path == self._written:
            self._written = None
