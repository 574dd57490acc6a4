"""Export a project *with its weights*: framework weight files and the deployment formats.

Every model here is built from the generated program (``codegen.generate``
then ``codegen.runtime.load_module``), the very code the user exports, and
its weights are Keras-layout arrays by layer name (see
:mod:`studio.interop.weights_file`), from one of:

- the project's weights file, or any ``.npz`` of that layout;
- a run's weights (:func:`read_run_weights`): a ``.keras`` model or a Keras
  checkpoint (``checkpoint.npz``), a PyTorch ``state_dict`` or checkpoint
  (``.pt``, converted back to Keras layout by :func:`codegen.weights.torch_to_keras_weights`);
- a seeded initialisation (:func:`seeded_weights`): Keras's initialisers.

- :func:`export_weights`: ``"pytorch"`` writes a ``state_dict`` (``.pt``) for
  ``build_model()`` + ``model.load_state_dict(torch.load(path, weights_only=True))``;
  ``"keras"`` writes ``*.weights.h5`` for ``build_model()`` + ``model.load_weights(path)``.
- :func:`export_model`: every deployment format of :mod:`codegen.deploy` (keras, pytorch,
  onnx, pt2, litert, savedmodel), each loaded back in its runtime and compared first.

Each file is written atomically: to a temporary file beside it, then renamed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from studio.files import MODEL_LIMIT, check_regular_file, limit, staged_output
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


# ----- where the weights come from -------------------------------------------------------


def seeded_weights(project: Project, seed: int = 0) -> dict[str, list[np.ndarray]]:
    """Keras's own initialisation of the generated model, seeded: weights by layer name."""
    from codegen.runtime import load_module

    keras = import_keras()
    code = _generate(project, "keras")
    keras.utils.set_random_seed(seed)
    model = load_module(code.source, code.filename[:-3]).build_model()
    return _keras_layer_weights(code.plan, model)


def _keras_layer_weights(plan, model) -> dict[str, list[np.ndarray]]:
    result = {}
    for layer in plan.layers:
        if not layer.spec.is_source:
            arrays = model.get_layer(layer.ident).get_weights()
            if arrays:
                result[layer.node.name] = [np.asarray(array) for array in arrays]
    return result


def read_run_weights(project: Project, path: str | os.PathLike) -> dict[str, list[np.ndarray]]:
    """The weights a training run saved, by layer name in Keras layout: ``final.keras`` (or any
    ``.keras``), a Keras ``checkpoint.npz``, a PyTorch ``.pt`` state_dict or ``checkpoint.pt``.
    Raises WeightsError when the file cannot be read or does not fit the project."""
    path = Path(path)
    try:
        check_regular_file(path, limit(MODEL_LIMIT))
    except OSError as error:
        raise WeightsError(f"cannot read the weights {path}: {error.strerror or error}") from None
    if path.suffix == ".pt":
        return _torch_run_weights(project, path)
    from codegen.runtime import load_module

    import_keras()
    code = _generate(project, "keras")
    model = load_module(code.source, code.filename[:-3]).build_model()
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:  # a Keras run's resume checkpoint
                count = len(model.get_weights())
                model.set_weights([data[f"weight_{index}"] for index in range(count)])
        else:
            model.load_weights(str(path))
    except Exception as error:  # noqa: BLE001 - Keras and h5py raise many kinds for a bad file
        raise WeightsError(f"the weights {path} do not fit the project: {_first_line(error)}") from None
    return _keras_layer_weights(code.plan, model)


def _torch_run_weights(project: Project, path: Path) -> dict[str, list[np.ndarray]]:
    from codegen.runtime import load_module
    from codegen.weights import torch_to_keras_weights

    torch = import_torch()
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - torch raises many kinds for a bad or pickled file
        raise WeightsError(
            f"cannot read the PyTorch weights {path}: not a state_dict of plain tensors (nothing is unpickled)"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]  # a resume checkpoint: the model's state beside the optimizer's
    code = _generate(project, "pytorch")
    model = load_module(code.source, code.filename[:-3]).build_model()
    try:
        model.load_state_dict(state, strict=True)  # checks every key and shape
    except (RuntimeError, TypeError, AttributeError) as error:
        raise WeightsError(f"the weights {path} do not fit the project: {_first_line(error)}") from None
    numpy_state = {key: value.detach().numpy() for key, value in model.state_dict().items()}
    shapes = _keras_weight_shapes(project)
    try:
        by_ident = torch_to_keras_weights(code.plan, numpy_state, shapes)
    except ValueError as error:
        raise WeightsError(f"the weights {path}: {error}") from None
    return {layer.node.name: by_ident[layer.ident] for layer in code.plan.layers if layer.ident in by_ident}


def _keras_weight_shapes(project: Project) -> dict[str, list[tuple]]:
    from codegen.runtime import load_module

    import_keras()
    code = _generate(project, "keras")
    model = load_module(code.source, code.filename[:-3]).build_model()
    return {
        layer.ident: [tuple(weight.shape) for weight in model.get_layer(layer.ident).weights]
        for layer in code.plan.layers
        if not layer.spec.is_source
    }


def _first_line(error: BaseException) -> str:
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


# ----- deployment formats -----------------------------------------------------------------


def export_model(project: Project, fmt: str, weights: WeightsSource, out_path: str | os.PathLike):
    """Write the model with ``weights`` in the deployment format ``fmt`` (see codegen.deploy), after
    loading the file back in its runtime and comparing it with the model; a DeployReport.

    Raises InteropError (the format or the check failed), WeightsError, or OSError.
    """
    from codegen.deploy import FORMATS, DeployError, deploy
    from codegen.runtime import load_module

    if fmt not in FORMATS:
        raise InteropError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "keras" and Path(out_path).suffix != ".keras":  # Keras loads nothing else as a model
        raise InteropError(f"a Keras model file must end in .keras. Received: {Path(out_path).name}")
    framework = FORMATS[fmt].framework
    code = _generate(project, framework)
    if framework == "keras":
        model = build_keras_model(project, weights)
        build = None
    else:
        model = build_torch_model(project, weights)
        module = load_module(code.source, code.filename[:-3])
        build = module.build_model
    try:
        return deploy(fmt, code.plan, model, out_path, build=build)
    except DeployError as error:
        raise InteropError(str(error)) from None
