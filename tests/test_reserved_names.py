"""Layer and project names that Python, the generated programs, torch or Keras already use.

Every identifier of a generated program comes from one namespace: a layer
called ``training``, ``forward``, ``keras`` or ``class`` and a project called
"Data Loader" still pass ``studio check``, verify, export clean code and train.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import keyword
import subprocess
import sys
from pathlib import Path

import pytest

from codegen import generate
from codegen.names import (
    KERAS_MODEL_ATTRIBUTES,
    PROGRAM_NAMES,
    RESERVED,
    TORCH_MODULE_ATTRIBUTES,
    to_class_name,
)
from codegen.verify import verify_project
from studio import cli
from studio.project import load_project, project_to_dict, save_project
from tests.graph_builders import chain, make_project

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "assets" / "examples").glob("*.layers.json"))
RUFF = Path(sys.executable).with_name("ruff")

# The names of the issue, then samples of each reserved family.
NAMED = [
    "training",
    "forward",
    "to",
    "parameters",
    "state_dict",
    "children",
    "cuda",
    "keras",
    "torch",
    "F",
    "np",
]
KERAS_NAMES = ["input", "model", "layers", "build", "output", "weights", "name", "call", "fit", "summary"]
KEYWORDS = ["class", "lambda", "None", "True", "match", "case", "type", "_", "import"]
BUILTINS = ["print", "len", "super", "object", "id", "sum", "isinstance", "zip", "Exception"]
PROGRAM = ["DataLoader", "nn", "self", "x", "y", "args", "main", "loss_fn", "optimizer", "device", "evaluate"]
CLASHES = ["training_", "training__1", "forward_1", "__init__", "_modules", "T_destination", "self_"]
KINDS = [
    ("Dense", {"units": 8, "activation": "relu"}),
    ("Activation", {"activation": "tanh"}),
    ("Dense", {"units": 8}),
    ("LayerNormalization", {}),
]


def _sample(names, count: int) -> list[str]:
    """``count`` public names spread evenly over ``names`` (sorted)."""
    public = sorted(name for name in names if not name.startswith("_"))
    step = max(1, len(public) // count)
    return public[::step][:count]


def _names_project(torch_names: list[str], keras_names: list[str]):
    """An iris MLP whose layers are all named after something reserved."""
    names = [*NAMED, *KERAS_NAMES, *KEYWORDS, *BUILTINS, *PROGRAM, *CLASHES, *torch_names, *keras_names]
    names = [name for name in dict.fromkeys(names) if name not in ("forward", "outputs")]
    rows = [("forward", "Input", {"shape": [4]})]
    rows += [(name, *KINDS[index % len(KINDS)]) for index, name in enumerate(names)]
    rows.append(("outputs", "Dense", {"units": 3}))
    project = make_project(*rows, name="training", dataset="iris", optimizer="sgd", learning_rate=0.05)
    project.training.batch_size = 32
    return project


@pytest.fixture(scope="module")
def names_project():
    import keras
    import torch

    inputs = keras.Input((3,))
    functional = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    torch_names = _sample(dir(torch.nn.Module()), 15)
    keras_names = _sample(set(dir(keras.Model)) | set(dir(functional)), 15)
    return _names_project(torch_names, keras_names)


def _small_mlp(name: str):
    project = chain(
        [4], ("Dense", {"units": 8, "activation": "relu"}), ("Dense", {"units": 3}), dataset="iris"
    )
    project.name = name
    return project


# ----- the reserved sets stay true to the frameworks ---------------------------------------


def test_torch_attributes_cover_every_name_of_nn_module():
    import torch

    module = torch.nn.Module()
    missing = (set(dir(torch.nn.Module)) | set(dir(module)) | set(vars(module))) - TORCH_MODULE_ATTRIBUTES
    assert not missing, f"add to TORCH_MODULE_ATTRIBUTES in codegen/names.py: {sorted(missing)}"


def test_keras_attributes_cover_the_public_names_of_models_and_layers():
    import keras

    inputs = keras.Input((3,))
    functional = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    names = (
        set(dir(keras.Model)) | set(dir(keras.layers.Layer)) | set(dir(keras.Model())) | set(dir(functional))
    )
    missing = {name for name in names if not name.startswith("_")} - KERAS_MODEL_ATTRIBUTES
    # Identifiers never start with "_" (to_identifier strips it), so the private names cannot clash.
    assert not missing, f"add to KERAS_MODEL_ATTRIBUTES in codegen/names.py: {sorted(missing)}"


# The functions whose locals are the layers' identifiers.
LAYER_SCOPES = ("build_model", "forward")


def _program_names(source: str) -> set[str]:
    """The names a layer's identifier could shadow or be shadowed by: every module-level name
    (imports, functions, classes, assignments), and every name read or bound in the functions
    whose locals are the layers (``build_model``, ``forward``)."""
    tree = ast.parse(source)
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update(alias.asname or alias.name.split(".")[0] for alias in node.names)
        else:
            names.update(name.id for name in ast.walk(node) if isinstance(name, ast.Name))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name in LAYER_SCOPES:
            for inner in ast.walk(node):
                if isinstance(inner, ast.Name):
                    names.add(inner.id)
                elif isinstance(inner, ast.arg):
                    names.add(inner.arg)
    return names


def _variety() -> list:
    """The examples, and projects that make the programs' other branches: losses, several heads."""
    projects = [load_project(path) for path in EXAMPLES]
    for loss in ("cross_entropy", "binary_cross_entropy", "mse"):
        projects.append(
            make_project(
                ("image", "Input", {"shape": [6, 6, 1]}),
                ("meta", "Input", {"shape": [3]}),
                ("conv", "Conv2D", {"filters": 2}, "image"),
                ("pool", "GlobalAveragePooling2D", {}, "conv"),
                ("joined", "Concatenate", {}, "pool", "meta"),
                ("head_a", "Dense", {"units": 3}, "joined"),
                ("head_b", "Dense", {"units": 2}, "joined"),
                loss=loss,
            )
        )
        for activation in ("softmax", "sigmoid", "linear"):
            dense = ("Dense", {"units": 3, "activation": activation})
            projects.append(chain([4], dense, loss=loss, dataset="iris"))
            projects.append(chain([6, 3], ("LSTM", {"units": 4, "return_sequences": True}), dense, loss=loss))
    return projects


