"""Export a project *with its weights*: framework weight files and trained-model formats.

Every model here is built from the generated program (``codegen.generate``
then ``codegen.verify.load_module``), the very code the user exports, and
its weights come from the project's weights file (Keras layout, see
:mod:`studio.interop.weights_file`):

- :func:`export_weights`: ``"pytorch"`` writes a ``state_dict`` (``.pt``) for
  ``build_model()`` + ``model.load_state_dict(torch.load(path, weights_only=True))``;
  ``"keras"`` writes ``*.weights.h5`` for ``build_model()`` + ``model.load_weights(path)``.
- :func:`export_keras_model`: a whole ``.keras`` model (``model.save``).
- :func:`export_torchscript`: ``torch.jit.trace`` of the PyTorch model, ``torch.jit.save``.
- :func:`export_onnx`: ``torch.onnx.export(dynamo=False)`` of the PyTorch model, then
  checked under onnxruntime against the PyTorch outputs.

Each file is written atomically: to a temporary file beside it, then renamed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from studio.files import staged_output
from studio.interop.errors import InteropError, WeightsError
from studio.interop.frameworks import import_keras, import_torch
from studio.interop.weights_file import load_weights, write_atomic
from studio.project import FRAMEWORKS, Project

TOLERANCE = 1e-4
WeightsSource = Mapping[str, Sequence[np.ndarray]] | str | os.PathLike


def _weights(weights: WeightsSource) -> Mapping[str, Sequence[np.ndarray]]:
    if isinstance(weights, (str, os.PathLike)):
        return load_weights(weights)
    return weights


def _generate(project: Project, framework: str):
    from codegen import CodegenError, generate

    try:
        return generate(project, framework)
    except CodegenError as error:
        raise InteropError(f"the project cannot be exported: {error}") from None


def layer_weights(plan, weights: Mapping[str, Sequence[np.ndarray]]) -> dict[str, list[np.ndarray]]:
    """The weights of every layer of ``plan`` that has any, keyed by its code identifier."""
    result, missing, wrong = {}, [], []
    for layer in plan.layers:
        expected = plan.analysis.params[layer.id].total
        if layer.spec.is_source or expected == 0:
            continue
        arrays = weights.get(layer.node.name)
        if arrays is None:
            missing.append(layer.node.name)
            continue
        found = int(sum(np.asarray(array).size for array in arrays))
        if found != expected:
            wrong.append(f"'{layer.node.name}' has {found:,} values, its {layer.kind} needs {expected:,}")
            continue
        result[layer.ident] = [np.asarray(array, dtype=np.float32) for array in arrays]
    problems = []
    if missing:
        problems.append("no weights for " + ", ".join(f"'{name}'" for name in missing))
    problems += wrong
    if problems:
        raise WeightsError("the weights do not fit the project: " + "; ".join(problems))
    return result


# ----- building models ------------------------------------------------------------------


def build_keras_model(project: Project, weights: WeightsSource):
    """The generated Keras model, with ``weights`` set layer by layer."""
    from codegen.runtime import load_module

    import_keras()
    code = _generate(project, "keras")
    model = load_module(code.source, code.filename[:-3]).build_model()
    for ident, arrays in layer_weights(code.plan, _weights(weights)).items():
        try:
            layer = model.get_layer(ident)
            layer.set_weights(arrays)
            if hasattr(layer, "finalize_state"):  # Normalization reads its statistics when they are loaded
                layer.finalize_state()
        except ValueError as error:
            shapes = [tuple(array.shape) for array in arrays]
            raise WeightsError(f"layer '{ident}': weights of shapes {shapes} do not fit ({error})") from None
    return model


def build_torch_model(project: Project, weights: WeightsSource):
    """The generated PyTorch model in eval mode, with ``weights`` converted and loaded."""
    from codegen.runtime import load_module
    from codegen.weights import keras_to_torch_state, load_torch_state

    import_torch()
    code = _generate(project, "pytorch")
    model = load_module(code.source, code.filename[:-3]).build_model()
    try:
        converted = keras_to_torch_state(code.plan, layer_weights(code.plan, _weights(weights)))
    except ValueError as error:
        raise WeightsError(f"the weights do not fit the project: {error}") from None
    try:
        load_torch_state(model, converted)
    except (ValueError, RuntimeError) as error:  # unmapped keys, or shapes that do not fit
        raise WeightsError(f"the weights do not fit the PyTorch model: {error}") from None
    return model.eval()


# ----- weight files ---------------------------------------------------------------------


def export_weights(
    project: Project, framework: str, weights_path: WeightsSource, out_path: str | os.PathLike
) -> Path:
    """Write the framework's own weights file for the generated program (see the module doc)."""
    out_path = Path(out_path)
    if framework == "pytorch":
        torch = import_torch()
        model = build_torch_model(project, weights_path)
        state = {key: value.detach().clone() for key, value in model.state_dict().items()}
        write_atomic(out_path, lambda handle: torch.save(state, handle))
    elif framework == "keras":
        if not out_path.name.endswith(".weights.h5"):
            raise InteropError(f"Keras weights files must end in .weights.h5. Received: {out_path.name}")
        model = build_keras_model(project, weights_path)
        _save_via_temp(out_path, ".weights.h5", model.save_weights)
    else:
        raise ValueError(f"unknown framework {framework!r}; expected one of {', '.join(FRAMEWORKS)}")
    return out_path


