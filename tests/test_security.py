"""Security review, as tests: no pickle on load paths, no eval/exec of data, escaped generated code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(
    path for package in ("studio", "codegen", "widgets") for path in (ROOT / package).rglob("*.py")
)

# The one place that executes code: the project's own generated program (codegen.runtime.load_module).
ALLOWED_EXEC = {("codegen/runtime.py", "load_module")}


def _calls(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            function = node
            while function in parents and not isinstance(function, ast.FunctionDef):
                function = parents[function]
            yield node, ast.unparse(node.func), getattr(function, "name", "<module>")


def _keyword(call: ast.Call, name: str):
    for keyword in call.keywords:
        if keyword.arg == name:
            return ast.unparse(keyword.value)
    return None


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_pickle_and_no_eval_or_exec_of_data(path):
    relative = str(path.relative_to(ROOT))
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [alias.name for alias in node.names] + [getattr(node, "module", None) or ""]
            assert not any(
                name.split(".")[0] in ("pickle", "dill", "cloudpickle", "shelve") for name in names
            ), relative
    for call, name, function in _calls(path):
        if name in ("eval", "exec"):
            assert (relative, function) in ALLOWED_EXEC, (
                f"{relative}:{call.lineno} calls {name} in {function}"
            )


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_loaders_are_safe(path):
    relative = str(path.relative_to(ROOT))
    for call, name, _ in _calls(path):
        where = f"{relative}:{call.lineno}"
        if name.endswith("torch.load"):
            assert _keyword(call, "weights_only") == "True", f"{where}: torch.load without weights_only=True"
        if name in ("np.load", "numpy.load"):
            assert _keyword(call, "allow_pickle") in (None, "False"), f"{where}: np.load with pickles allowed"
        if name.endswith("load_model") and "keras" in name:
            assert _keyword(call, "safe_mode") in (None, "True"), f"{where}: Keras load without safe mode"


def test_generated_code_escapes_hostile_project_strings():
    from codegen import generate
    from tests.graph_builders import chain

    def imports_and_calls(project, framework):
        tree = ast.parse(generate(project, framework).source)
        called = {ast.unparse(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
        imported = [
            ast.unparse(node) for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)
        ]
        return imported, called

    benign = chain([4], ("Dense", {"units": 2}))
    benign.training.dataset = "elsewhere.npz"
    project = chain([4], ("Dense", {"units": 2}))
    project.name = 'x"""; import os; os.system("echo pwned"); """'
    project.training.dataset = 'digits"); import os; ("'
    for framework in ("keras", "pytorch"):
        imported, called = imports_and_calls(project, framework)
        assert "os.system" not in called
        # The hostile text added no statement: the program imports what a benign one imports.
        assert imported == imports_and_calls(benign, framework)[0]
