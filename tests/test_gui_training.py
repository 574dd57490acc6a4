"""The training dashboard, the Verify button and model import, with real child processes.

Real runs are tiny (one epoch of the iris MLP, or a run stopped after its
first batches); the rest is driven by FakeRun through the same polling and
buffer code. Every test ends with nothing running (see conftest's leak check).
"""

from __future__ import annotations

import csv
import json
import math
import os
import textwrap
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QFileDialog

from studio.project import load_project
from studio.training.run_metrics import FrameworkMetrics, RunRecord, load_run_folder, scan_runs
from widgets.fake_run import FakeRun
from widgets.model_import import PythonModelDialog, module_candidates, parse_shape

EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"
LENET = EXAMPLES / "lenet_digits.layers.json"
IRIS = EXAMPLES / "mlp_iris.layers.json"
RUN_TIMEOUT_MS = 120_000


@pytest.fixture
def window(main_window, tmp_path):
    """The main window with runs kept under tmp_path and the training tab shown."""
    main_window.training.runs_root = tmp_path / "runs"
    main_window.training.interactive = False
    return main_window


def open_example(window, path: Path, **training) -> None:
    assert window.files.open_path(path, ask=False, offer_recovery=False)
    for name, value in training.items():
        window.training.edit_setting(name, value)


def show_panel(window, qtbot):
    window.show_training()
    panel = window.training
    qtbot.waitUntil(lambda: panel.plots is not None, timeout=5000)
    panel.detector.kill()  # the probe imports both frameworks: not needed here
    return panel


def wait_ended(qtbot, panel, timeout=RUN_TIMEOUT_MS) -> None:
    qtbot.waitUntil(lambda: not panel.is_running, timeout=timeout)


# ----- real runs -----------------------------------------------------------------------


def test_one_epoch_updates_the_plots_and_the_run_list(window, qtbot, tmp_path):
    open_example(window, IRIS, epochs=1)
    panel = show_panel(window, qtbot)
    panel.form.set_framework("pytorch")
    assert panel.train_button.isEnabled() and not panel.stop_button.isEnabled()
    window.actions["train"].trigger()
    assert panel.is_running and panel.stop_button.isEnabled() and not panel.train_button.isEnabled()
    wait_ended(qtbot, panel)
    record = panel.records[-1]
    assert record.status == "finished", record.errors()
    assert panel.plots.curve_points(record.number, "pytorch", "raw") > 0
    assert panel.plots.curve_points(record.number, "pytorch", "smooth") > 0
    assert panel.plots.curve_points(record.number, "pytorch", "val") == 1
    assert panel.plots.curve_points(record.number, "pytorch", "val_acc") == 1
    assert panel.train_button.isEnabled() and not panel.stop_button.isEnabled()
    assert panel.progress.value() == 1000
    assert "PyTorch finished after 1 epochs" in panel.status.text()
    assert "finished" in window.statusBar().currentMessage()
    assert panel.runs.topLevelItem(0).checkState(0) == Qt.CheckState.Checked
    # the run's files can be exported, and the folder lists it after a restart
    assert panel.export_weights("pytorch", str(tmp_path / "w.pt")).stat().st_size > 0
    assert panel.export_onnx(str(tmp_path / "m.onnx")).read_bytes()[:2]
    again = scan_runs(tmp_path / "runs")
    assert len(again) == 1 and again[0].frameworks["pytorch"].status == "finished"


@pytest.mark.slow
def test_stop_ends_the_run_and_resets_the_buttons(window, qtbot):
    open_example(window, LENET, epochs=200)
    panel = show_panel(window, qtbot)
    panel.form.set_framework("pytorch")
    assert panel.start()
    record = panel.records[-1]
    qtbot.waitUntil(lambda: len(record.frameworks["pytorch"].batches) > 0, timeout=RUN_TIMEOUT_MS)
    started = time.perf_counter()
    panel.stop_button.click()
    assert time.perf_counter() - started < 0.2, "Stop must not wait for the process"
    assert not panel.stop_button.isEnabled()
    wait_ended(qtbot, panel, 20_000)
    assert record.status == "stopped"
    assert panel.train_button.isEnabled() and not panel.stop_button.isEnabled()
    assert "stopped" in panel.status.text()


