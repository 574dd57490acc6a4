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

import importlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
        "export_keras_model",
        "export_onnx",
        "export_torchscript",
        "export_weights",
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
    no arguments). ``input_shapes`` (PyTorch only) are channels-first, without the
    batch, e.g. ``[(3, 224, 224)]``. ``state_dict`` (PyTorch only) is loaded with
    ``torch.load(weights_only=True)``.
    """
    target = split_python_target(str(source))
    if target is not None:
        from studio.interop.torch_import import import_torch_module

        path, entry = target
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
    if suffix in KERAS_SUFFIXES:
        from studio.interop.keras_import import import_keras_file

        return import_keras_file(path, with_weights=with_weights, name=name)
    if suffix == ".onnx":
        from studio.interop.onnx_import import import_onnx_file

        return import_onnx_file(path, with_weights=with_weights, name=name)
    raise ModelFileError(
        f"{path}: unknown model format {suffix or '(no extension)'!r}; expected .keras, .h5, .json, .onnx "
        "or file.py:ModelName"
    )


def save_imported(imported: ImportedModel, project_path: str | os.PathLike) -> tuple[Path, Path | None]:
    """Write the project and, when present, its weights beside it; returns both paths.

    The weights go first, then the project (each atomically); if the project
    cannot be written, the new weights file is removed again.
    """
    from studio.interop.weights_file import save_weights, weights_path_for
    from studio.project import save_project

    project_path = Path(project_path)
    weights_path = None
    if imported.weights is not None:
        weights_path = weights_path_for(project_path)
        save_weights(imported.weights, weights_path)
    try:
        save_project(imported.project, project_path)
    except BaseException:
        if weights_path is not None:
            weights_path.unlink(missing_ok=True)
        raise
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
    "export_keras_model",
    "export_onnx",
    "export_torchscript",
    "export_weights",
    "import_model",
    "load_weights",
    "save_imported",
    "save_weights",
    "split_python_target",
    "weights_path_for",
]
