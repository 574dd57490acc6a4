"""Model interop: import Keras, ONNX and PyTorch models as projects; export projects with weights.

    from studio.interop import import_model, save_imported, export_weights

    imported = import_model("resnet.keras")               # ImportedModel: project + Keras-layout weights
    save_imported(imported, "resnet.layers.json")         # + resnet.weights.npz beside it
    export_weights(imported.project, "pytorch", "resnet.weights.npz", "resnet.pt")

    import_model("net.onnx")
    import_model("model.py:ResNet18", input_shapes=[(3, 224, 224)], allow_code=True)

Importing never runs code from a model file: Keras files load in safe mode,
ONNX files are only parsed, weights load without pickle. A PyTorch model is
Python code, so it is imported only with ``allow_code=True`` (the CLI's
``--allow-code``). A model that the catalog cannot express raises one
:class:`UnsupportedModelError` listing every unsupported layer.

The frameworks are imported inside the functions that need them.
"""

from __future__ import annotations

import errno
import importlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.files import (
    MODEL_LIMIT,
    PROJECT_LIMIT,
    NotRegularFileError,
    StagedOutput,
    check_regular_file,
    check_zip_declared_sizes,
    commit_all,
    limit,
    too_large,
    zip_members,
)

if TYPE_CHECKING:
    from studio.interop.builder import ImportedModel

# The public names of the submodules, imported on first use (PEP 562), so that
# importing the package (as `studio --help` does, for the import command's
# options) does not load numpy, networkx and codegen.
_LAZY = {
    "studio.interop.builder": ("ImportedModel", "TensorInfo"),
    "studio.interop.errors": (
        "CodeExecutionRefused",
        "InteropError",
        "ModelFileError",
        "UnsupportedLayer",
        "UnsupportedModelError",
        "WeightsError",
    ),
    "studio.interop.export": (
        "build_keras_model",
        "build_torch_model",
        "export_model",
        "export_weights",
        "read_run_weights",
        "seeded_weights",
    ),
    "studio.interop.weights_file": ("load_weights", "save_weights", "weights_path_for"),
}
_HOME = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


KERAS_SUFFIXES = (".keras", ".h5", ".hdf5", ".json")


def split_python_target(spec: str) -> tuple[Path, str] | None:
    """``"model.py:ResNet18"`` -> ``(Path("model.py"), "ResNet18")``; None when ``spec`` is not of that form."""
    head, colon, tail = str(spec).rpartition(":")
    if colon and head.endswith(".py") and tail.isidentifier():
        return Path(head), tail
    return None


def import_model(
    source: str | os.PathLike,
    *,
    with_weights: bool = True,
    name: str | None = None,
    input_shapes: Sequence[Sequence[int]] | None = None,
    allow_code: bool = False,
    state_dict: str | os.PathLike | None = None,
) -> ImportedModel:
    """Import a model file as a project; the format follows the file name.

    ``source``: ``*.keras``, ``*.h5``, ``*.json`` (Keras), ``*.onnx``, or ``file.py:Name``
    (PyTorch: an ``nn.Module`` class or a function returning a module, built with
    no arguments). ``input_shapes`` are without the batch: for PyTorch, channels-first,
    e.g. ``[(3, 224, 224)]``; for Keras, as Keras has them, giving the sizes a model leaves
    unknown (``None``), e.g. ``[(128,)]`` for a token sequence. ``state_dict`` (PyTorch only) is loaded with
    ``torch.load(weights_only=True)``.
    """
    target = split_python_target(str(source))
    if target is not None:
        from studio.interop.torch_import import import_torch_module

        path, entry = target
        _check_input_file(path, limit(PROJECT_LIMIT))
        if state_dict is not None:
            _check_input_file(Path(state_dict), limit(MODEL_LIMIT))
        return import_torch_module(
            path,
            entry,
            input_shapes=input_shapes,
            allow_code=allow_code,
            with_weights=with_weights,
            name=name,
            state_dict=state_dict,
        )
    path = Path(source)
    suffix = path.suffix.lower()
    from studio.interop.errors import ModelFileError

    if suffix == ".py":
        raise ModelFileError(f"{path}: name the model class or function too, e.g. {path}:MyModel")
    if suffix in KERAS_SUFFIXES or suffix == ".onnx":
        check_model_file(path)
    if suffix in KERAS_SUFFIXES:
        from studio.interop.keras_import import import_keras_file

        return import_keras_file(path, with_weights=with_weights, name=name, input_shapes=input_shapes)
    if suffix == ".onnx":
        from studio.interop.onnx_import import import_onnx_file

        return import_onnx_file(path, with_weights=with_weights, name=name)
    raise ModelFileError(
        f"{path}: unknown model format {suffix or '(no extension)'!r}; expected .keras, .h5, .json, .onnx "
        "or file.py:ModelName"
    )