def test_program_names_hold_every_name_the_programs_use_besides_the_layers():
    for project in _variety():
        for framework in ("keras", "pytorch"):
            code = generate(project, framework)
            own = {layer.ident for layer in code.plan.layers} | {code.plan.class_name}
            used = _program_names(code.source) - own - set(dir(builtins)) - set(keyword.softkwlist)
            assert used <= PROGRAM_NAMES, (
                f"add to PROGRAM_NAMES in codegen/names.py: {sorted(used - PROGRAM_NAMES)}"
            )


# ----- identifiers ---------------------------------------------------------------------------


def _is_free(name: str) -> bool:
    return not (
        keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in dir(builtins) or name in RESERVED
    )


def test_every_identifier_is_unique_and_free(names_project):
    plan = generate(names_project, "pytorch").plan
    idents = [layer.ident for layer in plan.layers]
    assert len(set(idents)) == len(idents) == len(names_project.graph.nodes)
    assert len(idents) > 60
    assert all(ident.isidentifier() and _is_free(ident) for ident in idents)
    assert plan.class_name not in idents and _is_free(plan.class_name)
    by_name = {}
    for layer in plan.layers:
        by_name.setdefault(layer.node.name, []).append(layer.ident)
    assert by_name["training"] == ["training_"]
    assert by_name["training_"] == ["training__1"]
    assert by_name["training__1"] == ["training__1_1"]
    assert by_name["forward"] == ["forward_"]
    assert by_name["F"] == ["F_"]
    assert by_name["class"] == ["class_"]


@pytest.mark.parametrize(
    ("name", "class_name"),
    [
        ("Epoch Report", "EpochReportModel"),
        ("global batches", "GlobalBatchesModel"),
        ("f", "FModel"),
        ("probability cross entropy", "ProbabilityCrossEntropyModel"),
        ("None", "NoneModel"),
        ("LeNet on digits", "LenetOnDigits"),
    ],
)
def test_the_class_name_never_shadows_a_program_name(name, class_name):
    assert to_class_name(name) == class_name
    source = generate(_small_mlp(name), "pytorch").source
    assert f"class {class_name}(nn.Module):" in source


def test_a_percent_in_the_project_name_reaches_the_help_text():
    for name in ("%(prog)s at 100%", "100% sure"):
        source = generate(_small_mlp(name), "keras").source
        call = next(
            node
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "argparse.ArgumentParser"
        )
        description = ast.literal_eval(call.keywords[0].value)
        text = argparse.ArgumentParser(prog="script.py", description=description).format_help()
        assert f"Train {name}." in text


# ----- the whole path: check, verify, export, run, train -------------------------------------


def _projects(names_project) -> dict:
    return {
        "reserved": names_project,
        "data-loader": _small_mlp("Data Loader"),
        "percent": _small_mlp("%(prog)s at 100%"),
    }


def _run(script: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(script), "--epochs", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={"KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
    )


@pytest.mark.slow
@pytest.mark.parametrize("which", ["reserved", "data-loader", "percent"])
def test_check_verify_export_and_run_both_programs(which, names_project, tmp_path, capsys):
    project = _projects(names_project)[which]
    path = tmp_path / "project.layers.json"
    save_project(project, path)
    assert cli.main(["check", str(path)]) == cli.OK

    report = verify_project(load_project(path))
    assert report.ok, report.format()

    for framework in ("keras", "pytorch"):
        folder = tmp_path / framework
        folder.mkdir()
        script = folder / "program.py"
        assert cli.main(["export", str(path), "--framework", framework, "-o", str(script)]) == cli.OK
        check = subprocess.run([RUFF, "check", "--isolated", script], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout
        fmt = subprocess.run([RUFF, "format", "--isolated", "--diff", script], capture_output=True, text=True)
        assert fmt.returncode == 0, fmt.stdout
        result = _run(script, folder)
        assert result.returncode == 0, result.stderr[-3000:]
        assert (folder / ("model.keras" if framework == "keras" else "model.pt")).stat().st_size > 0


@pytest.mark.slow
def test_the_studio_trains_one_epoch_in_both_frameworks(names_project, tmp_path):
    from studio.training import RunConfig, compare_frameworks

    config = RunConfig.from_project(project_to_dict(names_project), "keras", out_dir=str(tmp_path), epochs=1)
    report = compare_frameworks(config, parallel=True)
    assert report.ok, {framework: result.outcome for framework, result in report.results.items()}
    assert report.steps_compared == 4  # 120 training samples in batches of 32
    assert report.max_loss_difference < 1e-4
