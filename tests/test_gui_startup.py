"""Start-up: no deep-learning framework is imported; the screenshot command works."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "assets" / "examples" / "lenet_digits.layers.json"
HEAVY = ("torch", "tensorflow", "keras")


def run_python(code: str, tmp_path: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "HOME": str(tmp_path),
    }
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_main_window_starts_without_torch_tensorflow_or_keras(tmp_path):
    code = f"""
        import sys
        import widgets.app as app_module
        app = app_module.create_application()
        window = app_module.create_main_window()
        window.open_initial({str(EXAMPLE)!r} if {EXAMPLE.exists()!r} else None, interactive=False)
        window.show()
        app_module.process_events_for(300)  # layout, paint, the debounced code view
        window.code_view.regenerate()
        print("code:", window.code_view.text("keras").splitlines()[0] if window.code_view.text("keras") else "")
        print("heavy:", sorted(name for name in {HEAVY!r} if name in sys.modules))
        window.document.undo_stack.setClean()
    """
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "heavy: []" in result.stdout, result.stdout


@pytest.mark.skipif(not EXAMPLE.exists(), reason="the LeNet example project is not in assets/examples yet")
def test_screenshot_command_writes_a_png(tmp_path):
    shot = tmp_path / "shot.png"
    code = f"""
        import sys
        from widgets.app import run_app
        sys.exit(run_app({str(EXAMPLE)!r}, screenshot={str(shot)!r}))
    """
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_screenshot_of_an_unreadable_project_fails_cleanly(tmp_path):
    broken = tmp_path / "broken.layers.json"
    broken.write_text("[]", encoding="utf-8")
    code = f"""
        import sys
        from widgets.app import run_app
        sys.exit(run_app({str(broken)!r}, screenshot={str(tmp_path / "shot.png")!r}))
    """
    result = run_python(code, tmp_path)
    assert result.returncode == 2
    assert "not a Layer Studio project" in result.stderr
    assert not (tmp_path / "shot.png").exists()


def test_many_pyside_calls_returning_none_do_not_crash_python(tmp_path):
    """PySide6 6.12 (abi3) drops a reference to None per call on Python 3.11; widgets compensates."""
    code = """
        import widgets  # applies the fix
        from PySide6.QtCore import QObject
        holder = QObject()
        for _ in range(100_000):
            holder.setObjectName("x")  # a void method: returns None
        print("alive")
    """
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "alive" in result.stdout


def test_plots_and_the_training_engine_load_only_when_needed(tmp_path):
    """pyqtgraph, the dataset list and the training engine wait until the training tab is shown."""
    code = f"""
        import sys
        import widgets.app as app_module
        app = app_module.create_application()
        window = app_module.create_main_window(restore_layout=False)
        window.open_initial({str(EXAMPLE)!r}, interactive=False)
        window.show()
        app_module.process_events_for(300)
        lazy = ("pyqtgraph", "studio.training.child", "studio.datasets")
        print("at start-up:", sorted(name for name in lazy if name in sys.modules))
        print("probe:", window.training.detector.started)
        window.show_training()
        app_module.process_events_for(300)
        print("after showing the tab:", "pyqtgraph" in sys.modules, window.training.plots is not None)
        window.training.shutdown()
        print("heavy:", sorted(name for name in {HEAVY!r} if name in sys.modules))
    """
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "at start-up: []" in result.stdout, result.stdout
    assert "probe: False" in result.stdout
    assert "after showing the tab: True True" in result.stdout
    assert "heavy: []" in result.stdout


def test_many_signal_emits_do_not_crash_python(tmp_path):
    """Each Signal.emit() returns True without a new reference under PySide6 6.12 on Python 3.11."""
    code = """
        import widgets  # applies the fix
        from PySide6.QtCore import QObject, Signal

        class Source(QObject):
            ping = Signal(bool)

        source = Source()
        source.ping.connect(lambda value: None)
        for _ in range(100_000):
            source.ping.emit(False)
        print("alive")
    """
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "alive" in result.stdout


def test_without_a_display_the_app_explains_instead_of_aborting():
    import os
    import subprocess
    import sys

    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    }
    result = subprocess.run(
        [sys.executable, "-m", "studio", "gui"], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 2
    assert "no display" in result.stderr and "Traceback" not in result.stderr
