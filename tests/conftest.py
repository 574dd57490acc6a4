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


# ----- GUI tests leave nothing running ----------------------------------------------------
#
# After each test in tests/test_gui_*.py (once pytest-qt has closed its widgets and
# their deferred deletions have run), fail if a QTimer or QThread started during the
# test is still running, if a Python thread it started is still alive, or if a child
# process it started has not ended (napari's dangling-timer/thread fixtures, plus
# processes: training runs, the device probe and `studio verify` are all children).

import threading  # noqa: E402
import time  # noqa: E402
import weakref  # noqa: E402

LEAK_GRACE_S = 3.0
_clock = time.perf_counter  # tests may monkeypatch time.monotonic
_sleep = time.sleep


def running_children() -> set[int]:
    """Pids of this process's children that have not ended (Linux /proc; empty elsewhere)."""
    me, found = os.getpid(), set()
    try:
        entries = [entry for entry in os.listdir("/proc") if entry.isdigit()]
    except OSError:
        return found
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == me and fields[0] != "Z":
            found.add(int(entry))
    return found


def _session_helpers() -> set[int]:
    """multiprocessing's resource tracker lives for the whole session by design."""
    try:
        from multiprocessing import resource_tracker

        pid = getattr(resource_tracker._resource_tracker, "_pid", None)
    except (ImportError, AttributeError):
        pid = None
    return {pid} if pid else set()


class _Started:
    """Records every QTimer/QThread started (weakly) by patching ``start``."""

    def __init__(self, monkeypatch, cls) -> None:
        self.refs: list[weakref.ref] = []
        original = cls.start

        def start(obj, *args, **kwargs):
            self.refs.append(weakref.ref(obj))
            return original(obj, *args, **kwargs)

        monkeypatch.setattr(cls, "start", start)

    def alive(self, still_running) -> list:
        import shiboken6

        objects = [ref() for ref in self.refs]
        return [obj for obj in objects if obj is not None and shiboken6.isValid(obj) and still_running(obj)]


@pytest.fixture(autouse=True)
def no_leaked_timers_threads_or_processes(request, monkeypatch):
    if not request.module.__name__.rpartition(".")[2].startswith("test_gui_"):
        yield
        return
    from PySide6.QtCore import QCoreApplication, QEvent, QThread, QTimer

    timers, qthreads = _Started(monkeypatch, QTimer), _Started(monkeypatch, QThread)
    threads_before = set(threading.enumerate())
    children_before = running_children()
    yield
    app = QCoreApplication.instance()
    deadline = _clock() + LEAK_GRACE_S
    while True:
        if app is not None:
            app.processEvents()
            QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        active_timers = timers.alive(lambda timer: timer.isActive())
        running_qthreads = qthreads.alive(lambda thread: thread.isRunning())
        threads = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        children = running_children() - children_before - _session_helpers()
        if not (running_qthreads or threads or children) or _clock() > deadline:
            break
        _sleep(0.05)
    problems = []
    if active_timers:
        names = ", ".join(
            f"{t.objectName() or 'QTimer'}(parent={type(t.parent()).__name__})" for t in active_timers
        )
        problems.append(f"QTimers still active: {names}")
    if running_qthreads:
        problems.append(f"QThreads still running: {running_qthreads}")
    if threads:
        problems.append(f"threads still alive: {[t.name for t in threads]}")
    if children:
        problems.append(f"child processes still running: {sorted(children)}")
    assert not problems, "the test left work running: " + "; ".join(problems)


# ----- fuzz tests (tests/test_fuzz_*.py): hypothesis profiles and cases per target --------
#
# "ci" (the default) is bounded; "deep" is for long local runs: STUDIO_FUZZ_PROFILE=deep.
# Both leave deadlines off (file loads vary in time); tests/fuzzing.py bounds each case.
# Hypothesis tests that set their own max_examples and deadline are unaffected.

from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("ci", max_examples=250, deadline=None, print_blob=True)
_hypothesis_settings.register_profile("deep", max_examples=5000, deadline=None, print_blob=True)
_hypothesis_settings.load_profile(os.environ.get("STUDIO_FUZZ_PROFILE", "ci"))


def pytest_terminal_summary(terminalreporter) -> None:
    """The number of cases tried per fuzz target; also as JSON to the file STUDIO_FUZZ_REPORT names."""
    import sys

    fuzzing = sys.modules.get("tests.fuzzing")
    if fuzzing is None or not fuzzing.CASES:
        return
    profile = os.environ.get(fuzzing.PROFILE_ENV, "ci")
    cases = dict(sorted(fuzzing.CASES.items()))
    terminalreporter.section(f"fuzz cases tried per target (profile {profile})")
    width = max(map(len, cases))
    for target, count in cases.items():
        terminalreporter.write_line(f"{target:<{width}}  {count:>7}")
    terminalreporter.write_line(f"{'total':<{width}}  {sum(cases.values()):>7}")
    report = os.environ.get(fuzzing.REPORT_ENV)
    if report:
        import json

        with open(report, "w", encoding="utf-8") as handle:
            json.dump({"profile": profile, "cases": cases, "total": sum(cases.values())}, handle, indent=2)
            handle.write("\n")
