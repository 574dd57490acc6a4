"""The dashboard's schedule and precision settings, learning-rate plot, confusion matrix and TensorBoard."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from studio.project import project_to_dict
from studio.training.confusion import confusion_report, write_report
from tests.test_gui_dashboard import make_model, shown


def write_run(root: Path, project: dict, rates: list[float], tensorboard: bool = True) -> Path:
    """A finished PyTorch run folder with learning rates per epoch, a confusion matrix and maybe events."""
    folder = root / "alpha-pytorch-1"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"framework": "pytorch", "project": project}), "utf-8")
    started = {"type": "started", "framework": "pytorch", "time": 1.0, "run_dir": str(folder)}
    started.update(batches_per_epoch=4, initial_epoch=0, config={"epochs": len(rates)})
    lines = [started]
    for epoch, rate in enumerate(rates, start=1):
        lines.append(
            {"type": "epoch", "framework": "pytorch", "time": 2.0, "epoch": epoch, "train_loss": 1.0 / epoch}
            | {"train_accuracy": 0.5, "val_loss": 1.1, "val_accuracy": 0.4, "epoch_time": 0.1}
            | {"learning_rate": rate}
        )
    lines.append({"type": "finished", "framework": "pytorch", "time": 3.0, "summary": {}})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines), "utf-8")
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 3, 60)
    scores = rng.standard_normal((60, 3)) + np.eye(3)[targets]
    images = rng.random((60, 8, 8, 1)).astype(np.float32)
    report = confusion_report(scores, targets, "cross_entropy", True, ["cat", "dog", "bird"], images)
    report.update(framework="pytorch", weights="final", epoch=len(rates))
    write_report(folder / "confusion_matrix.json", report)
    if tensorboard:
        (folder / "tensorboard").mkdir()
    return folder


@pytest.fixture
def panel(main_window, tmp_path):
    panel = main_window.training
    panel.runs_root = tmp_path / "runs"
    panel.interactive = False
    return panel


def test_schedule_and_precision_are_project_settings_and_tensorboard_a_run_option(main_window, panel, qtbot):
    form = panel.form
    assert not form.lr_min.isEnabled() and not form.lr_gamma.isEnabled()
    form.lr_schedule.activated.emit(form.lr_schedule.findData("cosine"))
    training = main_window.document.project.training
    assert training.lr_schedule == "cosine"
    assert form.lr_min.isEnabled() and not form.lr_gamma.isEnabled()
    form.lr_min.setValue(1e-5)
    form.precision.activated.emit(form.precision.findData("bf16"))
    training = main_window.document.project.training
    assert (training.lr_min, training.precision) == (1e-5, "bf16")
    main_window.document.undo_stack.undo()  # precision
    assert main_window.document.project.training.precision == "fp32"
    assert panel.form.run_options()["tensorboard"] is False
    form.tensorboard.click()
    assert panel.form.run_options()["tensorboard"] is True


def test_the_dashboard_plots_the_learning_rate_and_shows_the_confusion_matrix(main_window, panel, qtbot):
    make_model(main_window, "alpha")
    rates = [0.01, 0.005, 0.001]
    write_run(panel.runs_root, project_to_dict(main_window.document.project), rates)
    shown(main_window, qtbot)
    record = panel.records[0]
    panel.set_record_visible(record, True)
    panel.runs.setCurrentItem(panel.runs.item_for(record))
    assert panel.plots.curve_points(record.number, "pytorch", "rate") == 3
    np.testing.assert_allclose(panel.plots.curves[(record.number, "pytorch")].rate.yData, rates)

    view = panel.confusion
    panel.tabs.setCurrentWidget(view)
    report = view.current_report()
    assert report is not None and view.heat_map.isVisibleTo(view)
    np.testing.assert_array_equal(view.heat_map.matrix, report["matrix"])
    assert view.table.rowCount() == 3 and view.table.item(1, 0).text() == "dog"
    assert "accuracy" in view.title.text() and "PyTorch" in view.title.text()
    thumbnails = view.samples.findChildren(type(view.title), "misclassifiedSample")
    assert len(thumbnails) == len(report["samples"]) > 0
    assert thumbnails[0].pixmap().width() > 8  # scaled up from 8x8
    row, column = 1, 2
    left, top, side = view.heat_map._geometry()
    assert view.heat_map.cell_at(left + (column + 0.5) * side, top + (row + 0.5) * side) == (row, column)
    assert panel.tensorboard_button.isEnabled()


def test_tensorboard_is_offered_only_for_runs_that_wrote_events(main_window, panel, qtbot):
    make_model(main_window, "alpha")
    write_run(panel.runs_root, project_to_dict(main_window.document.project), [0.01], tensorboard=False)
    shown(main_window, qtbot)
    panel.runs.setCurrentItem(panel.runs.item_for(panel.records[0]))
    assert not panel.tensorboard_button.isEnabled()
    assert "without TensorBoard" in panel.tensorboard_button.toolTip()
    assert panel.open_tensorboard() is None and not panel.launcher.is_running


@pytest.mark.slow
def test_open_in_tensorboard_serves_the_run_folder_and_stops_with_the_panel(main_window, panel, qtbot):
    make_model(main_window, "alpha")
    write_run(panel.runs_root, project_to_dict(main_window.document.project), [0.01])
    shown(main_window, qtbot)
    messages = []
    panel.message.connect(messages.append)
    url = panel.open_tensorboard(panel.records[0])
    assert url and url.startswith("http://127.0.0.1:") and url in messages[-1]

    def serving() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    qtbot.waitUntil(serving, timeout=60_000)
    process = panel.launcher.process
    panel.launcher.stop()
    assert process is not None and not panel.launcher.is_running
