"""Fault injection in the desktop app: nothing is lost and the app lives on.

A training process killed mid-epoch, a full disk or an unwritable folder
while saving, the app killed while it writes an autosave, an exception
raised in a slot.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMessageBox

from studio.project import load_project
from studio.training.run_metrics import scan_runs
from widgets import edits
from widgets.errors import ExceptionHook, start_error_log
from widgets.recovery import recovery_path, remove_stale_temporaries

REPO = Path(__file__).resolve().parents[1]
LENET = REPO / "assets" / "examples" / "lenet_digits.layers.json"
RUN_TIMEOUT_MS = 120_000


def open_copy(window, folder: Path) -> Path:
    """Open a saved copy of the LeNet example."""
    path = folder / "model.layers.json"
    shutil.copy(LENET, path)
    assert window.files.open_path(path, ask=False, offer_recovery=False)
    return path


# ----- the training process is killed -----------------------------------------------------


@pytest.mark.slow
def test_a_killed_training_process_is_reported_and_its_run_folder_kept(main_window, qtbot, tmp_path):
    panel = main_window.training
    panel.runs_root = tmp_path / "runs"
    panel.interactive = False
    open_copy(main_window, tmp_path)
    panel.edit_setting("epochs", 500)
    main_window.show_training()
    qtbot.waitUntil(lambda: panel.plots is not None, timeout=5000)
    panel.detector.kill()
    panel.form.set_framework("pytorch")
    assert panel.start()
    run = panel.driver.run
    run_dir = Path(run.run_dir)
    checkpoint = run_dir / "checkpoint.pt"
    record = panel.records[-1]
    qtbot.waitUntil(
        lambda: checkpoint.exists() and len(record.frameworks["pytorch"].batches) > 0, timeout=RUN_TIMEOUT_MS
    )
    os.kill(run.pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: not panel.is_running, timeout=RUN_TIMEOUT_MS)

    assert record.status == "failed"
    text = panel.error.text()
    assert panel.error.isVisible() and "Traceback" not in text
    assert "the training process ended unexpectedly (exit code -9, SIGKILL)" in text
    assert str(run_dir / "metrics.jsonl") in text and str(checkpoint) in text
    assert "Training failed" in main_window.statusBar().currentMessage()
    assert panel.train_button.isEnabled() and not panel.stop_button.isEnabled()
    assert main_window.isVisible()
    # The run folder keeps the metrics and the checkpoint; after a restart it is listed as failed.
    again = scan_runs(tmp_path / "runs")
    assert len(again) == 1 and again[0].frameworks["pytorch"].status == "failed"
    assert again[0].frameworks["pytorch"].last_epoch()["epoch"] >= 1

    # Resume Training (the run list's menu) goes on from the checkpoint, in the same folder.
    import torch

    saved = json.loads(torch.load(checkpoint, weights_only=True)["meta"])["progress"]["epoch"]
    assert saved >= 1 and panel.can_resume(record)
    panel.edit_setting("epochs", saved + 1)
    assert panel.resume(record)
    qtbot.waitUntil(lambda: not panel.is_running, timeout=RUN_TIMEOUT_MS)
    resumed = panel.records[-1]
    assert resumed.status == "finished", resumed.errors()
    assert resumed.label == f"{record.label} (resumed)"
    metrics = resumed.frameworks["pytorch"]
    assert metrics.run_dir == str(run_dir) and metrics.initial_epoch == saved
    assert metrics.last_epoch()["epoch"] == saved + 1
    assert not panel.can_resume(resumed)  # it finished


# ----- saving fails -----------------------------------------------------------------------


def no_space(*args, **kwargs):
    raise OSError(28, "No space left on device")


def no_permission(*args, **kwargs):
    raise PermissionError(13, "Permission denied")


@pytest.mark.parametrize(
    ("target", "failure", "expected"),
    [
        ("os.fsync", no_space, "No space left on device"),  # the disk fills while the file is written
        ("tempfile.mkstemp", no_permission, "Permission denied"),  # the folder became read-only
    ],
)
def test_a_failed_save_keeps_the_old_file_and_the_open_changes(
    main_window, tmp_path, monkeypatch, dialogs, target, failure, expected
):
    path = open_copy(main_window, tmp_path)
    old = path.read_bytes()
    document = main_window.document
    edits.rename(document, document.graph.find("dense").id, "unsaved_head")
    module, name = target.split(".")
    monkeypatch.setattr(f"{module}.{name}", failure)

    assert not main_window.files.save()
    monkeypatch.undo()

    kind, title, text = dialogs.calls[-1]
    assert (kind, title) == ("critical", "Cannot save the project")
    assert text == f"{path}: {expected}\n\nYour changes are still open; try another place."
    assert path.read_bytes() == old
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
    assert document.is_dirty and document.graph.find("unsaved_head") is not None
    assert main_window.files.save()  # the disk has room again
    assert load_project(path).graph.find("unsaved_head") is not None


# ----- the app is killed while it writes an autosave -----------------------------------------

CRASHING_SESSION = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path

    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    sys.path.insert(0, sys.argv[1])
    import widgets  # noqa: F401 - before any Qt import
    from PySide6.QtCore import QSettings
    from widgets import edits
    from widgets.app import create_application
    from widgets.main_window import MainWindow

    project, settings, recovery = Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
    app = create_application()
    window = MainWindow(
        settings=QSettings(settings, QSettings.Format.IniFormat),
        recovery_dir=recovery,
        examples_dir=recovery / "no-examples",
        restore_layout=False,
    )
    window.files.open_path(project, ask=False, offer_recovery=False)
    document = window.document
    edits.rename(document, document.graph.find("dense").id, "autosaved_head")
    window.files.autosaver.save_now()  # a whole autosave
    edits.rename(document, document.graph.find("flatten").id, "never_autosaved")

    def die_half_way(descriptor):  # the next autosave: half of it is on disk when the app dies
        os.ftruncate(descriptor, os.fstat(descriptor).st_size // 2)
        print("dying", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    os.fsync = die_half_way
    window.files.autosaver.save_now()
    print("survived", flush=True)
    """
)


