"""Learning-rate schedules, TensorBoard, the confusion matrix and mixed precision, in both frameworks."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from codegen import generate, recipes, schedules  # noqa: E402
from codegen.runtime import load_module  # noqa: E402
from studio.project import LR_SCHEDULES, ProjectError, TrainingSettings, project_from_dict, project_to_dict  # noqa: E402
from studio.training.confusion import confusion_report  # noqa: E402
from tests.graph_builders import chain  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LENET = ROOT / "assets" / "examples" / "lenet_digits.layers.json"


def _settings(schedule: str, **changes) -> TrainingSettings:
    values = {"lr_schedule": schedule, "learning_rate": 0.01, "epochs": 4, **changes}
    return dataclasses.replace(TrainingSettings(), **values)


# ----- schedules --------------------------------------------------------------------


def test_cosine_and_step_are_torchs_own_schedulers_per_step():
    import torch

    def torch_rates(make, total):
        parameter = torch.nn.Parameter(torch.zeros(1))
        optimizer = torch.optim.SGD([parameter], lr=0.01)
        scheduler = make(optimizer)
        rates = []
        for _ in range(total):
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return rates

    per_epoch = 7
    cosine = _settings("cosine", lr_min=1e-4)
    ours = schedules.learning_rates(cosine, per_epoch)
    theirs = torch_rates(
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=len(ours), eta_min=1e-4), len(ours)
    )
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    step = _settings("step", lr_step_epochs=2, lr_gamma=0.5)
    ours = schedules.learning_rates(step, per_epoch)
    theirs = torch_rates(lambda o: torch.optim.lr_scheduler.StepLR(o, 2 * per_epoch, gamma=0.5), len(ours))
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_warmup_and_onecycle_shapes():
    per_epoch = 10
    warm = schedules.learning_rates(_settings("warmup-cosine", lr_warmup_epochs=1.0, lr_min=1e-3), per_epoch)
    np.testing.assert_allclose(warm[:10], [0.01 * (i + 1) / 10 for i in range(10)])
    assert all(a >= b for a, b in zip(warm[9:], warm[10:], strict=False))  # then it only falls
    assert 1e-3 < warm[-1] < 1.05e-3
    cycle = schedules.learning_rates(_settings("onecycle"), per_epoch)
    peak = int(np.argmax(cycle))
    assert peak == round(0.3 * len(cycle))
    assert cycle[0] == pytest.approx(0.01 / 25) and max(cycle) == pytest.approx(0.01)
    assert cycle[-1] < cycle[0]
    assert schedules.learning_rates(_settings("constant"), per_epoch) == [0.01] * 40


def test_the_keras_callback_and_the_torch_scheduler_give_the_same_rate_every_step():
    """The generated programs' own pieces: Keras's callback sets the optimizer's float32 variable
    before each batch; PyTorch's LambdaLR is stepped after each; both read the same step."""
    per_epoch, epochs = 5, 3
    for schedule in LR_SCHEDULES[1:]:
        project = chain(
            [4],
            ("Dense", {"units": 3}),
            lr_schedule=schedule,
            learning_rate=0.02,
            lr_min=0.001,
            lr_step_epochs=1,
        )
        keras_program, torch_program = (
            load_module(generate(project, framework).source, framework) for framework in ("keras", "pytorch")
        )
        model = keras_program.build_model()
        model.compile(optimizer=keras_program.make_optimizer(0.02), loss="mse")
        callback = keras_program.PerBatchLearningRate(0.02, per_epoch, per_epoch * epochs)
        callback.set_model(model)
        module = torch_program.build_model()
        optimizer = torch_program.make_optimizer(module.parameters(), 0.02)
        scheduler = torch_program.make_scheduler(optimizer, 0.02, per_epoch, per_epoch * epochs)
        keras_rates, torch_rates = [], []
        for epoch in range(epochs):
            callback.on_epoch_begin(epoch)
            for batch in range(per_epoch):
                callback.on_train_batch_begin(batch)
                keras_rates.append(float(model.optimizer.learning_rate))
                torch_rates.append(float(np.float32(optimizer.param_groups[0]["lr"])))
                optimizer.step()
                scheduler.step()
        assert keras_rates == torch_rates, schedule
        assert len(set(keras_rates)) > 2, schedule


