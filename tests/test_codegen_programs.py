"""The generated programs: clean under ruff, deterministic, safe names, and they train."""

from __future__ import annotations

import ast
import keyword
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from codegen import CodegenError, generate
from codegen.names import Namespace, to_class_name, to_identifier
from studio.project import load_project
from tests.graph_builders import chain, make_project

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "assets" / "examples").glob("*.layers.json"))
RUFF = Path(sys.executable).with_name("ruff")


def _write_all(tmp_path: Path) -> list[Path]:
    files = []
    for path in EXAMPLES:
        project = load_project(path)
        for framework in ("keras", "pytorch"):
            code = generate(project, framework)
            target = tmp_path / code.filename
            target.write_text(code.source)
            files.append(target)
    return files


def test_generated_files_are_clean_under_ruff(tmp_path):
    files = _write_all(tmp_path)
    check = subprocess.run([RUFF, "check", "--isolated", *files], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = subprocess.run([RUFF, "format", "--isolated", "--check", *files], capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


@pytest.mark.parametrize("framework", ["keras", "pytorch"])
def test_generation_is_deterministic(framework):
    for path in EXAMPLES:
        first = generate(load_project(path), framework).source
        second = generate(load_project(path), framework).source
        assert first == second


def test_generated_code_defines_build_model_and_a_main_entry_point():
    project = load_project(ROOT / "assets/examples/lenet_digits.layers.json")
    for framework in ("keras", "pytorch"):
        tree = ast.parse(generate(project, framework).source)
        functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        assert {"build_model", "load_data", "main"} <= functions
        assert any(isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) for node in tree.body)


def test_invalid_project_raises_a_codegen_error():
    project = make_project(("x", "Input", {"shape": [4]}), ("a", "Add", {}, "x"))
    with pytest.raises(CodegenError, match="input.* not connected"):
        generate(project, "keras")


@pytest.mark.parametrize(
    "name",
    [
        '"; import os; os.system("echo pwned")',
        "class",
        "print",
        "2nd layer",
        "self",
        "dense",
        "ünïcode nàme",
        "__init__",
    ],
)
def test_layer_names_become_safe_unique_identifiers(name):
    project = make_project(
        ("input", "Input", {"shape": [4]}),
        (name, "Dense", {"units": 3}, "input"),
        ("dense", "Dense", {"units": 2}) if name != "dense" else ("dense_other", "Dense", {"units": 2}),
    )
    for framework in ("keras", "pytorch"):
        source = generate(project, framework).source
        tree = ast.parse(source)  # the program stays valid Python
        calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
        names = {ast.unparse(node.func) for node in calls}
        assert "os.system" not in names
        identifiers = {
            t.id
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign)
            for t in node.targets
            if isinstance(t, ast.Name)
        }
        assert all(ident.isidentifier() and not keyword.iskeyword(ident) for ident in identifiers)


def test_namespace_avoids_keywords_builtins_and_clashes():
    namespace = Namespace()
    assert [namespace.claim(name) for name in ("dense", "dense", "dense!", "class", "list", "9x", "")] == [
        "dense",
        "dense_1",
        "dense_2",
        "class_",
        "list_",
        "layer_9x",
        "layer",
    ]
    assert to_identifier("torch") == "torch_"
    assert to_class_name("LeNet on digits") == "LenetOnDigits"
    assert to_class_name("123") == "Model123"