def test_the_app_killed_during_an_autosave_recovers_the_last_autosave_at_the_next_start(
    qtbot, tmp_path, dialogs
):
    from widgets.main_window import MainWindow

    project = tmp_path / "model.layers.json"
    shutil.copy(LENET, project)
    settings_file, recovery = tmp_path / "settings.ini", tmp_path / "recovery"
    script = tmp_path / "crashing_session.py"
    script.write_text(CRASHING_SESSION, encoding="utf-8")
    crashed = subprocess.run(
        [sys.executable, str(script), str(REPO), str(project), str(settings_file), str(recovery)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert crashed.stdout.split() == ["dying"]
    assert load_project(project).graph.find("autosaved_head") is None  # the project was never saved
    leftovers = list(recovery.glob(".*.tmp"))
    assert len(leftovers) == 1  # the half-written autosave

    # The next start: it reopens the last project and offers the last whole autosave.
    dialogs.answer = QMessageBox.StandardButton.Yes
    window = MainWindow(
        settings=QSettings(str(settings_file), QSettings.Format.IniFormat),
        recovery_dir=recovery,
        examples_dir=tmp_path / "no-examples",
        restore_layout=False,
    )
    qtbot.addWidget(window, before_close_func=lambda w: w.document.mark_saved(project))
    assert window.open_initial()
    assert "Recover unsaved changes?" in dialogs.titles("question")
    graph = window.document.graph
    assert graph.find("autosaved_head") is not None and graph.find("never_autosaved") is None
    assert window.document.path == project and window.document.is_dirty
    window.files.autosaver.stop()

    # A later start clears the half-written file once it is clearly stale.
    remove_stale_temporaries(recovery, now=time.time() + 3600)
    assert not list(recovery.glob(".*.tmp"))
    assert recovery_path(recovery, project).exists()


# ----- an exception in a slot ---------------------------------------------------------------


def test_an_exception_in_a_slot_is_shown_logged_and_the_app_lives_on(
    main_window, qtbot, tmp_path, monkeypatch, capsys
):
    open_copy(main_window, tmp_path)
    log_path = tmp_path / "logs" / "layer-studio.log"
    handler = start_error_log(log_path)
    hook = ExceptionHook(main_window, log_path=log_path).install()
    try:

        def broken_layout(*args, **kwargs):
            raise RuntimeError("the layout exploded")

        monkeypatch.setattr("widgets.canvas_actions.fitted_layout", broken_layout)
        undo_steps = main_window.document.undo_stack.count()
        main_window.actions["arrange_lr"].trigger()  # Qt calls the slot; the error reaches the hook
    finally:
        hook.uninstall()
        logging.getLogger().removeHandler(handler)
        handler.close()

    assert hook.count == 1
    box = hook._box
    assert box is not None and box.isVisible()
    assert box.windowTitle() == "Unexpected error"
    assert box.informativeText() == (
        f"RuntimeError: the layout exploded\n\nThe details are also in {log_path}."
    )
    assert "Traceback" in box.detailedText() and "broken_layout" in box.detailedText()
    logged = log_path.read_text(encoding="utf-8")
    assert "ERROR layer_studio: unexpected error" in logged and "RuntimeError: the layout exploded" in logged
    assert "RuntimeError: the layout exploded" in capsys.readouterr().err
    box.close()

    # The app goes on: the failed action changed nothing, and the next one works.
    assert main_window.document.undo_stack.count() == undo_steps
    monkeypatch.undo()
    main_window.actions["arrange_tb"].trigger()
    assert main_window.document.undo_stack.count() == undo_steps + 1
    assert main_window.isVisible()


# ----- hostile files opened in the window (issue 17) -------------------------------------------


def test_opening_a_fifo_a_device_or_a_huge_port_says_why_and_keeps_the_document(
    main_window, tmp_path, dialogs
):
    import json
    import os

    path = open_copy(main_window, tmp_path)
    fifo = tmp_path / "pipe.layers.json"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.layers.json"
    zero.symlink_to("/dev/zero")
    document = json.loads(LENET.read_text())
    document["nodes"].append({"id": "cat", "kind": "Concatenate", "name": "cat", "params": {}})
    document["edges"] += [{"from": "n7", "to": "cat", "port": 0}, {"from": "n9", "to": "cat", "port": 10**15}]
    port = tmp_path / "port.layers.json"
    port.write_text(json.dumps(document))

    expected = [
        (fifo, "cannot be read (is a FIFO (named pipe), not a regular file)"),
        (zero, "cannot be read (is a character device, not a regular file)"),
        (port, "Concatenate 'cat' takes at most 1024 inputs"),
    ]
    for hostile, reason in expected:
        assert not main_window.files.open_path(hostile, ask=False, offer_recovery=False)
        kind, title, text = dialogs.calls[-1]
        assert (kind, title) == ("critical", "Cannot open the project")
        assert text.startswith(str(hostile)) and reason in text
        assert main_window.document.path == path  # the open document stays