def test_scheduled_sgd_follows_kerass_momentum_rule_which_torch_optim_sgd_does_not():
    """SGD's momentum buffers differ: equal at one learning rate, apart once it changes."""
    import keras
    import torch

    project = chain([4], ("Dense", {"units": 3}), optimizer="sgd", lr_schedule="step")
    torch_program = load_module(generate(project, "pytorch").source, "pytorch")
    rng = np.random.default_rng(1)
    start = rng.standard_normal(32).astype(np.float32)
    weight = keras.Variable(start.copy())
    keras_sgd = keras.optimizers.SGD(0.1, momentum=recipes.MOMENTUM)
    ours, plain = (torch.nn.Parameter(torch.from_numpy(start.copy())) for _ in range(2))
    ours_sgd = torch_program.make_optimizer([ours], 0.1)
    plain_sgd = torch.optim.SGD([plain], lr=0.1, momentum=recipes.MOMENTUM)
    for rate in (0.1, 0.1, 0.05, 0.05, 0.01, 0.01):
        gradient = rng.standard_normal(32).astype(np.float32)
        keras_sgd.learning_rate = rate
        keras_sgd.apply_gradients([(gradient, weight)])
        for parameter, optimizer in ((ours, ours_sgd), (plain, plain_sgd)):
            optimizer.param_groups[0]["lr"] = rate
            parameter.grad = torch.from_numpy(gradient.copy())
            optimizer.step()
    assert type(ours_sgd).__name__ == "KerasSGD"
    np.testing.assert_allclose(ours.detach().numpy(), np.asarray(weight), atol=1e-6)
    assert np.abs(plain.detach().numpy() - np.asarray(weight)).max() > 1e-3


def test_every_program_carries_every_schedule_with_the_projects_as_default():
    """A constant project's programs still hold every schedule (a script's --lr-schedule picks one):
    called with a schedule's keywords, they give the rates of a project that has that schedule."""
    import torch

    project = chain([4], ("Dense", {"units": 3}), optimizer="sgd", learning_rate=0.01, epochs=4)
    per_epoch, total = 6, 24
    for framework in ("keras", "pytorch"):
        program = load_module(generate(project, framework).source, framework)
        assert [program.learning_rate_factor(s, 0.01, per_epoch, total) for s in range(total)] == [
            1.0
        ] * total
        for schedule in LR_SCHEDULES[1:]:
            settings = _settings(schedule, lr_min=1e-4, lr_step_epochs=1, lr_gamma=0.5, lr_warmup_epochs=0.5)
            keywords = {
                "schedule": schedule,
                "step_epochs": 1,
                "gamma": 0.5,
                "warmup_epochs": 0.5,
                "lr_min": 1e-4,
            }
            ours = [
                0.01 * program.learning_rate_factor(s, 0.01, per_epoch, total, **keywords)
                for s in range(total)
            ]
            assert ours == schedules.learning_rates(settings, per_epoch), (framework, schedule)
    torch_program = load_module(generate(project, "pytorch").source, "pytorch")
    parameters = [torch.nn.Parameter(torch.zeros(2))]
    assert type(torch_program.make_optimizer(parameters, 0.1)) is torch.optim.SGD  # the rate stays
    assert type(torch_program.make_optimizer(parameters, 0.1, scheduled=True)).__name__ == "KerasSGD"


def test_schedule_and_precision_settings_are_checked_and_saved_only_when_set():
    project = chain([4], ("Dense", {"units": 3}))
    assert "lr_schedule" not in project_to_dict(project)["training"]
    project.training = dataclasses.replace(
        project.training, lr_schedule="cosine", lr_min=1e-5, precision="bf16"
    )
    data = project_to_dict(project)
    assert data["training"]["lr_schedule"] == "cosine" and data["training"]["precision"] == "bf16"
    assert project_from_dict(data).training == project.training
    for name, value in (
        ("lr_schedule", "linear"),
        ("lr_gamma", 0.0),
        ("lr_gamma", 2.0),
        ("lr_step_epochs", 0),
        ("lr_warmup_epochs", -1.0),
        ("lr_min", 1.0),  # not below the learning rate of a cosine schedule
        ("precision", "fp8"),
    ):
        with pytest.raises(ProjectError, match=name):
            dataclasses.replace(project.training, **{name: value}).check()


# ----- confusion matrix -------------------------------------------------------------


