"""The training dashboard is per project: its runs once each, Resume when it fits, exports say why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.project import project_to_dict
from studio.training.run_metrics import RunRecord
from studio.training.rundir import CHECKPOINTS
from widgets import edits
from widgets.fake_run import FakeRun


def make_model(window, name: str) -> None:
    document = window.document
    document.project.name = name
    edits.add_node_after(document, "Flatten", (200, 0), document.graph.input_nodes[0])
    edits.add_node_after(document, "Dense", (400, 0), document.graph.find("flatten").id)


def write_run(
    root: Path, name: str, project: dict, outcome: dict, framework: str = "pytorch", checkpoint: bool = False
) -> Path:
    """A run folder as the training process leaves it: config, metrics and maybe a checkpoint."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"framework": framework, "project": project}), "utf-8")
    started = {"type": "started", "framework": framework, "time": 1.0, "run_dir": str(folder)}
    started.update(batches_per_epoch=4, initial_epoch=0, config={"epochs": 3})
    epoch = {"type": "epoch", "framework": framework, "time": 2.0, "epoch": 1, "train_loss": 1.0}
    epoch.update(train_accuracy=0.5, val_loss=1.1, val_accuracy=0.4, epoch_time=0.1)
    lines = [started, epoch, {"framework": framework, "time": 3.0, **outcome}]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines), "utf-8")
    if checkpoint:
        (folder / CHECKPOINTS[framework]).write_bytes(b"checkpoint")
    return folder


FAILED = {"type": "failed", "message": "the dataset cannot be loaded: no such file", "reason": "dataset"}
FINISHED_NO_ONNX = {
    "type": "finished",
    "summary": {"warnings": ["the ONNX export failed: UnsupportedOperatorError: aten::_native_multi_head"]},
}


@pytest.fixture
def panel(main_window, tmp_path):
    panel = main_window.training
    panel.runs_root = tmp_path / "runs"
    panel.interactive = False
    return panel


def shown(window, qtbot):
    window.show_training()
    qtbot.waitUntil(lambda: window.training.plots is not None, timeout=5000)
    window.training.detector.kill()
    return window.training


def test_the_dashboard_lists_the_open_projects_runs_only(main_window, panel, qtbot, tmp_path):
    make_model(main_window, "alpha")
    alpha = project_to_dict(main_window.document.project)
    beta = dict(alpha, name="beta")
    write_run(panel.runs_root, "alpha-pytorch-1", alpha, FAILED)
    write_run(panel.runs_root, "beta-pytorch-1", beta, FAILED)
    shown(main_window, qtbot)
    assert [record.folder for record in panel.records] == [str(panel.runs_root / "alpha-pytorch-1")]
    failed = panel.records[0]
    assert failed.status == "failed" and "no such file" in failed.errors()[0]

    main_window.document.set_project(main_window.document.project.__class__(name="beta"))
    assert [Path(record.folder).name for record in panel.records] == ["beta-pytorch-1"]


def test_a_run_that_fails_at_once_is_listed_once(main_window, panel, qtbot, tmp_path):
    make_model(main_window, "alpha")
    shown(main_window, qtbot)
    folder = tmp_path / "runs" / "alpha-keras-now"

    class FailingRun(FakeRun):
        run_dir = str(folder)

    record = RunRecord.create(panel.runs.next_number(), "alpha", "keras", None)
    write_run(panel.runs_root, folder.name, project_to_dict(main_window.document.project), FAILED, "keras")
    assert panel.start_run(FailingRun("keras", fail_with="the dataset cannot be loaded"), record)
    qtbot.waitUntil(lambda: not panel.is_running, timeout=5000)
    assert record.folder == str(folder)
    panel.load_past_runs()  # as after saving the project somewhere else
    assert [r.folder for r in panel.records].count(str(folder)) == 1


def test_resume_only_when_the_checkpoint_fits_the_model(main_window, panel, qtbot):
    make_model(main_window, "alpha")
    write_run(
        panel.runs_root,
        "alpha-pytorch-1",
        project_to_dict(main_window.document.project),
        FAILED,
        checkpoint=True,
    )
    write_run(panel.runs_root, "alpha-pytorch-2", project_to_dict(main_window.document.project), FAILED)
    shown(main_window, qtbot)
    with_checkpoint, without = panel.records
    assert panel.can_resume(with_checkpoint)
    assert panel.resume_unavailable(without) == "the run left no checkpoint"
    main_window.document.graph.move_node(main_window.document.graph.input_nodes[0], (-300, 50))
    panel.edit_setting("epochs", 9)
    assert panel.can_resume(with_checkpoint)  # moving a layer or training longer changes no weights
    dense = main_window.document.graph.find("dense").id
    edits.set_params(main_window.document, dense, {"units": 7})
    assert "the model changed since this run" in panel.resume_unavailable(with_checkpoint)
    panel._run_menu(with_checkpoint, None)
    resume = next(a for a in panel.last_menu.actions() if a.text().startswith("Resume Training"))
    assert not resume.isEnabled() and "model changed" in resume.text()


def test_unavailable_exports_say_why(main_window, panel, qtbot):
    make_model(main_window, "alpha")
    project = project_to_dict(main_window.document.project)
    write_run(panel.runs_root, "alpha-pytorch-1", project, FINISHED_NO_ONNX)
    write_run(panel.runs_root, "alpha-keras-1", project, FAILED, framework="keras")
    shown(main_window, qtbot)
    pytorch_run, keras_run = panel.records
    assert "ONNX export failed: UnsupportedOperatorError" in pytorch_run.unavailable("onnx")
    assert pytorch_run.unavailable("keras") == "this run did not train Keras"
    assert "saved no PyTorch weights" in pytorch_run.unavailable("pytorch")
    assert keras_run.unavailable("onnx").startswith("ONNX models come from PyTorch runs")
    assert keras_run.unavailable("keras") == "the run failed before it saved Keras weights"
    panel.runs.setCurrentItem(panel.runs.item_for(pytorch_run))
    export_menu = next(
        action.menu()
        for action in main_window.menuBar().actions()[0].menu().actions()
        if action.menu() is not None and action.text() == "&Export"
    )
    export_menu.aboutToShow.emit()
    onnx = main_window.actions["export_onnx"]
    assert not onnx.isEnabled() and "UnsupportedOperatorError" in onnx.text()
    assert "UnsupportedOperatorError" in onnx.toolTip()
