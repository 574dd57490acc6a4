"""Real training in child processes, in both frameworks, on small data.

The two module fixtures train a small iris MLP for 4 epochs in each
framework; several tests read their messages and run folders.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from codegen.runtime import load_module
from studio.cli import main
from studio.project import project_to_dict
from studio.training import BothRun, RunConfig, TrainingRun, compare_frameworks, detect_devices
from studio.training.rundir import RunFolder
from tests.graph_builders import chain

EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"
IRIS_EXAMPLE = EXAMPLES / "mlp_iris.layers.json"
TIMEOUT = 240


def iris_mlp(**training) -> dict:
    """An MLP for iris without Dropout, so that runs are deterministic."""
    settings = dict(dataset="iris", optimizer="adam", learning_rate=0.01, batch_size=16, epochs=4)
    settings.update(training)
    project = chain([4], ("Dense", {"units": 16, "activation": "relu"}), ("Dense", {"units": 3}), **settings)
    project.name = "iris mlp"
    return project_to_dict(project)


def train(config: RunConfig, timeout: float = TIMEOUT) -> TrainingRun:
    run = TrainingRun(config)
    run.start()
    try:
        run.wait(timeout)
        assert not run.is_running, "the run did not end in time"
    finally:
        run.close()
    return run


def of_type(run, kind: str) -> list[dict]:
    return [message for message in run.messages if message["type"] == kind]


def wait_for_batches(run: TrainingRun, count: int = 1, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while len(of_type(run, "batch")) < count:
        run.poll()
        assert run.outcome is None, run.outcome
        assert time.monotonic() < deadline, "no batch arrived"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The iris MLP trained for 4 epochs in each framework, side by side from the same weights."""
    root = tmp_path_factory.mktemp("iris")
    both = BothRun(RunConfig.from_project(iris_mlp(), "keras", out_dir=str(root)), parallel=True)
    both.start()
    try:
        both.wait(TIMEOUT)
    finally:
        both.close()
    return both.runs


@pytest.fixture(params=["keras", "pytorch"])
def run(request, runs) -> TrainingRun:
    return runs[request.param]


# ----- the stream ---------------------------------------------------------------------


@pytest.mark.slow
def test_messages_arrive_in_order(run):
    kinds = [message["type"] for message in run.messages]
    assert run.outcome["type"] == "finished", run.outcome
    assert kinds[0] == "started" and kinds[-1] == "finished"
    epochs = [index for index, kind in enumerate(kinds) if kind == "epoch"]
    assert len(epochs) == 4
    assert kinds[1 : epochs[0]] == ["batch"] * 8  # 120 samples in batches of 16
    assert set(kinds[epochs[-1] + 1 : -1]) == {"checkpoint"}
    batches = of_type(run, "batch")
    assert [m["global_step"] for m in batches] == list(range(1, 33))
    assert [(m["epoch"], m["step"]) for m in batches[7:10]] == [(1, 8), (2, 1), (2, 2)]
    assert all(m["framework"] == run.framework and m["samples_per_s"] > 0 for m in batches)


@pytest.mark.slow
def test_loss_goes_down(run):
    epochs = of_type(run, "epoch")
    assert epochs[-1]["train_loss"] < 0.7 * epochs[0]["train_loss"]
    assert epochs[-1]["val_loss"] < epochs[0]["val_loss"]
    assert epochs[-1]["train_accuracy"] > 0.7
    summary = run.outcome["summary"]
    assert summary["epochs_completed"] == 4 and summary["best_epoch"] == 4
    assert summary["params"] == {"trainable": 4 * 16 + 16 + 16 * 3 + 3, "non_trainable": 0}
    assert summary["peak_memory_mb"] > 50 and summary["samples_per_s"] > 0


@pytest.mark.slow
def test_metrics_file_holds_every_message(run):
    lines = Path(run.run_dir, "metrics.jsonl").read_text().splitlines()
    logged = [json.loads(line) for line in lines]
    assert [m["type"] for m in logged] == [m["type"] for m in run.messages]
    assert logged[5] == run.messages[5]


@pytest.mark.slow
def test_both_frameworks_start_from_the_same_weights(runs):
    keras_started, torch_started = (of_type(runs[fw], "started")[0] for fw in ("keras", "pytorch"))
    assert keras_started["init"] == torch_started["init"] == "keras-seed"
    first = [of_type(runs[fw], "batch")[0]["loss"] for fw in ("keras", "pytorch")]
    assert first[0] == pytest.approx(first[1], abs=1e-5)


# ----- the run folder -----------------------------------------------------------------


