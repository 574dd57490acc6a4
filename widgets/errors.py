"""A global exception hook: log the error, show it, and keep the app running."""

from __future__ import annotations

import logging
import logging.handlers
import sys
import traceback
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import QStandardPaths
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

log = logging.getLogger("layer_studio")

LOG_BYTES, LOG_BACKUPS = 1 << 20, 2


def default_log_path() -> Path:
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppLocalDataLocation)
    return Path(base or Path.home() / ".layer-studio") / "layer-studio.log"


def start_error_log(path: Path) -> logging.Handler | None:
    """Append every warning and error logged in the app to ``path`` (rotated at 1 MB); None if the
    file cannot be opened."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
        )
    except OSError as error:
        log.warning("cannot write the log file %s: %s", path, error)
        return None
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler


class ExceptionHook:
    """Installed as ``sys.excepthook``; Qt calls it for errors raised in slots and event handlers."""

    def __init__(
        self, parent: QWidget | None = None, show_dialog: bool = True, log_path: Path | None = None
    ) -> None:
        self.parent = parent
        self.show_dialog = show_dialog
        self.log_path = log_path
        self.previous = sys.excepthook
        self._box: QMessageBox | None = None
        self.count = 0

    def install(self) -> ExceptionHook:
        sys.excepthook = self
        return self

    def uninstall(self) -> None:
        if sys.excepthook is self:
            sys.excepthook = self.previous

    def __call__(self, kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            self.previous(kind, error, tb)
            return
        self.count += 1
        details = "".join(traceback.format_exception(kind, error, tb))
        log.error("unexpected error\n%s", details)
        print(details, file=sys.stderr)
        if self.show_dialog and QApplication.instance() is not None:
            self._show(f"{kind.__name__}: {error}", details)

    def _show(self, summary: str, details: str) -> None:
        if self._box is not None and self._box.isVisible():
            return  # one dialog at a time; the log has the rest
        box = QMessageBox(self.parent)
        box.setIcon(QMessageBox.Icon.Critical)
        box.setWindowTitle("Unexpected error")
        box.setText("Something went wrong. Your work is still open; saving it now is a good idea.")
        if self.log_path is not None:
            summary += f"\n\nThe details are also in {self.log_path}."
        box.setInformativeText(summary)
        box.setDetailedText(details)
        box.setStandardButtons(QMessageBox.StandardButton.Ok)
        box.setModal(False)
        box.show()
        self._box = box
