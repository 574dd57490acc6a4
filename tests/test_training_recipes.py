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

from codegen import generate, recipes  # noqa: E402
from codegen.runtime import load_module  # noqa: E402
from studio.project import FRAMEWORKS, LOSSES, OPTIMIZERS  # noqa: E402
from tests.graph_builders import chain  # noqa: E402

LR = 0.03


def _script_keras(expression: str):
    """Evaluate one of codegen.recipes's expressions as the generated script would."""
    return eval(expression, {"keras": keras, "args": SimpleNamespace(lr=LR)})  # our own constant table


def _script_torch(expression: str, model):
    return eval(expression, {"torch": torch, "nn": torch.nn, "model": model, "args": SimpleNamespace(lr=LR)})


def _without_name(config: dict) -> dict:
    return {key: value for key, value in config.items() if key != "name"}


def _programs(optimizer: str):
    """The generated Keras and PyTorch programs of a small model trained with ``optimizer``."""
    project = chain([4], ("Dense", {"units": 3}), optimizer=optimizer)
    return [load_module(generate(project, framework).source, framework) for framework in FRAMEWORKS]


def _run_updates(step_keras, step_torch, steps: int = 20) -> float:
    """The largest difference between the two weights after each of ``steps`` updates with the same
    gradients, relative to how far the weights moved. Gradients span 1e-5 to 10, so that epsilon,
    where the update rules place it differently, matters."""
    rng = np.random.default_rng(0)
    start = rng.standard_normal(64).astype(np.float32)
    weight = keras.Variable(start.copy())
    parameter = torch.nn.Parameter(torch.from_numpy(start.copy()))
    keras_optimizer, torch_optimizer = step_keras(), step_torch([parameter])
    worst = 0.0
    for _ in range(steps):
        gradient = (rng.standard_normal(64) * 10.0 ** rng.uniform(-5, 1, 64)).astype(np.float32)
        keras_optimizer.apply_gradients([(gradient, weight)])
        parameter.grad = torch.from_numpy(gradient.copy())
        torch_optimizer.step()
        moved = np.max(np.abs(np.asarray(weight) - start))
        worst = max(worst, np.max(np.abs(np.asarray(weight) - parameter.detach().numpy())) / moved)
    return float(worst)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_the_programs_optimizers_update_weights_as_keras_does(name):
    keras_program, torch_program = _programs(name)
    drift = _run_updates(
        lambda: keras_program.make_optimizer(LR),
        lambda parameters: torch_program.make_optimizer(parameters, LR),
    )
    assert drift < 1e-5, f"{name}: the PyTorch program's weights drift {drift:.2g} from the Keras program's"


@pytest.mark.parametrize(
    ("name", "torch_optimizer"),
    [
        ("adam", lambda parameters: torch.optim.Adam(parameters, lr=LR, eps=1e-7)),
        ("rmsprop", lambda parameters: torch.optim.RMSprop(parameters, lr=LR, alpha=0.9, eps=1e-7)),
    ],
)
def test_torch_optims_own_update_rules_differ_from_keras(name, torch_optimizer):
    """Why the programs carry their own optimizers: torch.optim's, even with Keras's
    hyper-parameters, place epsilon elsewhere."""
    keras_program, _ = _programs(name)
    drift = _run_updates(lambda: keras_program.make_optimizer(LR), torch_optimizer)
    assert drift > 1e-3


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
