"""Shared test configuration."""

# ----- Qt (GUI tests: tests/test_gui_*.py) ---------------------------------------------

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402


class DialogRecorder:
    """Stands in for QMessageBox's static functions: records each call, returns ``answer``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.answer = None  # None: the dialog's default button

    def patch(self, monkeypatch) -> None:
        from PySide6.QtWidgets import QMessageBox

        for name in ("question", "warning", "critical", "information"):
            monkeypatch.setattr(QMessageBox, name, self._fake(name))
        monkeypatch.setattr(QMessageBox, "about", lambda *args: self.calls.append(("about", "", "")))

    def _fake(self, kind: str):
        def show(parent, title, text, buttons=None, default=None):
            from PySide6.QtWidgets import QMessageBox

            self.calls.append((kind, title, text))
            if self.answer is not None:
                return self.answer
            return default if default is not None else QMessageBox.StandardButton.Ok

        return show

    def titles(self, kind: str | None = None) -> list[str]:
        return [title for call_kind, title, _ in self.calls if kind in (None, call_kind)]


@pytest.fixture
def dialogs(monkeypatch) -> DialogRecorder:
    """No modal message box can block a GUI test: they are recorded instead."""
    recorder = DialogRecorder()
    recorder.patch(monkeypatch)
    return recorder


@pytest.fixture
def qt_settings(tmp_path):
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def main_window(qtbot, tmp_path, qt_settings, dialogs):
    """A shown main window with private settings, recovery folder and no examples."""
    from widgets.main_window import MainWindow

    window = MainWindow(
        settings=qt_settings,
        recovery_dir=tmp_path / "recovery",
        examples_dir=tmp_path / "no-examples",
        restore_layout=False,
    )

    def forget_changes(widget) -> None:  # pytest-qt closes the window: no unsaved-changes prompt
        widget.files.autosaver.stop()
        widget.document.mark_saved(widget.document.path or tmp_path / "closing.layers.json")

    qtbot.addWidget(window, before_close_func=forget_changes)
    window.show()
    qtbot.waitExposed(window)
    return window
