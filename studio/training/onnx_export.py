"""ONNX export of the generated PyTorch model (a Keras run's weights are converted into it first)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from codegen import GeneratedCode
from codegen.plan import CF, ModelPlan
from codegen.runtime import load_module
from codegen.weights import load_torch_state
from studio.training.rundir import atomic_target

OPSET = 17


def torch_model_with_state(code: GeneratedCode, state: dict[str, np.ndarray]):
    """The generated PyTorch model with ``state`` (numpy arrays by state_dict key) loaded."""
    model = load_module(code.source, code.filename[:-3]).build_model()
    load_torch_state(model, state)
    return model


def example_inputs(torch, plan: ModelPlan, batch: int = 2) -> tuple[Any, ...]:
    """Zero inputs in PyTorch's layout: channels-first images, int64 token ids."""
    inputs = []
    for layer in plan.inputs:
        shape = tuple(layer.shape)
        if layer.layout.kind == CF and len(shape) >= 2:
            shape = (shape[-1], *shape[:-1])
        dtype = torch.int64 if layer.params["dtype"] == "int32" else torch.float32
        inputs.append(torch.zeros((batch, *shape), dtype=dtype))
    return tuple(inputs)


def export_onnx(torch, model, plan: ModelPlan, path: Path) -> None:
    """Write ``model`` (moved to the CPU, in eval mode) to ``path`` with a dynamic batch axis."""
    model = model.to("cpu").eval()
    input_names = [layer.ident for layer in plan.inputs]
    output_names = [layer.ident for layer in plan.outputs]
    dynamic = {name: {0: "batch"} for name in input_names + output_names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is deprecated
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        with atomic_target(Path(path)) as temp, torch.no_grad():
            torch.onnx.export(
                model,
                example_inputs(torch, plan),
                str(temp),
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=dynamic,
                opset_version=OPSET,
                dynamo=False,
            )