def test_padding_same_with_strides_is_an_explicit_asymmetric_pad():
    project = chain([8, 8, 3], ("Conv2D", {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same"}))
    source = generate(project, "pytorch").source
    assert "F.pad(input_, (0, 1, 0, 1))" in source  # Keras puts the extra pixel at the end
    assert 'padding="same"' not in source


def test_batch_norm_momentum_is_converted_and_epsilon_explicit():
    project = chain([4, 4, 3], ("BatchNormalization", {"momentum": 0.9, "epsilon": 0.001}))
    assert "nn.BatchNorm2d(3, eps=0.001, momentum=0.1)" in generate(project, "pytorch").source
    calls = [
        node
        for node in ast.walk(ast.parse(generate(project, "keras").source))
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "layers.BatchNormalization"
    ]
    assert {kw.arg: ast.literal_eval(kw.value) for kw in calls[0].keywords if kw.arg != "name"} == {
        "momentum": 0.9,
        "epsilon": 0.001,
    }


def _tiny_dataset(tmp_path: Path, project) -> Path:
    code = generate(project, "keras")
    layer = code.plan.inputs[0]
    rng = np.random.default_rng(0)
    x = rng.random((40, *layer.shape)).astype("float32")
    if project.training.target == "inputs":
        y = x
    elif project.training.loss == "cross_entropy":
        y = rng.integers(0, code.plan.outputs[0].shape[-1], size=40)
    else:
        y = rng.random((40, *code.plan.outputs[0].shape)).astype("float32")
    path = tmp_path / "data.npz"
    np.savez(path, x=x, y=y)
    return path


# The fast tier (-m "not slow") runs one script per framework: the iris MLP's.
@pytest.mark.parametrize(
    "example",
    [
        pytest.param(path, marks=() if path.name.startswith("mlp_iris.") else pytest.mark.slow)
        for path in EXAMPLES
    ],
    ids=lambda path: path.name.split(".")[0],
)
@pytest.mark.parametrize("framework", ["keras", "pytorch"])
def test_generated_training_script_runs_one_epoch(tmp_path, example, framework):
    project = load_project(example)
    code = generate(project, framework)
    script = tmp_path / code.filename
    script.write_text(code.source)
    data = _tiny_dataset(tmp_path, project)
    weights = tmp_path / ("model.keras" if framework == "keras" else "model.pt")
    result = subprocess.run(
        [
            sys.executable,
            str(script),
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--data",
            str(data),
            "--out",
            str(weights),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={"KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert weights.exists() and weights.stat().st_size > 0


def _run_script(tmp_path: Path, command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={
            "KERAS_BACKEND": "tensorflow",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "PATH": "/usr/bin:/bin",
            "OMP_NUM_THREADS": "1",
        },
    )


@pytest.mark.slow
def test_pytorch_script_trains_under_torchrun_with_two_cpu_processes(tmp_path):
    project = load_project(ROOT / "assets/examples/lenet_digits.layers.json")
    code = generate(project, "pytorch")
    script = tmp_path / code.filename
    script.write_text(code.source)
    data = _tiny_dataset(tmp_path, project)
    torchrun = Path(sys.executable).with_name("torchrun")
    result = _run_script(
        tmp_path,
        [
            str(torchrun),
            "--standalone",
            "--nproc_per_node=2",
            str(script),
            "--epochs",
            "2",
            "--data",
            str(data),
        ],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("epoch 2/2:") == 1  # rank 0 alone prints
    assert (tmp_path / "model.pt").exists()  # written once, by rank 0


@pytest.mark.slow
def test_keras_script_trains_under_a_mirrored_strategy(tmp_path):
    project = load_project(ROOT / "assets/examples/mlp_iris.layers.json")
    code = generate(project, "keras")
    script = tmp_path / code.filename
    script.write_text(code.source)
    data = _tiny_dataset(tmp_path, project)
    result = _run_script(
        tmp_path,
        [sys.executable, str(script), "--epochs", "1", "--strategy", "mirrored", "--data", str(data)],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "model.keras").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("activation", "loss", "units"),
    [
        ("softmax", "cross_entropy", 3),
        ("sigmoid", "binary_cross_entropy", 1),
        ("linear", "binary_cross_entropy", 1),
    ],
)
def test_scripts_for_models_ending_in_probabilities_or_logits_train_and_pass_ruff(
    tmp_path, activation, loss, units
):
    project = chain(
        [4],
        ("Dense", {"units": 8, "activation": "relu"}),
        ("Dense", {"units": units, "activation": activation}),
    )
    project.training.loss = loss
    rng = np.random.default_rng(0)
    data = tmp_path / "data.npz"
    np.savez(data, x=rng.random((30, 4)).astype("float32"), y=rng.integers(0, max(units, 2), size=30))
    for framework in ("keras", "pytorch"):
        code = generate(project, framework)
        script = tmp_path / code.filename
        script.write_text(code.source)
        assert subprocess.run([RUFF, "check", "--isolated", script], capture_output=True).returncode == 0
        assert (
            subprocess.run([RUFF, "format", "--isolated", "--check", script], capture_output=True).returncode
            == 0
        )
        result = _run_script(tmp_path, [sys.executable, str(script), "--epochs", "1", "--data", str(data)])
        assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_scripts_for_models_with_several_inputs_and_outputs_train(tmp_path, loss):
    project = make_project(
        ("image", "Input", {"shape": [6, 6, 1]}),
        ("meta", "Input", {"shape": [3]}),
        ("conv", "Conv2D", {"filters": 2, "strides": 2, "padding": "same"}, "image"),
        ("pool", "GlobalAveragePooling2D", {}, "conv"),
        ("joined", "Concatenate", {}, "pool", "meta"),
        ("head_a", "Dense", {"units": 3}, "joined"),
        ("head_b", "Dense", {"units": 2}, "joined"),
        loss=loss,
    )
    rng = np.random.default_rng(0)
    n = 24
    targets = {
        name: rng.integers(0, units, size=n) if loss == "cross_entropy" else rng.random((n, units))
        for name, units in (("head_a", 3), ("head_b", 2))
    }
    data = tmp_path / "data.npz"
    np.savez(
        data,
        x_image=rng.random((n, 6, 6, 1)),
        x_meta=rng.random((n, 3)),
        **{f"y_{k}": v for k, v in targets.items()},
    )
    for framework in ("keras", "pytorch"):
        code = generate(project, framework)
        script = tmp_path / code.filename
        script.write_text(code.source)
        assert subprocess.run([RUFF, "check", "--isolated", script], capture_output=True).returncode == 0
        fmt = subprocess.run([RUFF, "format", "--isolated", "--diff", script], capture_output=True, text=True)
        assert fmt.returncode == 0, fmt.stdout
        result = _run_script(tmp_path, [sys.executable, str(script), "--epochs", "1", "--data", str(data)])
        assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("head", "loss", "accuracy"),
    [
        # one class per time step: PyTorch holds the scores as (N, L, classes)
        (("Dense", {"units": 5}), "cross_entropy", True),
        (("Dense", {"units": 5, "activation": "softmax"}), "cross_entropy", True),
        # one 0/1 label per time step, on logits
        (("Dense", {"units": 1}), "binary_cross_entropy", True),
        (("Dense", {"units": 2}), "mse", False),
    ],
)
def test_scripts_for_per_step_sequence_outputs_train_and_report_accuracy(tmp_path, head, loss, accuracy):
    project = chain([6, 3], ("LSTM", {"units": 4, "return_sequences": True}), head)
    project.training.loss = loss
    rng = np.random.default_rng(0)
    n, units = 24, head[1]["units"]
    if loss == "cross_entropy":
        y = rng.integers(0, units, size=(n, 6))
    elif loss == "binary_cross_entropy":
        y = rng.integers(0, 2, size=(n, 6, 1))
    else:
        y = rng.random((n, 6, units))
    data = tmp_path / "data.npz"
    np.savez(data, x=rng.random((n, 6, 3)).astype("float32"), y=y)
    for framework in ("keras", "pytorch"):
        code = generate(project, framework)
        script = tmp_path / code.filename
        script.write_text(code.source)
        assert subprocess.run([RUFF, "check", "--isolated", script], capture_output=True).returncode == 0
        result = _run_script(tmp_path, [sys.executable, str(script), "--epochs", "2", "--data", str(data)])
        assert result.returncode == 0, result.stderr[-3000:]
        if framework == "pytorch":
            epochs = [line for line in result.stdout.splitlines() if line.startswith("epoch ")]
            assert len(epochs) == 2
            if accuracy:
                value = float(epochs[-1].split("val_accuracy ", 1)[1].split(",")[0])
                assert 0.0 <= value <= 1.0
            else:
                assert "accuracy" not in epochs[-1]