def _iris_batch(count: int = 6) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((count, 4)).astype(np.float32)


@pytest.mark.slow
def test_keras_weights_load_safely(runs):
    import keras

    folder = Path(runs["keras"].run_dir)
    assert {"config.json", "metrics.jsonl", "iris_mlp_keras.py", "checkpoint.npz", "model.onnx"} <= {
        p.name for p in folder.iterdir()
    }
    final = keras.models.load_model(folder / "final.keras", safe_mode=True)
    best = keras.models.load_model(folder / "best.keras", safe_mode=True)
    assert final.count_params() == 131
    x = _iris_batch()
    np.testing.assert_allclose(
        final.predict(x, verbose=0), best.predict(x, verbose=0), atol=1e-6
    )  # best = last


@pytest.mark.slow
def test_torch_weights_load_safely_into_the_generated_model(runs):
    import torch

    folder = Path(runs["pytorch"].run_dir)
    module = load_module((folder / "iris_mlp_pytorch.py").read_text(), "iris_mlp_pytorch")
    model = module.build_model()
    model.load_state_dict(torch.load(folder / "final.pt", weights_only=True))
    model.eval()
    with torch.no_grad():
        output = model(torch.from_numpy(_iris_batch()))
    assert output.shape == (6, 3)


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["keras", "pytorch"])
def test_onnx_gives_the_trained_models_outputs(runs, framework):
    import onnxruntime

    folder = Path(runs[framework].run_dir)
    x = _iris_batch()
    if framework == "keras":
        import keras

        expected = keras.models.load_model(folder / "final.keras", safe_mode=True).predict(x, verbose=0)
    else:
        import torch

        model = load_module((folder / "iris_mlp_pytorch.py").read_text(), "m").build_model()
        model.load_state_dict(torch.load(folder / "final.pt", weights_only=True))
        with torch.no_grad():
            expected = model.eval()(torch.from_numpy(x)).numpy()
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    (actual,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_allclose(actual, expected, atol=1e-4)


# ----- resume -------------------------------------------------------------------------


@pytest.mark.slow
def test_resumed_runs_continue_where_they_stopped(runs, tmp_path):
    """4 epochs + 2 resumed epochs give the same losses as 6 epochs in one go."""
    resumed, straight = {}, {}
    for framework in ("keras", "pytorch"):
        base = RunConfig.from_project(iris_mlp(), framework, same_start=True)
        resumed[framework] = TrainingRun(
            base.with_changes(
                epochs=6, resume_from=runs[framework].run_dir, out_dir=str(tmp_path / framework)
            )
        )
        straight[framework] = TrainingRun(
            base.with_changes(epochs=6, out_dir=str(tmp_path / f"{framework}-6"))
        )
    for run in [*resumed.values(), *straight.values()]:
        run.start()
    for run in [*resumed.values(), *straight.values()]:
        run.wait(TIMEOUT)
        run.close()
    for framework in ("keras", "pytorch"):
        run, whole = resumed[framework], straight[framework]
        assert run.outcome["type"] == "finished", run.outcome
        started = of_type(run, "started")[0]
        assert (started["initial_epoch"], started["init"]) == (4, "checkpoint")
        assert [m["epoch"] for m in of_type(run, "epoch")] == [5, 6]
        assert of_type(run, "batch")[0]["global_step"] == 33
        continued = [m["loss"] for m in of_type(run, "batch")]
        uninterrupted = [m["loss"] for m in of_type(whole, "batch")][32:]
        np.testing.assert_allclose(continued, uninterrupted, rtol=1e-4, atol=1e-5, err_msg=framework)
        assert run.outcome["summary"]["epochs_completed"] == 6


# ----- stopping, failures -------------------------------------------------------------


@pytest.mark.slow
def test_early_stopping_ends_after_patience_epochs_without_a_better_val_loss(tmp_path):
    """A too-large learning rate makes val_loss wander, so patience runs out long before 20 epochs."""
    config = RunConfig.from_project(
        iris_mlp(learning_rate=2.0, epochs=20), "pytorch", early_stopping_patience=2, out_dir=str(tmp_path)
    )
    run = train(config.with_changes(export_onnx=False))
    summary = run.outcome["summary"]
    assert run.outcome["type"] == "finished" and summary["stopped_early"]
    val_losses = [m["val_loss"] for m in of_type(run, "epoch")]
    best = summary["best_epoch"]
    assert len(val_losses) == summary["epochs_completed"] == best + 2 < 20
    assert min(val_losses) == val_losses[best - 1] == summary["best_loss"]
    assert {m["kind"] for m in of_type(run, "checkpoint")} == {"final", "best"}


@pytest.mark.slow
def test_stop_ends_the_run_within_two_seconds_and_keeps_the_metrics(tmp_path):
    config = RunConfig.from_project(
        EXAMPLES / "lenet_digits.layers.json", "keras", epochs=200, out_dir=str(tmp_path)
    )
    run = TrainingRun(config)
    run.start()
    try:
        wait_for_batches(run, 3)
        began = time.monotonic()
        run.stop()
        elapsed = time.monotonic() - began
    finally:
        run.close()
    assert elapsed < 2.0
    assert run.outcome["type"] == "stopped"
    assert not run.is_running
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert sum(m["type"] == "batch" for m in logged) >= 3
    assert logged[-1]["type"] == "stopped"
    assert (tmp_path / "final.keras").exists()


def test_a_killed_training_process_is_reported(tmp_path):
    config = RunConfig.from_project(
        EXAMPLES / "lenet_digits.layers.json", "pytorch", epochs=200, out_dir=str(tmp_path)
    )
    run = TrainingRun(config)
    run.start()
    try:
        wait_for_batches(run, 2)
        os.kill(run.pid, signal.SIGKILL)
        run.wait(10)
    finally:
        run.close()
    assert run.outcome["type"] == "failed" and run.outcome["reason"] == "crash"
    # The first epoch may have ended (and its checkpoint been written) before the kill landed.
    checkpoint = tmp_path / "checkpoint.pt"
    named = f"; the checkpoint of the last whole epoch is {checkpoint} (resume from the run folder)"
    assert run.outcome["message"] == (
        "the training process ended unexpectedly (exit code -9, SIGKILL); "
        f"metrics up to that point are in {tmp_path / 'metrics.jsonl'}"
        + (named if checkpoint.exists() else "")
    )
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert sum(m["type"] == "batch" for m in logged) >= 2 and logged[-1]["type"] == "failed"


NAN = re.compile(
    r"loss became (nan|inf) at epoch (\d+), step (\d+) \(batch (\d+) of epoch \2\): try a lower learning rate"
)


@pytest.mark.slow
def test_a_diverging_loss_stops_the_run_naming_the_step(tmp_path):
    project = chain(
        [8],
        ("Dense", {"units": 32, "activation": "relu"}),
        ("Dense", {"units": 1}),
        dataset="regression",
        loss="mse",
        optimizer="sgd",
        learning_rate=9.0,
        epochs=3,
    )
    both = BothRun(RunConfig.from_project(project_to_dict(project), "keras", out_dir=str(tmp_path)))
    both.start()
    try:
        both.wait(TIMEOUT)
    finally:
        both.close()
    for framework, run in both.runs.items():
        assert run.outcome["type"] == "failed" and run.outcome["reason"] == "nan", (framework, run.outcome)
        match = NAN.fullmatch(run.outcome["message"])
        assert match, run.outcome["message"]
        batches = of_type(run, "batch")
        last = batches[-1]
        assert (last["epoch"], last["global_step"], last["step"]) == tuple(int(g) for g in match.groups()[1:])
        assert not math.isfinite(last["loss"]) and all(math.isfinite(m["loss"]) for m in batches[:-1])
        assert not of_type(run, "epoch") or of_type(run, "epoch")[-1]["epoch"] < last["epoch"]


def test_a_dataset_that_does_not_fit_is_rejected_before_training(tmp_path):
    project = chain([5], ("Dense", {"units": 3}), dataset="iris")
    run = train(RunConfig.from_project(project_to_dict(project), "pytorch", out_dir=str(tmp_path)))
    assert [m["type"] for m in run.messages] == ["failed"]
    assert run.outcome["reason"] == "dataset"
    message = run.outcome["message"]
    assert "(4,)" in message and "(None, 5)" in message, message


@pytest.mark.slow
def test_an_absent_device_is_named(tmp_path):
    config = RunConfig.from_project(iris_mlp(), "pytorch", device="cuda:99", out_dir=str(tmp_path))
    run = train(config)
    assert [m["type"] for m in run.messages] == ["failed"]
    assert run.outcome["reason"] == "device"
    assert run.outcome["message"].startswith("cuda:99 is not available: PyTorch sees ")


@pytest.mark.slow
def test_an_exception_in_the_training_process_comes_back_readable(tmp_path):
    # A checkpoint that torch reads, but without the entries a resume needs: an unexpected KeyError.
    import torch

    previous = tmp_path / "previous"
    previous.mkdir()
    torch.save({"unexpected": torch.zeros(1)}, previous / "checkpoint.pt")
    config = RunConfig.from_project(
        iris_mlp(), "pytorch", resume_from=str(previous), out_dir=str(tmp_path / "new")
    )
    run = train(config)
    assert run.outcome["type"] == "failed" and run.outcome["reason"] == "error"
    message = run.outcome["message"]
    assert "Traceback" not in message and message.count("\n") <= 4
    assert message.split(":")[0].endswith("Error"), message
    assert "Traceback" in run.outcome["details"] and "checkpoint[" in run.outcome["details"]


def test_a_damaged_checkpoint_is_named_and_its_cause_kept_in_the_details(tmp_path):
    previous = tmp_path / "previous"
    previous.mkdir()
    (previous / "checkpoint.pt").write_bytes(b"this is not a checkpoint")
    config = RunConfig.from_project(
        iris_mlp(), "pytorch", resume_from=str(previous), out_dir=str(tmp_path / "new")
    )
    run = train(config)
    assert run.outcome["type"] == "failed" and run.outcome["reason"] == "checkpoint"
    message = run.outcome["message"]
    assert "Traceback" not in message and message.count("\n") == 0
    assert message.startswith(
        f"cannot resume from the checkpoint {previous / 'checkpoint.pt'}: it is damaged"
    )
    assert "Traceback" in run.outcome["details"] and "torch.load" in run.outcome["details"]


# ----- compare ------------------------------------------------------------------------


@pytest.mark.slow
def test_compare_curves_agree_for_sgd(tmp_path):
    config = RunConfig.from_project(
        iris_mlp(optimizer="sgd", learning_rate=0.05, epochs=2), "keras", out_dir=str(tmp_path)
    )
    report = compare_frameworks(config, parallel=True)
    assert report.ok, {fw: r.outcome for fw, r in report.results.items()}
    assert report.steps_compared == 16
    assert report.max_loss_difference < 1e-5
    assert report.notes == []
    for result in report.results.values():
        summary = result.summary
        assert summary["params"]["trainable"] == 131
        assert summary["epoch_time"] > 0 and summary["samples_per_s"] > 0 and summary["peak_memory_mb"] > 0
    # --parallel splits the cores: each framework gets the same half
    half = max(1, (os.cpu_count() or 1) // 2)
    threads = {fw: r.summary["threads"] for fw, r in report.results.items()}
    assert threads["keras"] == threads["pytorch"] == {"intra_op": half, "inter_op": half}
    saved = json.loads((tmp_path / "compare.json").read_text(encoding="utf-8"))
    assert saved["parallel"] is True and saved["loss_curve_gap"]["steps_compared"] == 16
    # the final weights, layer by layer: the same SGD steps from the same start end in the same place
    assert len(report.weight_drift) == 2 and all(label.startswith("Dense '") for label in report.weight_drift)
    assert max(report.weight_drift.values()) < 1e-5
    assert report.verdict.startswith("equivalent within ") and saved["verdict"] == report.verdict


def test_compare_verdict_names_the_layer_and_the_step_where_the_runs_part():
    from studio.training.compare import CompareReport, FrameworkResult, verdict

    def report(keras_losses, torch_losses, drift):
        results = {
            "keras": FrameworkResult("keras", {}, keras_losses, []),
            "pytorch": FrameworkResult("pytorch", {}, torch_losses, []),
        }
        return CompareReport(results, None, None, len(keras_losses), weight_drift=drift)

    same = report([1.0, 0.9, 0.8], [1.0, 0.9, 0.8], {"Dense 'a'": 2e-7})
    assert verdict(same) == "equivalent within 2e-07"
    parted = report([1.0, 0.9, 0.8], [1.0, 0.95, 0.9], {"Dense 'a'": 2e-7, "LSTM 'b'": 0.03})
    assert verdict(parted) == (
        "diverged at layer LSTM 'b': its final weights differ by 0.03 relative (the loss curves part after step 2)"
    )


COMPARE_KEYS = {
    "threads",
    "train_seconds_per_epoch",
    "first_step_seconds",
    "samples_per_second",
    "inference_ms_per_batch",
    "model_bytes",
    "final_loss",
    "val_accuracy",
}


@pytest.mark.slow
def test_cli_compare_repeats_with_equal_threads_and_saves_json_and_png(tmp_path, capsys):
    from PIL import Image

    out, copy = tmp_path / "cmp", tmp_path / "figures.json"
    arguments = ["compare", str(IRIS_EXAMPLE), "--epochs", "1", "--repeats", "2", "--threads", "1"]
    assert main([*arguments, "--out", str(out), "--json", str(copy)]) == 0
    printed = capsys.readouterr().out
    assert "2 repeat(s), one after the other" in printed and "train s/epoch (no validation)" in printed
    data = json.loads(copy.read_text(encoding="utf-8"))
    assert data == json.loads((out / "compare.json").read_text(encoding="utf-8"))
    assert data["repeats"] == 2 and data["parallel"] is False
    for framework in ("keras", "pytorch"):
        figures = data[framework]
        assert COMPARE_KEYS <= set(figures), framework
        assert figures["threads"] == {"intra_op": 1, "inter_op": 1}
        for key in ("train_seconds_per_epoch", "first_step_seconds", "samples_per_second"):
            spread = figures[key]
            assert 0 < spread["min"] <= spread["median"] <= spread["max"], (framework, key)
        assert set(figures["inference_ms_per_batch"]) == {"1", "16"}  # the project's batch size
        # weights of a 739-parameter MLP in float32, plus Adam's two moments of each
        assert figures["parameter_bytes"] == 739 * 4
        assert 739 * 8 <= figures["optimizer_state_bytes"] < 739 * 8 + 64
        assert figures["model_bytes"] == figures["parameter_bytes"] + figures["optimizer_state_bytes"]
        assert len(figures["run_dirs"]) == 2 and figures["final_loss"] > 0
        assert 0 <= figures["val_accuracy"] <= 1
    # both repeats trained the same batches from the same weights
    assert data["loss_curve_gap"]["steps_compared"] == 8
    assert any("Dropout" in note for note in data["notes"])  # the example's rate is 0.1
    with Image.open(out / "compare.png") as image:
        assert image.format == "PNG" and image.size == (1000, 420)
        assert len(image.getcolors(maxcolors=1 << 20)) > 3  # curves and bars were drawn


@pytest.mark.slow
def test_an_autoencoder_trains_in_both_frameworks_alike(tmp_path):
    """Channels-first outputs in PyTorch, target "inputs": the same curve as Keras."""
    config = RunConfig.from_project(
        EXAMPLES / "conv_autoencoder.layers.json", "keras", epochs=1, optimizer="sgd", learning_rate=0.1
    )
    report = compare_frameworks(config.with_changes(out_dir=str(tmp_path)), parallel=True)
    assert report.ok, {fw: r.outcome for fw, r in report.results.items()}
    assert report.steps_compared == 45
    assert report.max_loss_difference < 1e-4
    assert report.results["pytorch"].summary["final"]["train_accuracy"] is None


# ----- CLI, devices -------------------------------------------------------------------


@pytest.mark.slow
def test_cli_trains_end_to_end(tmp_path, capsys):
    code = main(
        ["train", str(IRIS_EXAMPLE), "--framework", "pytorch", "--epochs", "2", "--out", str(tmp_path)]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "pytorch epoch 2/2: loss" in out
    assert re.search(r"^train loss\s+\d\.\d{4}$", out, re.MULTILINE)
    assert f"final {tmp_path / 'final.pt'}" in out
    assert RunFolder(tmp_path).read_config().epochs == 2


def test_cli_exit_codes_for_bad_input(tmp_path, capsys):
    assert main(["train", str(tmp_path / "missing.layers.json"), "--framework", "keras"]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = ["--dataset", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "run")]
    assert main(["train", str(IRIS_EXAMPLE), "--framework", "keras", *bad]) == 2
    assert "error: the dataset cannot be loaded" in capsys.readouterr().err


@pytest.mark.slow
def test_detect_devices_lists_the_cpu_first():
    devices = detect_devices()
    assert devices[0].id == "cpu"
    assert all(device.framework in ("keras", "pytorch", "both") for device in devices)
    assert detect_devices() == devices  # cached


def test_a_pickled_checkpoint_is_refused_without_torch_advice_to_unpickle(tmp_path):
    import fractions

    import torch

    previous = tmp_path / "previous"
    previous.mkdir()
    torch.save({"model": fractions.Fraction(1, 3)}, previous / "checkpoint.pt")
    config = RunConfig.from_project(
        iris_mlp(), "pytorch", resume_from=str(previous), out_dir=str(tmp_path / "new")
    )
    run = train(config)
    assert run.outcome["reason"] == "checkpoint"
    assert "it holds pickled Python objects, which are never loaded" in run.outcome["message"]
    assert "weights_only" not in run.outcome["message"] + run.outcome["details"]