def test_confusion_report_matches_scikit_learn():
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    rng = np.random.default_rng(3)
    targets = rng.integers(0, 4, 200)
    scores = rng.standard_normal((200, 4)) + np.eye(4)[targets] * 1.2
    images = rng.random((200, 6, 6, 1)).astype(np.float32)
    report = confusion_report(scores, targets, "cross_entropy", True, ["a", "b", "c", "d"], images)
    predicted = scores.argmax(axis=1)
    np.testing.assert_array_equal(report["matrix"], confusion_matrix(targets, predicted, labels=range(4)))
    precision, recall, f1, support = precision_recall_fscore_support(targets, predicted, labels=range(4))
    rows = report["per_class"]
    np.testing.assert_allclose([r["precision"] for r in rows], precision, atol=1e-6)
    np.testing.assert_allclose([r["recall"] for r in rows], recall, atol=1e-6)
    np.testing.assert_allclose([r["f1"] for r in rows], f1, atol=1e-6)
    assert [r["support"] for r in rows] == support.tolist()
    assert report["accuracy"] == pytest.approx(np.mean(predicted == targets), abs=1e-6)
    wrong = np.flatnonzero(predicted != targets)
    assert [s["index"] for s in report["samples"]] == wrong[:8].tolist()
    first = report["samples"][0]
    assert first["true"] == "abcd"[targets[wrong[0]]] and np.asarray(first["image"]).shape == (6, 6)


def test_binary_confusion_thresholds_logits_at_zero_and_probabilities_at_half():
    scores = np.array([[-0.2], [0.3], [0.7], [0.4]])
    targets = np.array([[0.0], [1.0], [1.0], [0.0]])
    assert confusion_report(scores, targets, "binary_cross_entropy", True)["matrix"] == [[1, 1], [0, 2]]
    assert confusion_report(scores, targets, "binary_cross_entropy", False)["matrix"] == [[2, 0], [1, 1]]
    flat = confusion_report(scores, targets, "binary_cross_entropy", False, inputs=np.ones((4, 3)))
    assert flat["samples"] == []  # not images
    never = confusion_report(np.array([[0.0, 1.0]]), np.array([1]), "cross_entropy", True)
    assert never["per_class"][0]["precision"] is None  # class 0 was never predicted


# ----- precision --------------------------------------------------------------------


def test_fp16_is_refused_off_cuda_in_one_line():
    problem = recipes.precision_problem("fp16", "cpu")
    assert problem is not None and "CUDA" in problem and "\n" not in problem
    assert recipes.precision_problem("bf16", "cpu") is None
    assert recipes.precision_problem("fp16", "cuda:0") is None


# ----- real runs ---------------------------------------------------------------------


