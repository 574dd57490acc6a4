"""The engine's optimizers and losses are the exported scripts' ones, and agree across frameworks."""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import torch  # noqa: E402

from codegen import recipes  # noqa: E402
from studio.project import LOSSES, OPTIMIZERS  # noqa: E402

LR = 0.03


def _script_keras(expression: str):
    """Evaluate one of codegen.recipes's expressions as the generated script would."""
    return eval(expression, {"keras": keras, "args": SimpleNamespace(lr=LR)})  # our own constant table


def _script_torch(expression: str, model):
    return eval(expression, {"torch": torch, "nn": torch.nn, "model": model, "args": SimpleNamespace(lr=LR)})


def _without_name(config: dict) -> dict:
    return {key: value for key, value in config.items() if key != "name"}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_keras_optimizers_match_the_generated_scripts(name):
    ours = recipes.keras_optimizer(keras, name, LR).get_config()
    script = _script_keras(recipes.keras_optimizer_source(name)).get_config()
    assert _without_name(ours) == _without_name(script)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_torch_optimizers_match_the_generated_scripts(name):
    model = torch.nn.Linear(3, 2)
    ours = recipes.torch_optimizer(torch, name, model.parameters(), LR)
    script = _script_torch(recipes.torch_optimizer_source(name), model)
    assert type(ours) is type(script)
    assert ours.defaults == script.defaults


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("logits", [True, False])
def test_keras_losses_match_the_generated_scripts(loss, logits):
    ours = recipes.keras_loss(keras, loss, logits)
    script = _script_keras(recipes.keras_loss_source(loss, logits))
    assert type(ours) is type(script)
    assert _without_name(ours.get_config()) == _without_name(script.get_config())


@pytest.mark.parametrize("loss", LOSSES)
def test_torch_logit_losses_match_the_generated_scripts(loss):
    """On (N, C) outputs the channels-last loss is the script's loss."""
    rng = np.random.default_rng(0)
    output = torch.from_numpy(rng.standard_normal((6, 3)).astype(np.float32))
    if loss == "cross_entropy":
        target = torch.from_numpy(rng.integers(0, 3, 6))
    else:
        target = torch.from_numpy(rng.uniform(0, 1, (6, 3)).astype(np.float32))
    ours = recipes.torch_loss(torch, loss, logits=True)(output, target)
    script = _script_torch(recipes.torch_loss_source(loss), None)(output, target)
    assert ours.item() == pytest.approx(script.item(), rel=1e-6)


CASES = [
    ("cross_entropy", True, (5, 4)),
    ("cross_entropy", False, (5, 4)),
    ("cross_entropy", True, (5, 3, 4)),  # class scores per sequence step
    ("binary_cross_entropy", True, (5, 1)),
    ("binary_cross_entropy", False, (5, 1)),
    ("mse", True, (5, 2, 2, 3)),
    ("mae", True, (5, 3)),
]


@pytest.mark.parametrize(("loss", "logits", "shape"), CASES)
def test_torch_losses_equal_keras_losses(loss, logits, shape):
    rng = np.random.default_rng(1)
    raw = rng.standard_normal(shape).astype(np.float32)
    if not logits:
        activation = keras.activations.softmax if loss == "cross_entropy" else keras.activations.sigmoid
        raw = np.array(activation(raw))
    if loss == "cross_entropy":
        target = rng.integers(0, shape[-1], shape[:-1])
    elif loss == "binary_cross_entropy":
        target = rng.integers(0, 2, shape).astype(np.float32)
    else:
        target = rng.standard_normal(shape).astype(np.float32)
    expected = float(recipes.keras_loss(keras, loss, logits)(target, raw))
    actual = recipes.torch_loss(torch, loss, logits)(torch.from_numpy(raw), torch.from_numpy(target)).item()
    assert actual == pytest.approx(expected, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize(("loss", "logits"), [("cross_entropy", True), ("binary_cross_entropy", True)])
def test_torch_accuracy_equals_keras_accuracy(loss, logits):
    rng = np.random.default_rng(2)
    shape = (40, 4) if loss == "cross_entropy" else (40, 1)
    output = rng.standard_normal(shape).astype(np.float32)
    if loss == "cross_entropy":
        target = rng.integers(0, 4, 40)
    else:
        target = rng.integers(0, 2, shape).astype(np.float32)
    metric = recipes.keras_metrics(keras, loss, logits, classification=True)[0]
    metric.update_state(target, output)
    right, count = recipes.torch_correct(torch, loss, logits)(
        torch.from_numpy(output), torch.from_numpy(target)
    )
    assert right.item() / count == pytest.approx(float(metric.result()))
