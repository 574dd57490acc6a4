"""Proof that an import reproduces its source: run the exported programs and compare outputs.

The source model's inputs and outputs are in the source's layout (an ONNX
or PyTorch image is channels-first); :class:`TensorInfo` says which, and the
helpers here move the channels where the project (channels-last) has them.

:func:`run_exported` builds a model the way a user would: the generated
program's ``build_model()``, then the framework's own weights file written by
:func:`studio.interop.export_weights` (``load_state_dict(torch.load(path,
weights_only=True))`` or ``load_weights(path)``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from studio.interop.builder import ImportedModel, TensorInfo
from studio.interop.export import export_weights
from studio.interop.frameworks import import_keras, import_torch
from studio.project import FRAMEWORKS, Project

TOLERANCE = 1e-4


def difference(got: np.ndarray, want: np.ndarray) -> float:
    """``max |got - want|``, relative to ``max |want|`` when that exceeds 1 (the 1e-4 criterion)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return float("inf")
    if not want.size:
        return 0.0
    return float(np.max(np.abs(got - want))) / max(1.0, float(np.max(np.abs(want))))


def to_project_layout(array: np.ndarray, info: TensorInfo) -> np.ndarray:
    """A source tensor in the project's (Keras, channels-last) layout."""
    array = np.asarray(array)
    if info.channels_first and array.ndim >= 3:
        return np.ascontiguousarray(np.moveaxis(array, 1, -1))
    return array


def run_exported(
    project: Project, framework: str, weights_file: str | os.PathLike, inputs: Sequence[np.ndarray]
) -> dict[str, np.ndarray]:
    """Outputs (Keras layout, by output layer name) of the generated program with exported weights.

    ``inputs``: Keras layout, in the order of the project's Input layers.
    """
    from codegen import generate
    from codegen.runtime import load_module, to_keras_layout, to_torch_layout

    code = generate(project, framework)
    plan = code.plan
    module = load_module(code.source, code.filename[:-3])
    model = module.build_model()
    names = [layer.node.name for layer in plan.outputs]
    if framework == "keras":
        import_keras()
        model.load_weights(str(weights_file))
        outputs = model(list(inputs) if len(inputs) > 1 else inputs[0], training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return {name: np.asarray(output) for name, output in zip(names, outputs, strict=True)}
    torch = import_torch()
    model.load_state_dict(torch.load(weights_file, weights_only=True))
    model.eval()
    tensors = [
        torch.from_numpy(to_torch_layout(np.asarray(array), layer.layout))
        for array, layer in zip(inputs, plan.inputs, strict=True)
    ]
    with torch.no_grad():
        outputs = model(*tensors)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return {
        name: to_keras_layout(output.numpy(), layer.layout)
        for name, output, layer in zip(names, outputs, plan.outputs, strict=True)
    }


def reproduction_errors(
    imported: ImportedModel,
    weights_npz: str | os.PathLike,
    source_inputs: Sequence[np.ndarray],
    source_outputs: Sequence[np.ndarray],
    folder: str | os.PathLike,
    frameworks: Sequence[str] = FRAMEWORKS,
) -> dict[str, float]:
    """Export the weights for each framework into ``folder``, run, and return the worst difference each.

    ``source_inputs`` / ``source_outputs``: as the source model takes and gives them,
    in the order of ``imported.inputs`` / ``imported.outputs``.
    """
    from codegen.plan import build_plan

    plan = build_plan(imported.project)
    by_layer = {
        info.layer: to_project_layout(array, info)
        for info, array in zip(imported.inputs, source_inputs, strict=True)
    }
    inputs = [by_layer[layer.node.name] for layer in plan.inputs]
    errors = {}
    for framework in frameworks:
        suffix = ".weights.h5" if framework == "keras" else ".pt"
        stem = re.sub(r"\W+", "_", imported.project.name) or "model"
        weights_file = Path(folder) / f"{stem}-{framework}{suffix}"
        export_weights(imported.project, framework, weights_npz, weights_file)
        outputs = run_exported(imported.project, framework, weights_file, inputs)
        errors[framework] = max(
            difference(outputs[info.layer], to_project_layout(want, info))
            for info, want in zip(imported.outputs, source_outputs, strict=True)
        )
    return errors