def _studio(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "studio", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def _epochs(folder: Path) -> list[dict]:
    lines = (folder / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [message for message in map(json.loads, lines) if message["type"] == "epoch"]


@pytest.mark.slow
def test_train_with_tensorboard_and_a_cosine_schedule_in_both_frameworks(tmp_path):
    """The issue's acceptance: event files with a loss scalar, the learning rate changing per epoch in
    metrics.jsonl (the same numbers in both frameworks), and a confusion matrix."""
    from studio.training.tensorboard import read_events

    rates = {}
    for framework in ("keras", "pytorch"):
        folder = tmp_path / framework
        result = _studio(
            "train", str(LENET), "--framework", framework, "--epochs", "3", "--tensorboard",
            "--lr-schedule", "cosine", "--lr", "0.01", "--out", str(folder), cwd=tmp_path,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        events = read_events(folder / "tensorboard")
        for tag in ("loss", "val_loss", "accuracy", "val_accuracy", "learning_rate"):
            assert [step for step, _ in events[tag]] == [1, 2, 3], tag
        assert any(tag.startswith("weights/") for tag in events)
        epochs = _epochs(folder)
        np.testing.assert_allclose(
            [e["train_loss"] for e in epochs], [v for _, v in events["loss"]], rtol=1e-6
        )
        rates[framework] = [e["learning_rate"] for e in epochs]
        assert rates[framework][0] > rates[framework][1] > rates[framework][2]
        report = json.loads((folder / "confusion_matrix.json").read_text(encoding="utf-8"))
        matrix = np.array(report["matrix"])
        assert matrix.shape == (10, 10) and matrix.sum() == sum(r["support"] for r in report["per_class"])
        assert report["accuracy"] == pytest.approx(epochs[-1]["val_accuracy"], abs=1e-6)
        assert report["samples"] and np.asarray(report["samples"][0]["image"]).shape == (8, 8)
    assert rates["keras"] == rates["pytorch"]
    total = 3 * math.ceil(1438 / 32)
    per_epoch = total // 3
    expected = schedules.learning_rates(_settings("cosine", learning_rate=0.01, epochs=3), per_epoch)
    for epoch, rate in enumerate(rates["keras"], start=1):
        assert rate == pytest.approx(expected[epoch * per_epoch - 1], rel=1e-6)


@pytest.mark.slow
def test_bf16_trains_in_both_frameworks_and_fp16_is_refused_on_the_cpu(tmp_path):
    losses = {}
    for framework in ("keras", "pytorch"):
        folder = tmp_path / framework
        result = _studio(
            "train", str(LENET), "--framework", framework, "--epochs", "1", "--precision", "bf16",
            "--device", "cpu", "--dataset", "digits", "--out", str(folder), cwd=tmp_path,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        epochs = _epochs(folder)
        losses[framework] = epochs[-1]["train_loss"]
        summary = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()][-1]
        assert summary["summary"]["precision"] == "bf16"
        refused = _studio(
            "train", str(LENET), "--framework", framework, "--epochs", "1", "--precision", "fp16",
            "--device", "cpu", "--out", str(tmp_path / f"{framework}-fp16"), cwd=tmp_path,
        )  # fmt: skip
        assert refused.returncode == 2
        assert "--precision fp16 needs a CUDA GPU" in refused.stdout + refused.stderr
    assert all(math.isfinite(loss) and loss < 2.5 for loss in losses.values())


@pytest.mark.slow
def test_verify_checks_the_schedule_step_by_step_and_catches_a_changed_formula():
    from codegen.verify import verify_project

    project = chain([4], ("Dense", {"units": 3}), optimizer="sgd", lr_schedule="cosine", lr_min=1e-4)
    report = verify_project(project, optimizers=["sgd"], steps=4)
    check = report.training[0]
    assert check.ok and check.rates["keras"] == check.rates["pytorch"]
    assert check.rates["keras"][0] > check.rates["keras"][-1]
    source = generate(project, "pytorch").source
    changed = source.replace("0.5 * (1 + math.cos", "0.45 * (1 + math.cos")
    assert changed != source
    tampered = verify_project(project, optimizers=["sgd"], steps=4, sources={"pytorch": changed})
    assert "learning rate" in (tampered.training[0].first_divergence or "")


def test_hostile_schedule_values_are_refused_or_never_reach_the_code():
    """A huge lr_min is harmless where the schedule does not read it; strings never become code."""
    project = chain([4], ("Dense", {"units": 3}), lr_schedule="step", lr_min=10**400, lr_step_epochs=2)
    program = load_module(generate(project, "pytorch").source, "hostile_schedule")
    assert [program.learning_rate_factor(step, 0.01, 3, 12) for step in (0, 5, 6, 11)] == [1, 1, 0.1, 0.1]
    data = project_to_dict(project)
    for name, value in (("lr_gamma", "0.1; import os"), ("lr_warmup_epochs", float("nan")), ("lr_min", True)):
        with pytest.raises(ProjectError, match=name):
            project_from_dict({**data, "training": {**data["training"], name: value}})


def test_the_cli_names_the_schedule_flag_that_is_wrong(capsys):
    from studio.cli import main

    assert main(["train", str(LENET), "--framework", "keras", "--lr-gamma", "2"]) == 2
    assert "--lr-gamma: expected a number in (0, 1]" in capsys.readouterr().err
    arguments = ["--lr-schedule", "cosine", "--lr", "0.01", "--lr-min", "0.1"]
    assert main(["train", str(LENET), "--framework", "pytorch", *arguments]) == 2
    assert "--lr-min: expected less than learning_rate (0.01) for cosine" in capsys.readouterr().err


def test_the_cli_prints_each_epochs_learning_rate():
    import io

    from studio.training import messages
    from studio.training.console import ProgressPrinter

    out = io.StringIO()
    printer = ProgressPrinter(out, tty=False)
    printer.handle(messages.epoch("pytorch", 2, 0.7, None, None, None, 0.2, 0.00076))
    assert out.getvalue().splitlines()[-1] == "pytorch epoch 2/?: loss 0.7000, lr 0.00076 (0.20 s)"
