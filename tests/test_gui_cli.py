"""The CLI twins of the window: `studio gui --screenshot --size`, `studio new`, and a missing xcb."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from studio.cli import main
from studio.project import load_project
from studio.templates import list_templates

ROOT = Path(__file__).resolve().parent.parent


def test_new_list_prints_one_template_a_line_name_first(capsys):
    assert main(["new", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split("\t")[0] for line in lines]
    assert names == [template.name for template in list_templates()]
    assert names[0] == "blank" and "lenet_digits" in names and "resnet_digits" in names
    assert all(len(line.split("\t")) == 2 for line in lines)


def test_new_writes_a_project_from_a_template(tmp_path, capsys):
    assert main(["new", str(tmp_path / "digits"), "--template", "lenet_digits"]) == 0
    project = load_project(tmp_path / "digits.layers.json")
    assert project.name == load_project(ROOT / "assets" / "examples" / "lenet_digits.layers.json").name
    assert main(["new", str(tmp_path / "empty.layers.json")]) == 0
    blank = load_project(tmp_path / "empty.layers.json")
    assert [node.kind for node in blank.graph.nodes] == ["Input"]
    assert tuple(blank.graph.nodes[0].params["shape"]) == (8, 8, 1)  # the default dataset's samples


def test_new_refuses_an_unknown_template_and_an_existing_file(tmp_path, capsys):
    assert main(["new", str(tmp_path / "x"), "--template", "nope"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "no template named 'nope'" in error and "lenet_digits" in error
    assert not (tmp_path / "x.layers.json").exists()
    (tmp_path / "x.layers.json").write_text("keep me", encoding="utf-8")
    assert main(["new", str(tmp_path / "x")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "x.layers.json").read_text(encoding="utf-8") == "keep me"


def test_gui_size_must_be_width_x_height(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["gui", "--size", "big"])
    assert exit_info.value.code == 2
    assert "expected WIDTHxHEIGHT" in capsys.readouterr().err


@pytest.mark.parametrize("size", [(1400, 900), (1024, 700)])
def test_gui_screenshot_has_the_given_size(tmp_path, size):
    from PySide6.QtGui import QImage

    shot = tmp_path / "window.png"
    env = dict(os.environ, PYTHONPATH=str(ROOT), QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path))
    env["XDG_CONFIG_HOME"] = env["XDG_DATA_HOME"] = str(tmp_path)
    example = ROOT / "assets" / "examples" / "mlp_iris.layers.json"
    command = [sys.executable, "-m", "studio", "gui", str(example), "--screenshot", str(shot)]
    result = subprocess.run(
        [*command, "--size", f"{size[0]}x{size[1]}"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    image = QImage(str(shot))
    assert (image.width(), image.height()) == size


def test_a_missing_xcb_library_names_the_packages_and_exits_2(monkeypatch, capsys):
    from widgets import app

    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setattr(app, "missing_xcb_packages", lambda: ["libxcb-cursor0", "libxcb-icccm4"])
    assert app.run_app() == 2
    error = capsys.readouterr().err
    assert "apt-get install libxcb-cursor0 libxcb-icccm4" in error and error.count("\n") == 1


def test_the_xcb_check_loads_real_libraries(monkeypatch):
    import ctypes

    from widgets import app

    loaded = []
    monkeypatch.setattr(
        ctypes, "CDLL", lambda name: loaded.append(name) or (_ for _ in ()).throw(OSError(name))
    )
    assert app.missing_xcb_packages() == list(app.XCB_LIBRARIES.values())
    assert loaded == list(app.XCB_LIBRARIES)
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert app.xcb_problem() is None  # offscreen needs no X11 libraries
