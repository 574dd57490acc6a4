"""Layers of the house: the core never imports Qt, and nothing imports a framework at module level."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

QT = {"PySide6", "pyqtgraph"}
FRAMEWORKS = {"torch", "tensorflow", "keras", "onnx", "onnxruntime"}


def modules(*packages: str) -> list[Path]:
    return sorted(path for package in packages for path in (ROOT / package).rglob("*.py"))


def imported_roots(tree: ast.AST, module_level_only: bool) -> list[tuple[int, str]]:
    """(line, top-level package) of each import, optionally only those run when the module loads."""
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            nested = nested or _is_type_checking_block(child)  # never run
            if not (module_level_only and nested):
                if isinstance(child, ast.Import):
                    found.extend((child.lineno, alias.name.split(".")[0]) for alias in child.names)
                elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                    found.append((child.lineno, child.module.split(".")[0]))
            visit(child, nested)

    visit(tree, False)
    return found


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def offending(paths: list[Path], banned: set[str], module_level_only: bool) -> list[str]:
    problems = []
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, root in imported_roots(tree, module_level_only):
            if root in banned:
                problems.append(f"{path.relative_to(ROOT)}:{line} imports {root}")
    return problems


def test_import_contracts_hold():
    # --no-cache: a stale cache once reported an ignored import as missing.
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_scanner_sees_module_level_and_nested_imports():
    tree = ast.parse(
        "import torch.nn\nfrom keras import layers\ndef f():\n    import tensorflow\n"
        "class C:\n    import onnx\n    def g(self):\n        from PySide6 import QtCore\n"
        "if True:\n    import pyqtgraph\n"
        "if TYPE_CHECKING:\n    import torch\n"
    )
    everywhere = imported_roots(tree, module_level_only=False)
    assert everywhere == [
        (1, "torch"),
        (2, "keras"),
        (4, "tensorflow"),
        (6, "onnx"),
        (8, "PySide6"),
        (10, "pyqtgraph"),
        (12, "torch"),
    ]
    assert imported_roots(tree, module_level_only=True) == [
        (1, "torch"),
        (2, "keras"),
        (6, "onnx"),
        (10, "pyqtgraph"),
    ]


def test_the_core_and_the_code_generators_never_import_qt():
    paths = modules("studio", "codegen")
    assert len(paths) > 20
    assert offending(paths, QT, module_level_only=False) == []


@pytest.mark.parametrize("package", ["studio", "codegen", "widgets"])
def test_no_framework_is_imported_at_module_level(package):
    paths = modules(package)
    assert paths
    assert offending(paths, FRAMEWORKS, module_level_only=True) == []


def test_importing_the_core_loads_no_framework_and_no_qt():
    code = (
        "import sys\n"
        "import studio.cli, studio.analysis, studio.project, studio.summary, codegen\n"
        "heavy = ('torch', 'tensorflow', 'keras', 'PySide6', 'pyqtgraph')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


# A kind's knowledge lives in its catalog spec and its lowering (codegen/layers/<family>.py), with at
# most one more production file that may name it (issue 12: before, Embedding was named in 10 files).
KINDS_IN_ONE_PLACE = (
    "Conv2D",
    "Conv1D",
    "Dense",
    "LSTM",
    "GRU",
    "Embedding",
    "BatchNormalization",
    "MultiHeadAttention",
)


def files_naming(kind: str) -> list[str]:
    """Production files that name ``kind`` as a quoted string (the kind itself, not a longer name)."""
    quoted = (f'"{kind}"', f"'{kind}'")
    return [
        str(path.relative_to(ROOT))
        for path in modules("studio", "codegen", "widgets")
        if any(text in path.read_text(encoding="utf-8") for text in quoted)
    ]


@pytest.mark.parametrize("kind", KINDS_IN_ONE_PLACE)
def test_a_kind_is_named_in_at_most_three_production_files(kind):
    files = files_naming(kind)
    assert len(files) <= 3, f"{kind} is named in {len(files)} files: {files}"


def test_every_catalog_kind_has_a_lowering():
    from codegen.layers import LOWERINGS
    from studio.catalog import CATALOG

    kinds = {spec.key for spec in CATALOG if not spec.is_source}
    assert kinds == set(LOWERINGS.kinds)