def _save_via_temp(out_path: Path, suffix: str, save) -> None:
    """``save(temp_path)`` for savers that need a path with a given suffix, then commit it (studio.files)."""
    with staged_output(out_path, suffix) as temp:
        temp.unlink()  # some savers refuse to overwrite, or append to, an existing file
        save(str(temp))


# ----- trained-model formats ------------------------------------------------------------


def export_keras_model(project: Project, weights: WeightsSource, out_path: str | os.PathLike) -> Path:
    """A complete ``.keras`` model (architecture and weights), loadable with ``keras.saving.load_model``."""
    out_path = Path(out_path)
    if out_path.suffix != ".keras":
        raise InteropError(f"a Keras model file must end in .keras. Received: {out_path.name}")
    model = build_keras_model(project, weights)
    _save_via_temp(out_path, ".keras", model.save)
    return out_path


def example_inputs(project: Project, batch: int = 2, seed: int = 0) -> tuple[list[np.ndarray], list]:
    """A random batch for the project: (Keras-layout arrays, PyTorch tensors)."""
    from codegen.plan import build_plan
    from codegen.runtime import to_torch_layout
    from codegen.verify import random_inputs

    torch = import_torch()
    plan = build_plan(project)
    arrays = random_inputs(plan, batch, np.random.default_rng(seed))
    tensors = [
        torch.from_numpy(to_torch_layout(array, layer.layout))
        for array, layer in zip(arrays, plan.inputs, strict=True)
    ]
    return arrays, tensors


def export_torchscript(project: Project, weights: WeightsSource, out_path: str | os.PathLike) -> Path:
    """TorchScript (``torch.jit.trace`` of the generated model), loadable with ``torch.jit.load``."""
    torch = import_torch()
    out_path = Path(out_path)
    model = build_torch_model(project, weights)
    _, tensors = example_inputs(project)
    # Traced with gradients enabled: in no-grad inference mode, PyTorch's attention takes a fused
    # fast path whose traced form the ONNX exporter cannot convert.
    # torch's own trace check runs without gradients, where attention takes the fast path and
    # the graphs differ by design; the outputs are compared here instead.
    traced = torch.jit.trace(model, tuple(tensors), check_trace=False)
    difference = _largest_difference(_as_arrays(traced(*tensors)), _as_arrays(model(*tensors)))
    if difference > TOLERANCE:
        raise InteropError(f"the traced TorchScript model differs from the PyTorch model by {difference:.3g}")
    write_atomic(out_path, lambda handle: torch.jit.save(traced, handle))
    return out_path


def _as_arrays(outputs) -> list[np.ndarray]:
    items = outputs if isinstance(outputs, (tuple, list)) else [outputs]
    return [item.detach().numpy() for item in items]


def _largest_difference(got: list[np.ndarray], want: list[np.ndarray]) -> float:
    """The largest absolute difference, relative to the largest output when that exceeds 1."""
    worst = 0.0
    for a, b in zip(got, want, strict=True):
        if b.size:
            scale = max(1.0, float(np.max(np.abs(b))))
            worst = max(worst, float(np.max(np.abs(a - b))) / scale)
    return worst


def export_onnx(
    project: Project, weights: WeightsSource, out_path: str | os.PathLike, opset: int = 17
) -> float:
    """ONNX from the PyTorch model; returns the largest difference to PyTorch under onnxruntime.

    Raises InteropError when onnxruntime's outputs differ from PyTorch's by more
    than 1e-4 (absolute, or relative to the largest output).
    """
    torch = import_torch()
    from codegen.plan import build_plan

    out_path = Path(out_path)
    plan = build_plan(project)
    model = build_torch_model(project, weights)
    _, tensors = example_inputs(project)
    input_names = [layer.ident for layer in plan.inputs]
    output_names = [f"{layer.ident}_output" for layer in plan.outputs]
    dynamic = {name: {0: "batch"} for name in input_names + output_names}

    def save(path: str) -> None:
        # Gradients stay enabled: see export_torchscript (attention's fused fast path).
        torch.onnx.export(
            model,
            tuple(tensors),
            path,
            dynamo=False,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic,
            opset_version=opset,
        )

    with staged_output(out_path, ".onnx") as temp:  # checked before it replaces anything
        temp.unlink()
        save(str(temp))
        expected = _as_arrays(model(*tensors))
        difference = _onnxruntime_difference(temp, input_names, tensors, expected)
        if difference > TOLERANCE:
            raise InteropError(
                f"the ONNX export differs from the PyTorch model under onnxruntime by {difference:.3g}; "
                "not written"
            )
    return difference


def _onnxruntime_difference(path: Path, names: list[str], tensors: list, expected: list[np.ndarray]) -> float:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {name: tensor.numpy() for name, tensor in zip(names, tensors, strict=True)}
    return _largest_difference(session.run(None, feeds), expected)
