"""The programs train the same way: their own optimizer, loss and train_step, step for step.

`studio verify` runs each program's training step from identical weights on identical batches
and compares every layer's weights after each step (in float64, so float32 rounding cannot pass
for a difference). A program that trains differently fails, naming the step and the layer.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("keras")

from codegen import generate  # noqa: E402
from codegen.runtime import load_module  # noqa: E402
from codegen.verify import DRIFT_TOLERANCE, run_mains, verify_training  # noqa: E402
from studio.cli import main  # noqa: E402
from studio.datasets import load_dataset  # noqa: E402
from studio.project import OPTIMIZERS, load_project  # noqa: E402

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "assets" / "examples").glob("*.layers.json"))


def example(name: str):
    return load_project(next(path for path in EXAMPLES if path.name.startswith(name)))


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_each_optimizer_trains_the_same_in_both_programs(optimizer):
    check = verify_training(example("mlp_iris"), optimizer, steps=5)
    assert check.ok, check.format()
    assert len(check.losses["keras"]) == len(check.losses["pytorch"]) == 5
    assert np.allclose(check.losses["keras"], check.losses["pytorch"], rtol=1e-9)
    assert max(check.layers.values()) < DRIFT_TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name.split(".")[0])
def test_every_example_verifies_with_every_optimizer_for_twenty_steps(path, capsys):
    assert main(["verify", str(path), "--optimizer", "all", "--steps", "20", "--skip-main", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [check["optimizer"] for check in report["training"]] == list(OPTIMIZERS)
    for check in report["training"]:
        assert check["ok"] and check["worst_drift"] <= DRIFT_TOLERANCE, check


def torch_source(project, old: str, new: str) -> str:
    source = generate(project, "pytorch").source
    assert old in source, "the generated program changed: update the case"
    return source.replace(old, new)


def test_torch_optims_adam_in_the_program_is_caught():
    """torch.optim.Adam places epsilon elsewhere: the weights drift apart at once."""
    project = example("mlp_iris")
    source = torch_source(
        project,
        "return KerasAdam(parameters, lr=learning_rate, epsilon=1e-7)",
        "return torch.optim.Adam(parameters, lr=learning_rate, eps=1e-7)",
    )
    check = verify_training(project, "adam", steps=5, sources={"pytorch": source})
    assert not check.ok
    assert check.first_divergence.startswith("step 1, Dense '")


def test_a_second_trainable_rnn_bias_is_caught():
    """torch's bias_ih and bias_hh both training would move the LSTM's one Keras bias twice as far."""
    project = example("sequence_classifier")
    source = torch_source(project, ".requires_grad_(False)", ".requires_grad_(True)")
    check = verify_training(project, "sgd", steps=3, sources={"pytorch": source})
    assert not check.ok
    assert check.layers["LSTM 'lstm'"] > 100 * DRIFT_TOLERANCE


@pytest.mark.slow
def test_the_programs_main_runs_one_tiny_epoch_and_a_broken_one_is_named():
    project = example("mlp_iris")
    assert run_mains(project) == {"keras": None, "pytorch": None}
    broken = torch_source(project, "    loss_fn = make_loss()\n", "    loss_fn = None\n")
    problems = run_mains(project, {"pytorch": broken})
    assert problems["keras"] is None
    assert "main() failed" in problems["pytorch"] and "TypeError" in problems["pytorch"]


@pytest.mark.parametrize("name", ["mlp_iris", "lenet_digits"])
def test_the_studio_and_both_scripts_validate_on_the_same_samples(name):
    project = example(name)
    training = project.training
    studio = load_dataset(training.dataset, validation_split=training.validation_split, seed=training.seed)
    for framework in ("keras", "pytorch"):
        program = load_module(generate(project, framework).source, f"split_{framework}")
        (x_train, y_train), (x_val, y_val) = program.load_data()
        if framework == "pytorch" and x_val.ndim == 4:
            x_train, x_val = x_train.transpose(0, 2, 3, 1), x_val.transpose(0, 2, 3, 1)
        assert (len(x_train), len(x_val)) == (len(studio.x_train), len(studio.x_val))
        assert np.array_equal(y_val, studio.y_val) and np.array_equal(y_train, studio.y_train)
        np.testing.assert_allclose(x_val.reshape(studio.x_val.shape), studio.x_val, atol=1e-6)
        np.testing.assert_allclose(x_train.reshape(studio.x_train.shape), studio.x_train, atol=1e-6)


def test_rescaling_keeps_its_exact_constants_in_the_float64_checks():
    """Keras's Rescaling casts 1/255 through float32 (TensorFlow's cast of a Python float), 6e-8 off;
    in training mode a deep network (EfficientNet) turned that into a reported divergence. The
    float64 checks give Keras the config's own number, as the PyTorch program computes it."""
    import keras

    from codegen.runtime import exact_rescaling_constants, keras_float64
    from tests.graph_builders import chain

    project = chain([4, 4, 3], ("Rescaling", {"scale": 1 / 255, "offset": -0.5}))
    with keras_float64(keras):
        model = load_module(generate(project, "keras").source, "rescaling64").build_model()
    x = np.random.default_rng(0).standard_normal((2, 4, 4, 3))
    assert np.abs(np.asarray(model(x)) - (x / 255 - 0.5)).max() > 1e-10  # Keras's own cast
    exact_rescaling_constants(model)
    np.testing.assert_allclose(np.asarray(model(x)), x * (1 / 255) - 0.5, rtol=0, atol=1e-15)
