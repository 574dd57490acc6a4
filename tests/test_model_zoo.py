"""The model zoo: names, listing without frameworks, `studio import zoo:NAME`, pretrained failures, the GUI."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from studio.interop import InteropError, ModelFileError, zoo
from studio.interop.commands import cmd_import, parse_import_args

REPO = Path(__file__).resolve().parent.parent


def test_listing_the_zoo_imports_no_framework():
    code = (
        "import sys\n"
        "from studio.interop.commands import cmd_import, parse_import_args\n"
        "assert cmd_import(parse_import_args(['zoo:'])) == 0\n"
        "heavy = {'torch', 'tensorflow', 'keras', 'torchvision', 'timm', 'keras_hub'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for name in ("torchvision/resnet18", "keras/ResNet50", "keras-hub/resnet_18", "timm/resnet18"):
        library = name.partition("/")[0]
        if zoo.installed(library):
            assert any(line.startswith(f"zoo:{name}  ") for line in lines), name
        else:
            assert any(line.startswith(f"# {library}: not installed") for line in lines), name
    assert "zoo:keras/NASNetLarge  331,331,3" in lines
    if zoo.installed("torchvision"):
        assert "zoo:torchvision/inception_v3  3,299,299" in lines


@pytest.mark.slow
def test_every_keras_application_and_torchvision_classifier_is_in_the_zoo():
    keras = pytest.importorskip("keras")
    applications = {name for name in dir(keras.applications) if name[0].isupper()}
    assert applications == {model.builder for model in zoo.ZOO if model.library == "keras"}
    from tests.torchvision_shim import import_torchvision

    models = import_torchvision().models
    classifiers = set(models.list_models(module=models))
    assert classifiers == {model.builder for model in zoo.ZOO if model.library == "torchvision"}


def test_unknown_names_say_what_is_near(capsys):
    with pytest.raises(InteropError, match="did you mean torchvision/resnet18"):
        zoo.find_model("zoo:resnet1")
    with pytest.raises(InteropError, match="`studio import zoo:` lists them"):
        zoo.find_model("zoo:nothing/like-this")
    if zoo.installed("timm"):
        assert zoo.find_model("zoo:timm/any_name_timm_checks").framework == "pytorch"
    with pytest.raises(InteropError, match="no 'timm/a b'"):
        zoo.find_model("timm/a b")  # not a name timm could have; never reaches timm
    assert cmd_import(parse_import_args(["zoo:vgg1", "-o", "x.layers.json"])) == 2
    assert "did you mean torchvision/vgg11" in capsys.readouterr().err
    assert cmd_import(parse_import_args(["zoo:caffe/"])) == 2


def test_pretrained_weights_offline_fail_with_one_clear_line(monkeypatch, tmp_path, capsys):
    def builder(weights=None, **options):
        assert weights == "DEFAULT"
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    fake = SimpleNamespace(models=SimpleNamespace(resnet18=builder))
    monkeypatch.setattr(zoo, "import_torchvision", lambda: fake)
    monkeypatch.setattr(zoo, "installed", lambda library: True)
    with pytest.raises(ModelFileError, match="needs a network connection"):
        zoo.import_zoo_model("torchvision/resnet18", pretrained=True)
    output = tmp_path / "r.layers.json"
    assert cmd_import(parse_import_args(["zoo:torchvision/resnet18", "--pretrained", "-o", str(output)])) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: zoo:torchvision/resnet18: the pretrained weights")
    assert "leave out --pretrained" in err[0] and not output.exists()


@pytest.mark.slow
def test_a_zoo_model_imports_from_the_command_line_and_reproduces(tmp_path, capsys):
    from studio.interop import load_weights
    from studio.interop.export import build_keras_model
    from studio.project import load_project

    output = tmp_path / "squeeze.layers.json"
    argv = ["zoo:torchvision/squeezenet1_1", "--input-shape", "3,64,64", "--weights", "-o", str(output)]
    assert cmd_import(parse_import_args(argv)) == 0
    assert "the same as the pytorch model's" in capsys.readouterr().out
    project = load_project(output)
    assert project.graph.find("x").params["shape"] == (64, 64, 3)
    keras_model = build_keras_model(project, load_weights(output.with_name("squeeze.weights.npz")))
    images = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype("float32")
    got = np.asarray(keras_model(np.moveaxis(images, 1, -1), training=False))
    assert got.shape == (2, 1000) and np.isfinite(got).all()


@pytest.mark.slow
def test_keras_applications_and_keras_hub_build_at_the_zoo_input(tmp_path):
    imported = zoo.import_zoo_model("keras/VGG16", with_weights=False, input_shape=(32, 32, 3))
    (source,) = [node for node in imported.project.graph.nodes if node.kind == "Input"]
    assert source.params["shape"] == (32, 32, 3) and imported.weights is None
    assert imported.source_parameters == imported.imported_parameters > 30_000_000  # 1x1x512 flattened
    backbone = zoo.build_model(zoo.find_model("keras-hub/resnet_18"), input_shape=(64, 64, 3))
    assert tuple(backbone.input_shape) == (None, 64, 64, 3) and backbone.count_params() > 11_000_000


# ----- the GUI ---------------------------------------------------------------------------------


@pytest.fixture
def zoo_dialog(qtbot):
    from widgets.model_import import ZooDialog

    dialog = ZooDialog()
    qtbot.addWidget(dialog)
    return dialog


def _shown(dialog) -> list[str]:
    from PySide6.QtCore import Qt

    return [
        dialog.list.item(row).data(Qt.ItemDataRole.UserRole)
        for row in range(dialog.list.count())
        if not dialog.list.item(row).isHidden()
    ]


def test_the_zoo_dialog_searches_its_list(zoo_dialog):
    from PySide6.QtWidgets import QDialogButtonBox

    assert len(_shown(zoo_dialog)) == len(zoo.available_models())
    zoo_dialog.search.setText("keras/ resnet50")
    assert _shown(zoo_dialog) == ["keras/ResNet50", "keras/ResNet50V2"]
    assert zoo_dialog.selected() == "keras/ResNet50"
    zoo_dialog.search.setText("no such model")
    assert _shown(zoo_dialog) == [] and zoo_dialog.selected() is None
    assert not zoo_dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).isEnabled()


@pytest.mark.slow
def test_new_from_the_model_zoo_opens_the_imported_project(main_window, qtbot, monkeypatch, tmp_path):
    from PySide6.QtWidgets import QDialog

    from widgets.model_import import ZooDialog

    window = main_window
    output = tmp_path / "squeezenet1_1.layers.json"
    monkeypatch.setattr("PySide6.QtWidgets.QFileDialog.getSaveFileName", lambda *a, **k: (str(output), ""))

    def choose(dialog):
        dialog.search.setText("squeezenet1_1")
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(ZooDialog, "exec", choose)
    window.importer.interactive = False
    window.actions["new_from_zoo"].trigger()
    assert window.importer.is_running  # the window is free while the child process imports
    qtbot.waitUntil(lambda: window.document.path == output, timeout=240_000)
    assert sum(node.kind == "Conv2D" for node in window.document.graph.nodes) == 26
    assert output.with_name("squeezenet1_1.weights.npz").exists()


@pytest.mark.slow
def test_timm_builds_in_a_fresh_process_through_the_torchvision_shim():
    if not zoo.installed("timm"):
        pytest.skip("timm is not installed")
    code = (
        "from studio.interop.zoo import build_model, find_model\n"
        "model = build_model(find_model('timm/resnet18'), num_classes=3)\n"
        "print(type(model).__name__, model.fc.out_features)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["ResNet", "3"]