def test_a_failed_run_is_explained_in_the_panel(window, qtbot, tmp_path):
    # 4 features cannot feed an 8x8x1 image input. A table file, not a built-in dataset: the
    # GUI's preflight checks only those, so the failure comes from the training process.
    table = tmp_path / "four.csv"
    rows = [f"{i % 5},{i % 3},{i % 7},{i % 2},{i % 3}" for i in range(30)]
    table.write_text("a,b,c,d,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    open_example(window, LENET, dataset=str(table))
    panel = show_panel(window, qtbot)
    panel.form.set_framework("pytorch")
    assert panel.start()
    wait_ended(qtbot, panel)
    assert panel.records[-1].status == "failed"
    assert panel.error.isVisible()
    assert "does not fit the model" in panel.error.text()
    assert "Traceback" not in panel.error.text()
    assert "Training failed" in window.statusBar().currentMessage()
    assert window.isVisible() and panel.train_button.isEnabled()


@pytest.mark.slow
def test_both_frameworks_side_by_side_draw_two_curves(window, qtbot, tmp_path):
    open_example(window, IRIS, epochs=1)
    panel = show_panel(window, qtbot)
    panel.form.set_framework("both")
    assert panel.start()
    wait_ended(qtbot, panel)
    record = panel.records[-1]
    assert record.kind == "both" and record.status == "finished", record.errors()
    for framework in ("keras", "pytorch"):
        assert panel.plots.curve_points(record.number, framework, "smooth") > 0
    colors = {
        panel.plots.curves[(record.number, fw)].smooth.opts["pen"].color().name()
        for fw in ("keras", "pytorch")
    }
    assert len(colors) == 2
    assert "Keras vs PyTorch" in panel.runs.topLevelItem(0).text(1)
    assert "Largest batch-loss gap Keras vs PyTorch" in panel.status.text()
    both = load_run_folder(Path(record.folder), 1)
    assert both is not None and set(both.frameworks) == {"keras", "pytorch"}
    # side by side, neither framework starves the other: each ran on the same half of the cores
    half = max(1, (os.cpu_count() or 1) // 2)
    for framework in ("keras", "pytorch"):
        config = json.loads((Path(record.folder) / framework / "config.json").read_text(encoding="utf-8"))
        assert config["threads"] == half


@pytest.mark.slow
def test_closing_the_window_stops_a_run(window, qtbot, dialogs):
    open_example(window, LENET, epochs=200)
    panel = show_panel(window, qtbot)
    panel.form.set_framework("pytorch")
    assert panel.start()
    qtbot.waitUntil(
        lambda: panel.records[-1].frameworks["pytorch"].started is not None, timeout=RUN_TIMEOUT_MS
    )
    window.document.mark_saved(window.document.path)
    assert window.close()
    assert "Training is running" in dialogs.titles("question")
    assert not panel.is_running


# ----- the same code path, fed by a fake source ------------------------------------------


def test_fake_run_fills_buffers_log_scale_and_exports(window, qtbot, tmp_path):
    panel = show_panel(window, qtbot)
    record = RunRecord.create(1, "fake", "keras")
    assert panel.start_run(FakeRun("keras", epochs=2, batches_per_epoch=50, rate=2000), record)
    wait_ended(qtbot, panel, 10_000)
    assert record.status == "finished"
    assert len(record.frameworks["keras"].batches) == 100
    assert panel.plots.curve_points(1, "keras", "raw") == 100
    assert panel.plots.curve_points(1, "keras", "train_acc") == 2

    panel.log_scale.setChecked(True)
    assert panel.plots.log_scale and panel.plots.loss_item.ctrl.logYCheck.isChecked()
    panel.log_scale.setChecked(False)
    assert not panel.plots.loss_item.ctrl.logYCheck.isChecked()

    target = tmp_path / "metrics.csv"
    assert panel.export_csv(str(target)) == 102
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    assert len(rows) == 102 and rows[0]["row"] == "batch" and rows[-1]["row"] == "epoch"
    assert float(rows[0]["batch_loss"]) > 0 and rows[-1]["val_accuracy"]
    png = tmp_path / "plots.png"
    assert panel.export_png(str(png)) and png.read_bytes()[:4] == b"\x89PNG"


def test_unchecking_a_run_removes_its_curves_and_runs_overlay(window, qtbot):
    panel = show_panel(window, qtbot)
    for number in (1, 2):
        assert panel.start_run(
            FakeRun("pytorch", epochs=1, batches_per_epoch=20, rate=5000),
            RunRecord.create(number, f"run {number}", "pytorch"),
        )
        wait_ended(qtbot, panel, 10_000)
    assert set(panel.plots.curves) == {(2, "pytorch")}  # a new run shows alone
    first = panel.records[0]
    panel.set_record_visible(first, True)
    assert set(panel.plots.curves) == {(1, "pytorch"), (2, "pytorch")}
    pens = {panel.plots.curves[key].smooth.opts["pen"].color().name() for key in panel.plots.curves}
    assert len(pens) == 2  # overlaid runs of one framework get different hues
    item = panel.runs.item_for(first)
    item.setCheckState(0, Qt.CheckState.Unchecked)
    assert set(panel.plots.curves) == {(2, "pytorch")}


def test_a_nan_loss_leaves_a_gap_not_a_nan_smoothed_curve():
    metrics = FrameworkMetrics("keras")
    metrics.add({"type": "started", "batches_per_epoch": 4, "config": {"epochs": 1}})
    for step, loss in enumerate([1.0, math.nan, 0.5, 0.25], start=1):
        metrics.add(
            {"type": "batch", "epoch": 1, "step": step, "global_step": step, "loss": loss, "samples_per_s": 1}
        )
    smoothed = metrics.batches.column(FrameworkMetrics.BEMA)
    assert all(math.isfinite(value) for value in smoothed)
    assert math.isnan(metrics.batches.column(FrameworkMetrics.BLOSS)[1])
    assert metrics.progress() == 1.0


def test_a_fake_failure_is_shown(window, qtbot):
    panel = show_panel(window, qtbot)
    record = RunRecord.create(1, "fake", "keras")
    panel.start_run(FakeRun("keras", fail_with="the dataset cannot be loaded: no such file"), record)
    wait_ended(qtbot, panel, 10_000)
    assert "Keras: the dataset cannot be loaded" in panel.error.text()


# ----- settings ------------------------------------------------------------------------


def test_settings_come_from_the_project_and_edits_are_undoable(window, qtbot):
    open_example(window, IRIS)
    panel = show_panel(window, qtbot)
    form = panel.form
    assert form.epochs.value() == 30 and form.batch_size.value() == 16
    assert form.dataset.currentData() == "iris"
    assert form.learning_rate.value() == pytest.approx(0.01)
    form.epochs.setValue(7)
    assert window.document.project.training.epochs == 7
    qtbot.waitUntil(lambda: "default=7" in window.code_view.text("keras"), timeout=2000)
    assert window.document.undo_stack.undoText() == "Set training epochs to 7"
    window.document.undo_stack.undo()
    assert window.document.project.training.epochs == 30 and form.epochs.value() == 30
    form.learning_rate.stepBy(1)
    assert window.document.project.training.learning_rate == pytest.approx(0.02)


def test_the_dataset_picker_lists_builtin_and_keras_sets_and_files(window, qtbot, monkeypatch, tmp_path):
    panel = show_panel(window, qtbot)
    combo = panel.form.dataset
    names = [combo.itemData(i) for i in range(combo.count())]
    assert {"digits", "iris", "mnist", "cifar10"} <= set(names)
    data = tmp_path / "table.csv"
    data.write_text("a,b,label\n1,2,x\n", encoding="utf-8")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *args, **kwargs: (str(data), ""))
    index = next(i for i, name in enumerate(names) if name == "\0file")
    panel.form._on_dataset_activated(index)
    assert window.document.project.training.dataset == str(data)
    assert combo.currentData() == str(data)


def test_devices_are_detected_without_blocking(window, qtbot):
    panel = window.training
    combo = panel.form.device
    assert "detecting" in combo.currentText() and combo.device() == "auto"
    started = time.perf_counter()
    panel.detector.start()
    assert time.perf_counter() - started < 0.5
    panel.detector.kill()
    combo.set_devices(
        [
            {"id": "cpu", "name": "CPU", "framework": "both"},
            {"id": "cuda:0", "name": "H100", "framework": "pytorch"},
        ]
    )
    assert [combo.itemData(i) for i in range(combo.count())] == ["auto", "cpu", "cuda:0"]
    assert combo.itemText(0) == "Auto (cuda)"


# ----- verify and import -----------------------------------------------------------------


@pytest.mark.slow
def test_verify_button_proves_lenet_equivalent(window, qtbot):
    open_example(window, LENET)
    view = window.code_view
    qtbot.waitUntil(view.verify_button.isEnabled, timeout=2000)  # once the code is generated
    view.verify_button.click()
    assert view.verify_panel.isVisible() and not view.verify_button.isEnabled()
    qtbot.waitUntil(lambda: view.verifier.result is not None, timeout=120_000)
    result = view.verifier.result
    assert result.ok, result.error or result.report
    assert (
        view.verify_panel.title.text().count("EQUIVALENT") == 1
        and "NOT" not in view.verify_panel.title.text()
    )
    details = view.verify_panel.details.text()
    assert "13,706" in details and "max abs diff" in details and "SGD step" in details
    assert "adam, 5 steps of each program's own optimizer and loss" in details  # the training check
    assert view.verify_button.isEnabled()


TINY_TORCH_MODEL = """
    from torch import nn


    class TinyNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = nn.Linear(4, 8)
            self.act = nn.ReLU()
            self.out = nn.Linear(8, 3)

        def forward(self, x):
            return self.out(self.act(self.hidden(x)))
"""


@pytest.mark.slow
def test_import_a_pytorch_model_from_the_file_menu(window, qtbot, monkeypatch, tmp_path):
    model = tmp_path / "tiny.py"
    model.write_text(textwrap.dedent(TINY_TORCH_MODEL), encoding="utf-8")
    output = tmp_path / "imported.layers.json"
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *args, **kwargs: (str(model), ""))
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: (str(output), ""))
    asked = {}

    def confirm(dialog):
        asked["entry"] = dialog.entry.text()
        asked["ok_before_consent"] = dialog.buttons.buttons()[0].isEnabled()
        dialog.shape.setText("4")
        dialog.consent.setChecked(True)
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(PythonModelDialog, "exec", confirm)
    window.importer.interactive = False
    window.actions["import_model"].trigger()
    assert asked == {"entry": "TinyNet", "ok_before_consent": False}
    qtbot.waitUntil(lambda: window.document.path == output, timeout=120_000)
    kinds = [node.kind for node in window.document.graph.nodes]
    assert kinds.count("Dense") == 2 and kinds[0] == "Input"
    assert load_project(output).graph.find(window.document.graph.nodes[1].name) is not None
    assert output.with_name("imported.weights.npz").exists()
    assert "Imported imported.layers.json" in window.statusBar().currentMessage()


