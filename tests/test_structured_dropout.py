"""Structured dropout trains alike in both generated programs (inference is the identity in both).

Each framework draws its own random numbers, so the masks cannot be compared value by value;
instead each program's training-mode output of a batch of ones is checked for the same mask
structure (what one draw covers: a value, a channel of a sample, a sample, the whole batch),
the same scaling (kept values are 1 / (1 - rate)) and the same drop rate, statistically.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import codegen
from codegen.layers.base import CF
from codegen.runtime import load_module
from tests.graph_builders import chain

RATE = 0.25
BATCH = 128

# mask -> the input shape (batch excluded) and the axes one draw covers (besides none).
CASES = {
    "element-image": ("element", (4, 5, 6)),
    "channel-image": ("channel", (4, 5, 6)),
    "channel-sequence": ("channel", (7, 6)),
    "channel-volume": ("channel", (3, 2, 4, 5)),
    "sample-image": ("sample", (4, 5, 6)),
    "sample-vector": ("sample", (6,)),
    "batch-sequence": ("batch", (7, 6)),
}


def programs(mask: str, shape: tuple[int, ...]):
    """The Keras model and the PyTorch model (and its output layout) of Input -> Dropout."""
    project = chain(list(shape), ("Dropout", {"rate": RATE, "mask": mask}))
    keras_code = codegen.generate(project, "keras")
    torch_code = codegen.generate(project, "pytorch")
    keras_model = load_module(keras_code.source, "dropout_keras").build_model()
    torch_model = load_module(torch_code.source, "dropout_torch").build_model()
    return keras_model, torch_model, torch_code.plan


def training_outputs(mask: str, shape: tuple[int, ...], calls: int = 1) -> dict[str, list[np.ndarray]]:
    """Each program's training-mode outputs for a batch of ones, channels-last."""
    keras_model, torch_model, plan = programs(mask, shape)
    ones = np.ones((BATCH, *shape), np.float32)
    input_cf = plan.inputs[0].layout.kind == CF and len(shape) >= 2
    torch_input = torch.from_numpy(np.moveaxis(ones, -1, 1).copy() if input_cf else ones)
    output_cf = plan.outputs[0].layout.kind == CF and len(shape) >= 2

    def run_torch() -> np.ndarray:
        with torch.no_grad():
            result = torch_model(torch_input).numpy()
        return np.moveaxis(result, 1, -1) if output_cf else result

    torch_model.train()
    outputs: dict[str, list[np.ndarray]] = {"keras": [], "pytorch": []}
    for _ in range(calls):
        outputs["keras"].append(np.asarray(keras_model(ones, training=True)))
        outputs["pytorch"].append(run_torch())
    # At inference both are the identity.
    assert np.array_equal(np.asarray(keras_model(ones, training=False)), ones)
    torch_model.eval()
    assert np.array_equal(run_torch(), ones)
    return outputs


def draws(output: np.ndarray, mask: str) -> np.ndarray:
    """The independent draws in one output, after checking that each draw covers its whole block."""
    if mask == "element":
        return output.reshape(-1)
    if mask == "channel":  # one draw per sample and channel: constant over the spatial axes
        block = output[:, *([slice(0, 1)] * (output.ndim - 2)), :]
    elif mask == "sample":
        block = output.reshape(len(output), -1)[:, :1]
    else:
        block = output.reshape(-1)[:1]
    assert np.array_equal(
        np.broadcast_to(block.reshape(_keep_shape(block, output, mask)), output.shape), output
    )
    return block.reshape(-1)


def _keep_shape(block: np.ndarray, output: np.ndarray, mask: str) -> tuple[int, ...]:
    if mask == "sample":
        return (len(output),) + (1,) * (output.ndim - 1)
    if mask == "batch":
        return (1,) * output.ndim
    return block.shape


@pytest.mark.parametrize(
    "case",
    # One draw per call for the whole batch: 200 calls of each program for the rate.
    [
        pytest.param(case, marks=[pytest.mark.slow] if case.startswith("batch") else [])
        for case in sorted(CASES)
    ],
)
def test_training_masks_have_the_same_structure_scaling_and_rate(case):
    mask, shape = CASES[case]
    calls = 200 if mask == "batch" else 1
    for framework, outputs in training_outputs(mask, shape, calls).items():
        values = np.concatenate([draws(output, mask) for output in outputs])
        kept = values[values != 0]
        assert np.allclose(kept, 1 / (1 - RATE), rtol=1e-6), framework  # inverted dropout's scaling
        dropped = 1 - len(kept) / len(values)
        sigma = math.sqrt(RATE * (1 - RATE) / len(values))
        assert abs(dropped - RATE) < 5 * sigma, (framework, dropped, len(values))
        if mask != "element":  # a structured mask is not element-wise: the blocks hold several values
            assert len(values) < outputs[0].size * len(outputs)
