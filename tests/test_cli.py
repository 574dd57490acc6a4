"""The `studio` command line: entry points, check, summary, export and verify."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from studio import __version__, cli
from studio.project import dumps_project, load_project, save_project
from tests.graph_builders import make_project

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "assets" / "examples"
LENET = str(EXAMPLES / "lenet_digits.layers.json")
MLP = str(EXAMPLES / "mlp_iris.layers.json")
STUDIO = Path(sys.executable).parent / "studio"


@pytest.fixture
def invalid_project(tmp_path) -> str:
    """Two images of different sizes into a Concatenate."""
    project = make_project(
        ("a", "Input", {"shape": [28, 28, 32]}),
        ("b", "Input", {"shape": [14, 14, 32]}),
        ("concatenate", "Concatenate", {}, "a", "b"),
    )
    path = tmp_path / "invalid.layers.json"
    save_project(project, path)
    return str(path)


@pytest.fixture
def unreadable_project(tmp_path) -> str:
    path = tmp_path / "broken.layers.json"
    path.write_text('{"format": "layer-studio",', encoding="utf-8")
    return str(path)


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)


# ----- entry points (subprocess) ----------------------------------------------------------


def test_version_is_the_same_from_every_entry_point():
    script = run(str(STUDIO), "--version")
    module = run(sys.executable, "-m", "studio", "--version")
    assert script.returncode == module.returncode == 0
    assert script.stdout == module.stdout == f"Layer Studio {__version__}\n"


def test_help_is_the_same_from_every_entry_point():
    script = run(str(STUDIO), "--help")
    module = run(sys.executable, "-m", "studio", "--help")
    assert script.returncode == module.returncode == 0
    assert script.stdout == module.stdout
    assert script.stdout.startswith("usage: studio")
    for command in ("gui", "check", "summary", "verify", "export"):
        assert f"    {command} " in script.stdout


def test_the_entry_point_returns_the_command_exit_code(invalid_project):
    assert run(str(STUDIO), "check", invalid_project).returncode == 1
    assert run(sys.executable, "-m", "studio", "check", invalid_project).returncode == 1


# ----- check ------------------------------------------------------------------------------


def test_check_a_valid_project(capsys):
    assert cli.main(["check", LENET]) == cli.OK
    out = capsys.readouterr().out
    assert out == f"{LENET}: valid, 9 layers, 13,706 parameters\n"


def test_check_prints_each_problem_and_exits_1(invalid_project, capsys):
    assert cli.main(["check", invalid_project]) == cli.PROBLEMS
    assert capsys.readouterr().out.splitlines() == [
        "error: Concatenate 'concatenate' input 2 has shape (None, 14, 14, 32) but input 1 has "
        "(None, 28, 28, 32): all axes but -1 must match",
        f"{invalid_project}: 1 error(s), 0 warning(s) in 3 layers",
    ]


def test_check_with_warnings_only_is_valid(tmp_path, capsys):
    project = make_project(("x", "Input", {"shape": [4]}), ("head", "Dense", {"units": 2}))
    side = project.graph.add_node("Dense", name="side", params={"units": 3})
    project.graph.connect(project.graph.find("x").id, side.id)
    project.graph.set_outputs([project.graph.find("head").id])
    path = tmp_path / "warn.layers.json"
    save_project(project, path)
    assert cli.main(["check", str(path)]) == cli.OK
    assert capsys.readouterr().out.splitlines() == [
        "warning: Dense 'side' does not reach any model output, so the generated model leaves it out",
        f"{path}: valid, 3 layers, 10 parameters, 1 warning(s)",
    ]


@pytest.mark.parametrize("command", ["check", "summary", "export", "verify"])
def test_unreadable_files_exit_2(command, unreadable_project, tmp_path, capsys):
    extra = ["--framework", "keras"] if command == "export" else []
    assert cli.main([command, unreadable_project, *extra]) == cli.UNREADABLE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: {unreadable_project}: not valid JSON")
    assert cli.main([command, str(tmp_path / "missing.layers.json"), *extra]) == cli.UNREADABLE
    assert "missing.layers.json: no such file" in capsys.readouterr().err


# ----- summary ----------------------------------------------------------------------------


def test_summary_of_lenet_is_a_keras_like_table(capsys):
    assert cli.main(["summary", LENET]) == cli.OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == 'Model: "LeNet on digits"'
    assert lines[2].split() == [
        "Layer",
        "(type)",
        "Output",
        "Shape",
        "Param",
        "#",
        "FLOPs",
        "Connected",
        "to",
    ]
    rows = {line.split()[0]: line.split() for line in lines[4:13]}
    assert list(rows) == [
        "input",
        "conv2d",
        "max_pooling2d",
        "conv2d_1",
        "max_pooling2d_1",
        "flatten",
        "dense",
        "dropout",
        "dense_1",
    ]
    # conv2d: 8 * 8 * 16 outputs of 3 * 3 * 1 MACs (2 FLOPs each), plus the bias and the relu.
    assert rows["conv2d"] == ["conv2d", "(Conv2D)", "(None,", "8,", "8,", "16)", "160", "20,480", "input"]
    assert rows["conv2d_1"][-3:] == ["4,640", "148,480", "max_pooling2d"]
    assert rows["dense"][-3:] == ["8,256", "16,512", "flatten"]
    assert rows["dense_1"][-3:] == ["650", "1,290", "dropout"]
    assert lines[-4] == " Total FLOPs: 187,914 per sample (188 KFLOPs; 91,776 MACs, 1 MAC = 2 FLOPs)"
    assert lines[-3:] == [" Total params: 13,706", " Trainable params: 13,706", " Non-trainable params: 0"]
    # Param # and FLOPs are right-aligned: the counts end in the same column.
    for column in (-3, -2):
        ends = {[word.end() for word in re.finditer(r"\S+", line)][column] for line in lines[4:13]}
        assert len(ends) == 1


def test_summary_splits_non_trainable_weights(capsys):
    assert cli.main(["summary", str(EXAMPLES / "resnet_digits.layers.json")]) == cli.OK
    out = capsys.readouterr().out
    assert " Total params: 19,994\n Trainable params: 19,706\n Non-trainable params: 288" in out


def test_summary_of_an_invalid_project_points_to_check(invalid_project, capsys):
    assert cli.main(["summary", invalid_project]) == cli.OK
    out = capsys.readouterr().out
    assert "concatenate (Concatenate)" in out and "?" in out
    assert out.rstrip().endswith("The model has 1 error(s); run `studio check` for details.")


# ----- export -----------------------------------------------------------------------------


@pytest.mark.parametrize("framework", ["keras", "pytorch"])
def test_export_writes_the_generated_program(framework, tmp_path, capsys):
    from codegen import generate

    target = tmp_path / f"model_{framework}.py"
    assert cli.main(["export", LENET, "--framework", framework, "-o", str(target)]) == cli.OK
    assert capsys.readouterr().err == f"wrote {target}\n"
    source = target.read_text(encoding="utf-8")
    assert source == generate(load_project(LENET), framework).source
    compile(source, str(target), "exec")
    assert ("import keras" if framework == "keras" else "import torch") in source


def test_export_to_standard_output(capsys):
    from codegen import generate

    assert cli.main(["export", MLP, "--framework", "pytorch"]) == cli.OK
    assert capsys.readouterr().out == generate(load_project(MLP), "pytorch").source


def test_export_of_an_invalid_project_exits_1_and_writes_nothing(invalid_project, tmp_path, capsys):
    target = tmp_path / "model.py"
    assert cli.main(["export", invalid_project, "--framework", "keras", "-o", str(target)]) == cli.PROBLEMS
    assert (
        f"error: {invalid_project}: the model has errors: Concatenate 'concatenate' input 2"
        in capsys.readouterr().err
    )
    assert not target.exists()


def test_export_to_an_unwritable_place_exits_2(tmp_path, capsys):
    target = tmp_path / "no" / "such" / "folder" / "model.py"
    assert cli.main(["export", MLP, "--framework", "keras", "-o", str(target)]) == cli.UNREADABLE
    assert f"error: cannot write {target}" in capsys.readouterr().err


def test_export_refuses_an_unknown_framework(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["export", MLP, "--framework", "jax"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'jax'" in capsys.readouterr().err


# ----- gui and verify ---------------------------------------------------------------------


def test_no_command_opens_the_app(monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "cmd_gui", lambda args: calls.append((args.project, args.screenshot)) or 0)
    assert cli.main([]) == 0
    assert cli.main(["gui", MLP]) == 0
    assert calls == [(None, None), (MLP, None)]


def test_verify_json_on_the_mlp_example(capsys):
    assert cli.main(["verify", MLP, "--json", "--skip-main"]) == cli.OK  # main() runs: test_verify_training
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    [training] = report["training"]  # the project's own optimizer, 5 steps of each program's train_step
    assert training["optimizer"] == "adam" and training["steps"] == 5 and training["ok"] is True
    assert report["mains"] == {}
    assert report["model"] == "MLP on iris"
    assert report["counts_ok"] is True and report["outputs"]["ok"] is True
    assert report["keras"]["trainable"] == 739


def test_the_files_the_cli_reads_are_left_unchanged(tmp_path, capsys):
    path = tmp_path / "lenet.layers.json"
    path.write_text(Path(LENET).read_text(encoding="utf-8"), encoding="utf-8")
    before = path.read_bytes()
    for command in (["check"], ["summary"], ["export", "--framework", "keras"]):
        cli.main([command[0], str(path), *command[1:]])
    capsys.readouterr()
    assert path.read_bytes() == before == dumps_project(load_project(path)).encode()


# ----- a CLI that feels native -------------------------------------------------------------

FRAMEWORK_MODULES = ("torch", "tensorflow", "keras", "onnx")

# Runs the CLI's help, then prints which framework modules the process loaded.
HELP_PROBE = f"""
import sys
from studio.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(sorted(name for name in {FRAMEWORK_MODULES!r} if name in sys.modules))
"""


def test_no_help_text_imports_a_framework():
    for words in ([], *([command] for command in cli.build_parser()._subparsers._group_actions[0].choices)):
        result = run(sys.executable, "-c", HELP_PROBE, *words, "--help")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"usage: studio {' '.join(words)}".rstrip())
        assert result.stdout.rstrip().endswith("\n[]"), (words, result.stdout[-200:])


def test_help_texts_show_the_defaults(capsys):
    with pytest.raises(SystemExit):
        cli.main(["verify", "--help"])
    out = capsys.readouterr().out
    assert "seed of the random batch (default: 0)" in out
    assert "size of the random batch (default: 4)" in out
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "each defaults to the project's own setting" in out
    assert "(default: None)" not in out and "(default: False)" not in out


def test_a_bad_setting_is_named_by_its_flag_or_its_project_field(tmp_path, capsys):
    assert cli.main(["train", MLP, "--framework", "keras", "--epochs", "0"]) == cli.UNREADABLE
    err = capsys.readouterr().err
    assert err == "error: --epochs: expected a positive integer. Received: 0\n"
    assert cli.main(["compare", MLP, "--batch-size", "-2"]) == cli.UNREADABLE
    assert capsys.readouterr().err.startswith("error: --batch-size: expected")
    assert cli.main(["train", MLP, "--framework", "keras", "--device", "tpu"]) == cli.UNREADABLE
    assert capsys.readouterr().err.startswith("error: --device: expected auto, cpu")
    data = json.loads(Path(MLP).read_text(encoding="utf-8"))
    data["training"]["epochs"] = 0
    bad = tmp_path / "bad.layers.json"
    bad.write_text(json.dumps(data), encoding="utf-8")
    assert cli.main(["train", str(bad), "--framework", "keras"]) == cli.UNREADABLE
    err = capsys.readouterr().err
    assert "training.epochs: expected a positive integer" in err and "config." not in err, err


@pytest.mark.slow
def test_verify_writes_no_framework_noise_to_stderr():
    result = run(sys.executable, "-m", "studio", "verify", MLP)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.slow
def test_cuda_on_a_machine_without_cuda_exits_2_with_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    arguments = ("train", MLP, "--framework", "pytorch", "--device", "cuda", "--out", str(tmp_path / "run"))
    result = run(sys.executable, "-m", "studio", *arguments)
    assert result.returncode == 2
    assert result.stderr == "error: cuda is not available: PyTorch sees no CUDA device\n"
    assert result.stdout == ""


def test_running_out_of_memory_is_one_line_naming_the_project(monkeypatch, capsys):
    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr("studio.summary.format_summary", no_memory)
    assert cli.main(["summary", MLP]) == cli.PROBLEMS
    assert capsys.readouterr().err == f"error: {MLP}: not enough memory for `studio summary`\n"


def test_export_with_weights_writes_nothing_unless_both_succeed(tmp_path, capsys):
    program, weights = tmp_path / "model.py", tmp_path / "model.pt"
    missing = tmp_path / "missing.weights.npz"
    arguments = ["export", MLP, "--framework", "pytorch", "-o", str(program), "--weights-out", str(weights)]
    assert cli.main([*arguments, "--weights", str(missing)]) == cli.UNREADABLE
    assert str(missing) in capsys.readouterr().err
    assert not program.exists() and not weights.exists()  # the program is not written alone