def test_a_python_model_is_not_run_without_consent(window, monkeypatch, tmp_path):
    model = tmp_path / "tiny.py"
    model.write_text(textwrap.dedent(TINY_TORCH_MODEL), encoding="utf-8")
    monkeypatch.setattr(PythonModelDialog, "exec", lambda dialog: QDialog.DialogCode.Rejected)
    assert not window.importer.import_model(str(model), str(tmp_path / "out.layers.json"))
    assert not window.importer.is_running


def test_import_helpers():
    assert module_candidates(
        "class A(nn.Module):\n    pass\nclass B:\n    pass\ndef build():\n    pass\n"
    ) == ["A", "build"]
    assert parse_shape("3, 32,32") == [3, 32, 32] and parse_shape("3x") is None and parse_shape("0,2") is None


# ----- start-up ----------------------------------------------------------------------------


def test_the_training_panel_loads_its_heavy_parts_only_when_shown(window, qtbot):
    import sys

    panel = window.training
    assert panel.plots is None and not panel.detector.started
    assert window.docks["codeView"].visibleRegion().isEmpty() is False
    show_panel(window, qtbot)
    assert (
        "pyqtgraph" in sys.modules and window.findChild(type(panel.plots.loss_widget), "lossPlot") is not None
    )
    assert window.findChild(type(panel.plots.loss_widget), "accuracyPlot") is not None