def check_model_file(path: Path) -> None:
    """Refuse, before any loader opens it, a model file that is not a regular file or is too large.

    A ``.keras`` archive is checked member by member from its directory (never inflated):
    ``config.json`` may unpack to at most the project limit, every member to the model limit.
    """
    from studio.interop.errors import ModelFileError

    suffix = path.suffix.lower()
    try:
        check_regular_file(path, limit(PROJECT_LIMIT if suffix == ".json" else MODEL_LIMIT))
        if suffix == ".keras":
            check_zip_declared_sizes(path, limit(MODEL_LIMIT))
            _check_keras_config_size(path)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    except OSError as error:
        raise ModelFileError(f"{path}: cannot be read ({error.strerror or error})") from None


def _check_input_file(path: Path, maximum: int) -> None:
    """ModelFileError unless ``path`` is a regular file of at most ``maximum`` bytes."""
    from studio.interop.errors import ModelFileError

    try:
        check_regular_file(path, maximum)
    except FileNotFoundError:
        return  # the importer names a missing file itself
    except OSError as error:
        raise ModelFileError(f"{path}: cannot be read ({error.strerror or error})") from None


def _check_keras_config_size(path: Path) -> None:
    for info in zip_members(path):
        if info.filename.endswith(".json") and info.file_size > limit(PROJECT_LIMIT):
            raise too_large(f"member {info.filename!r} unpacks to", info.file_size, limit(PROJECT_LIMIT))


def save_imported(imported: ImportedModel, project_path: str | os.PathLike) -> tuple[Path, Path | None]:
    """Write the project and, when present, its weights beside it; returns both paths.

    Both are written to temporary files first; only when both are whole do they replace
    the old files, as one change: a failure at any step leaves the existing files as they were.
    """
    from studio.interop.weights_file import save_weights, weights_path_for
    from studio.project import dumps_project

    project_path = Path(project_path)
    text = dumps_project(imported.project)  # refuses what loading would refuse, before any write
    weights_path = weights_path_for(project_path) if imported.weights is not None else None
    staged: list[StagedOutput] = []
    try:
        staged.append(StagedOutput(project_path))
        if weights_path is not None and staged[0].through:
            raise NotRegularFileError(
                errno.EINVAL,
                "the weights file goes beside the project, which needs a regular file; "
                "write the project to a file, or leave out --weights",
            )
        if weights_path is not None:
            staged.append(StagedOutput(weights_path, ".npz"))
            save_weights(imported.weights, staged[-1].temp)
        staged[0].temp.write_bytes(text.encode("utf-8"))
    except BaseException:
        for output in staged:
            output.discard()
        raise
    commit_all(staged)
    return project_path, weights_path


__all__ = [
    "CodeExecutionRefused",
    "ImportedModel",
    "InteropError",
    "ModelFileError",
    "TensorInfo",
    "UnsupportedLayer",
    "UnsupportedModelError",
    "WeightsError",
    "build_keras_model",
    "build_torch_model",
    "export_model",
    "export_weights",
    "import_model",
    "load_weights",
    "read_run_weights",
    "save_imported",
    "seeded_weights",
    "save_weights",
    "split_python_target",
    "weights_path_for",
]
