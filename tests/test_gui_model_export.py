"""File > Export > Model File: every deployment format in the menu, greyed out with a reason, run
off the GUI thread as `studio export --format`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from widgets.model_export import MODEL_FORMATS

EXAMPLES = Path(__file__).parent.parent / "assets" / "examples"


def _model_menu(window):
    file_menu = window.menuBar().actions()[0].menu()
    export = next(a.menu() for a in file_menu.actions() if a.menu() is not None and a.text() == "&Export")
    export.aboutToShow.emit()
    return next(a.menu() for a in export.actions() if a.menu() is not None and a.text() == "&Model File")


def test_the_menu_offers_every_format_and_says_why_one_is_greyed_out(main_window):
    from codegen.deploy import FORMATS

    menu = _model_menu(main_window)
    assert len(menu.actions()) == len(MODEL_FORMATS) == len(FORMATS)
    action = main_window.actions["export_model_onnx"]
    assert not action.isEnabled()  # the new model's Input is not connected to anything
    assert "the model has problems" in action.toolTip()
    assert main_window.exporter.export("onnx", "/nowhere/m.onnx") is False


@pytest.mark.slow  # a child process that imports torch and TensorFlow: about 40 s on a busy machine
def test_a_model_file_is_exported_off_the_gui_thread(main_window, qtbot, tmp_path):
    project = tmp_path / "iris.layers.json"
    shutil.copy(EXAMPLES / "mlp_iris.layers.json", project)
    assert main_window.files.open_path(project, ask=False)
    _model_menu(main_window)
    assert main_window.actions["export_model_pt2"].isEnabled()
    messages = []
    main_window.exporter.message.connect(messages.append)
    main_window.exporter.interactive = False
    out = tmp_path / "iris.pt2"
    with qtbot.waitSignal(main_window.exporter.finished, timeout=240_000) as finished:
        assert main_window.exporter.export("pt2", str(out))
        assert main_window.exporter.unavailable() == "an export is running"  # the GUI is not blocked
    assert finished.args == [0], messages
    assert out.is_file()
    assert "in torch.export.load it differs from the PyTorch model by at most" in messages[-1]


@pytest.mark.parametrize("fmt", sorted(MODEL_FORMATS))
def test_each_format_has_a_title_and_a_suffix(fmt):
    from codegen.deploy import FORMATS
    from widgets.model_export import SUFFIXES

    assert SUFFIXES[fmt] == FORMATS[fmt].suffix
    assert MODEL_FORMATS[fmt][0]