def test_an_unreadable_model_file_is_explained(window, qtbot, dialogs, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    before = window.document.project
    assert window.importer.import_model(str(broken), str(tmp_path / "out.layers.json"))
    qtbot.waitUntil(lambda: not window.importer.is_running and bool(dialogs.calls), timeout=120_000)
    assert dialogs.titles("warning") == ["Cannot import the model"]
    assert "broken.onnx" in dialogs.calls[-1][2] and "Traceback" not in dialogs.calls[-1][2]
    assert window.document.project is before


@pytest.mark.slow
def test_runs_made_by_the_cli_beside_the_project_are_listed(window, qtbot, tmp_path, monkeypatch, capsys):
    from studio.cli import main

    project = tmp_path / "project" / "iris.layers.json"
    project.parent.mkdir()
    project.write_bytes(IRIS.read_bytes())
    monkeypatch.chdir(project.parent)  # `studio train` puts its run in ./runs
    assert main(["train", str(project), "--framework", "pytorch", "--epochs", "1"]) == 0
    capsys.readouterr()
    (cli_run,) = (project.parent / "runs").iterdir()

    panel = show_panel(window, qtbot)
    assert not any(record.run_folder() == str(cli_run) for record in panel.records)
    open_example(window, project)
    listed = [record for record in panel.records if record.run_folder() == str(cli_run)]
    assert len(listed) == 1 and listed[0].status == "finished" and listed[0].kind == "pytorch"
    panel.load_past_runs()  # listing again adds nothing twice
    assert sum(record.run_folder() == str(cli_run) for record in panel.records) == 1


def test_a_shape_too_long_or_too_large_is_not_a_shape():
    assert parse_shape("9" * 5000) is None  # not parsed as an integer of 5,000 digits
    assert parse_shape(",".join(["2"] * 9)) is None
    assert parse_shape("3, 2147483648") is None
    assert parse_shape("3, 2147483647") == [3, 2147483647]


def test_the_python_import_dialog_does_not_open_a_fifo(qtbot, tmp_path):
    import os

    path = tmp_path / "model.py"
    os.mkfifo(path)
    dialog = PythonModelDialog(path)  # returns at once: a FIFO is never opened
    qtbot.addWidget(dialog)
    assert dialog.entry.text() == ""


@pytest.mark.slow
def test_compare_from_the_train_menu_shows_both_frameworks_figures_and_picture(window, qtbot, tmp_path):
    open_example(window, IRIS, epochs=1)
    window.actions["compare"].trigger()
    dialog = window.compare_dialog
    assert dialog.isVisible() and dialog.repeats.value() == 1 and not dialog.parallel.isChecked()
    dialog.start_button.click()
    assert dialog.is_running and not dialog.start_button.isEnabled()
    qtbot.waitUntil(lambda: not dialog.is_running, timeout=4 * RUN_TIMEOUT_MS)
    assert dialog.data is not None, dialog.status.text()
    assert dialog.folder.parent == tmp_path / "runs" and (dialog.folder / "compare.png").is_file()
    assert "epoch" in dialog.log.toPlainText()  # progress came in while it ran
    labels = [dialog.table.verticalHeaderItem(row).text() for row in range(dialog.table.rowCount())]
    assert labels[:4] == ["Threads", "Training s / epoch", "First step (warm-up) s", "Samples / s"]
    threads = [dialog.table.item(0, column).text() for column in range(2)]
    assert threads[0] == threads[1] and "intra-op" in threads[0]  # an equal race
    for column, framework in enumerate(("keras", "pytorch")):
        samples = dialog.data[framework]["samples_per_second"]["median"]
        assert dialog.table.item(3, column).text() == f"{samples:.4g}"
    assert not dialog.picture.pixmap().isNull()
    assert "repeat(s), one after the other" in dialog.status.text()
    dialog.close()
