"""The exported training scripts as engineers run them: epochs, checkpoints, resume, early
stopping, gradient clipping, torchrun, and the studio and the scripts resuming each other's runs.

The scripts run as real processes. The fast tier keeps the unit checks and one PyTorch
script's checkpoint and resume; the rest is slow.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from codegen import generate
from codegen.runtime import load_module
from codegen.script_parts import PROGRESS
from studio.project import Project, load_project
from studio.training.progress import Progress as StudioProgress

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "assets" / "examples").glob("*.layers.json"))
IRIS = ROOT / "assets" / "examples" / "mlp_iris.layers.json"
LENET = ROOT / "assets" / "examples" / "lenet_digits.layers.json"
ENVIRONMENT = {
    "KERAS_BACKEND": "tensorflow",
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "OMP_NUM_THREADS": "1",
    # `python -m studio` in a child process imports this checkout's studio, as the tests do.
    "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
}


def write_script(tmp_path: Path, project: Project, framework: str) -> Path:
    code = generate(project, framework)
    path = tmp_path / code.filename
    path.write_text(code.source)
    return path


def run(tmp_path: Path, command: list, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
        env=ENVIRONMENT,
    )


def epoch_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("epoch ")]


def mlp_without_dropout() -> Project:
    """Iris, Input -> Dense(16, relu) -> Dense(3): nothing random inside, so runs compare exactly."""
    project = Project(name="mlp")
    graph = project.graph
    nodes = [
        graph.add_node("Input", params={"shape": (4,)}).id,
        graph.add_node("Dense", params={"units": 16, "activation": "relu"}).id,
        graph.add_node("Dense", params={"units": 3}).id,
    ]
    for source, target in zip(nodes, nodes[1:], strict=False):
        graph.connect(source, target)
    project.training.dataset = "iris"
    project.training.learning_rate = 0.05
    return project


# ----- units -------------------------------------------------------------------------------


def test_the_scripts_progress_keeps_the_studios_counters_best_loss_and_patience():
    namespace = {"math": math}
    exec(PROGRESS, namespace)  # the class exactly as both scripts hold it
    rng = np.random.default_rng(0)
    for trial in range(50):
        patience = int(rng.integers(0, 4))
        ours, studio = namespace["Progress"](12, patience), StudioProgress(epochs=12, patience=patience)
        for _ in range(12):
            val = None if trial % 5 == 0 else float(rng.choice([rng.random(), math.nan, math.inf]))
            metrics = {"train_loss": float(rng.random()), "val_loss": val}
            if val is None:
                del metrics["val_loss"]
            verdict = studio.end_epoch(metrics)
            assert ours.end_epoch(metrics) == (verdict.improved, verdict.stop)
            assert ours.to_meta() == {**studio.to_meta(), "stopped_early": False}
            if verdict.stop:
                break
        resumed = namespace["Progress"](12, patience, studio.to_meta())
        assert resumed.to_meta() == {**studio.to_meta(), "stopped_early": False}


def test_gradient_clipping_follows_keras_global_clipnorm_formula():
    import torch

    module = load_module(generate(load_project(IRIS), "pytorch").source, "iris_clip")
    rng = np.random.default_rng(1)
    for max_norm in (0.1, 1.0, 100.0):
        parameters = [torch.nn.Parameter(torch.zeros(shape)) for shape in ((3, 4), (5,), (2, 2, 2))]
        gradients = [rng.normal(size=tuple(p.shape)).astype(np.float32) for p in parameters]
        for parameter, gradient in zip(parameters, gradients, strict=True):
            parameter.grad = torch.from_numpy(gradient.copy())
        module.clip_gradients(parameters, max_norm)
        norm = math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in gradients))
        for parameter, gradient in zip(parameters, gradients, strict=True):
            np.testing.assert_allclose(
                parameter.grad.numpy(), gradient * max_norm / max(norm, max_norm), rtol=1e-6
            )


@pytest.mark.slow
def test_pytorch_script_checkpoints_resumes_and_refuses_a_finished_checkpoint(tmp_path):
    import torch

    script = write_script(tmp_path, load_project(IRIS), "pytorch")
    first = run(tmp_path, [sys.executable, script, "--epochs", "2", "--checkpoint-dir", "ck"])
    assert first.returncode == 0, first.stderr[-2000:]
    lines = epoch_lines(first.stdout)
    assert [line.split(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    for name in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr 0.01"):
        assert name in lines[0]
    state = torch.load(tmp_path / "ck" / "checkpoint.pt", weights_only=True)
    assert set(state) == {"model", "optimizer", "meta"}
    progress = json.loads(state["meta"])["progress"]
    assert progress["epoch"] == 2 and progress["global_step"] == 2 * math.ceil(120 / 16)
    assert (tmp_path / "ck" / "best.pt").is_file()

    again = run(tmp_path, [sys.executable, script, "--epochs", "3", "--resume", "ck"])
    assert again.returncode == 0, again.stderr[-2000:]
    assert [line.split(":")[0] for line in epoch_lines(again.stdout)] == ["epoch 3/3"]

    done = run(tmp_path, [sys.executable, script, "--epochs", "2", "--resume", "ck"])
    assert done.returncode == 1 and "completed 2 epochs already" in done.stderr
    assert "Traceback" not in done.stderr


# ----- real runs ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["keras", "pytorch"])
def test_scripts_resume_studio_runs_and_the_studio_resumes_theirs(tmp_path, framework):
    project = load_project(IRIS)
    script = write_script(tmp_path, project, framework)
    studio = [sys.executable, "-m", "studio", "train", IRIS, "--framework", framework]
    started = run(tmp_path, [*studio, "--epochs", "2", "--out", tmp_path / "studio-run"])
    assert started.returncode == 0, started.stderr[-2000:]
    resumed = run(tmp_path, [sys.executable, script, "--epochs", "3", "--resume", "studio-run"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert [line.split(":")[0] for line in epoch_lines(resumed.stdout)] == ["epoch 3/3"]

    by_script = run(tmp_path, [sys.executable, script, "--epochs", "2", "--checkpoint-dir", "mine"])
    assert by_script.returncode == 0, by_script.stderr[-2000:]
    continued = run(tmp_path, [*studio, "--epochs", "3", "--resume", tmp_path / "mine"])
    assert continued.returncode == 0, continued.stderr[-2000:]
    epochs = [
        json.loads(line)["epoch"]
        for line in (tmp_path / "mine" / "metrics.jsonl").read_text().splitlines()
        if json.loads(line).get("type") == "epoch"
    ]
    assert epochs == [3]  # the studio went on after the script's two epochs


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name.split(".")[0])
@pytest.mark.parametrize("framework", ["keras", "pytorch"])
def test_every_examples_scripts_train_without_data_arguments(tmp_path, example, framework):
    project = load_project(example)
    if len(project.graph) < 2:
        pytest.skip("the blank template has no layer to train")
    script = write_script(tmp_path, project, framework)
    result = run(tmp_path, [sys.executable, script, "--epochs", "1"], timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(epoch_lines(result.stdout)) == 1


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["keras", "pytorch"])
def test_early_stopping_stops_and_keeps_the_best_weights(tmp_path, framework):
    script = write_script(tmp_path, mlp_without_dropout(), framework)
    # A learning rate this large makes every epoch after the first worse.
    result = run(tmp_path, [sys.executable, script, "--epochs", "12", "--patience", "2", "--lr", "40"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "early stopping: val_loss has not improved for 2 epochs" in result.stdout
    assert len(epoch_lines(result.stdout)) < 12


@pytest.mark.slow
def test_torchrun_with_two_processes_gives_the_weights_of_one_and_logs_once(tmp_path):
    import torch

    script = write_script(tmp_path, mlp_without_dropout(), "pytorch")
    # 25 does not divide by 2, nor 120 by 25: the shares and the last batch are uneven.
    flags = ["--epochs", "3", "--batch-size", "25"]
    one = run(tmp_path, [sys.executable, script, *flags, "--out", "one.pt"])
    assert one.returncode == 0, one.stderr[-2000:]
    torchrun = Path(sys.executable).with_name("torchrun")
    two = run(
        tmp_path, [torchrun, "--standalone", "--nproc-per-node", "2", script, *flags, "--out", "two.pt"]
    )
    assert two.returncode == 0, two.stderr[-3000:]
    assert len(epoch_lines(two.stdout)) == 3 and two.stdout.count("saved the trained weights") == 1
    single, double = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    for key, value in single.items():
        torch.testing.assert_close(double[key], value, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_studio_train_with_two_processes_and_keras_refused(tmp_path):
    studio = [sys.executable, "-m", "studio", "train", IRIS, "--epochs", "2", "--processes", "2"]
    result = run(tmp_path, [*studio, "--framework", "pytorch", "--out", tmp_path / "run"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(epoch_lines(result.stdout)) == 2
    assert {"checkpoint.pt", "best.pt", "final.pt", "data.npz"} <= {
        p.name for p in (tmp_path / "run").iterdir()
    }
    refused = run(tmp_path, [*studio, "--framework", "keras"])
    assert refused.returncode == 2 and "keras-team/keras#20585" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_keras_multi_worker_refuses_with_one_clear_line(tmp_path):
    script = write_script(tmp_path, load_project(IRIS), "keras")
    config = {
        "cluster": {"worker": ["localhost:23456", "localhost:23457"]},
        "task": {"type": "worker", "index": 0},
    }
    result = subprocess.run(
        [sys.executable, str(script), "--epochs", "1", "--strategy", "multi-worker"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**ENVIRONMENT, "TF_CONFIG": json.dumps(config)},
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "keras-team/keras#20585" in result.stderr.strip().splitlines()[-1]


def text_classifier() -> Project:
    """Token ids -> Embedding -> mean -> Dense: a model no built-in table can feed."""
    project = Project(name="text")
    graph = project.graph
    nodes = [
        graph.add_node("Input", params={"shape": (12,), "dtype": "int32"}).id,
        graph.add_node("Embedding", params={"input_dim": 50, "output_dim": 8}).id,
        graph.add_node("GlobalAveragePooling1D").id,
        graph.add_node("Dense", params={"units": 3}).id,
    ]
    for source, target in zip(nodes, nodes[1:], strict=False):
        graph.connect(source, target)
    return project


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["keras", "pytorch"])
def test_a_text_model_says_what_data_it_needs_and_trains_on_it(tmp_path, framework):
    script = write_script(tmp_path, text_classifier(), framework)
    missing = run(tmp_path, [sys.executable, script, "--epochs", "1"])
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "integer token ids: x of shape (N, 12)" in missing.stderr
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "tokens.npz", x=rng.integers(0, 50, (40, 12)), y=rng.integers(0, 3, 40))
    trained = run(tmp_path, [sys.executable, script, "--epochs", "2", "--data", "tokens.npz"])
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert len(epoch_lines(trained.stdout)) == 2


def write_data_files(folder: Path) -> dict[str, Path]:
    """The same small digits-like set as a CSV table, an image folder and IDX files."""
    from PIL import Image

    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (30, 8, 8), dtype=np.uint8)
    labels = np.arange(30) % 3
    csv_path = folder / "table.csv"
    rows = ["a,b,c,d,species"] + [
        f"{r[0]:.3f},{r[1]:.3f},{r[2]:.3f},{r[3]:.3f},{['setosa', 'versicolor', 'virginica'][label]}"
        for r, label in zip(rng.normal(size=(30, 4)), labels, strict=True)
    ]
    csv_path.write_text("\n".join(rows) + "\n")
    images = folder / "images"
    for index, (image, label) in enumerate(zip(pixels, labels, strict=True)):
        (images / f"class_{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(images / f"class_{label}" / f"{index:03d}.png")
    idx = folder / "train-images-idx3-ubyte"
    idx.write_bytes(bytes([0, 0, 8, 3]) + np.array([30, 8, 8], ">u4").tobytes() + pixels.tobytes())
    (folder / "train-labels-idx1-ubyte").write_bytes(
        bytes([0, 0, 8, 1]) + np.array([30], ">u4").tobytes() + labels.astype(np.uint8).tobytes()
    )
    return {"csv": csv_path, "images": images, "idx": idx}


def test_scripts_read_csv_images_and_idx_as_the_studio_does(tmp_path):
    from studio.datasets import load_dataset

    files = write_data_files(tmp_path)
    lenet = load_module(generate(load_project(LENET), "pytorch").source, "lenet_read")
    for kind, path in files.items():
        x, y, standardize = lenet.read_data(path)
        studio = load_dataset(str(path), validation_split=0.2, seed=0, normalize=False)
        # The studio's split, undone: its train and validation samples in the original order.
        order = np.random.default_rng(0).permutation(len(y))
        n_val = len(studio.y_val)
        expected_x = np.empty_like(x, dtype=np.float32)
        expected_x[order[n_val:]] = studio.x_train
        expected_x[order[:n_val]] = studio.x_val
        expected_y = np.empty(len(y), dtype=np.int64)
        expected_y[order[n_val:]], expected_y[order[:n_val]] = studio.y_train, studio.y_val
        np.testing.assert_allclose(x, expected_x, atol=1e-6, err_msg=kind)
        np.testing.assert_array_equal(y, expected_y, err_msg=kind)
        assert standardize == (kind == "csv")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["csv", "images", "idx"])
@pytest.mark.parametrize("framework", ["keras", "pytorch"])
def test_scripts_train_on_csv_images_and_idx(tmp_path, kind, framework):
    files = write_data_files(tmp_path)
    project = mlp_without_dropout() if kind == "csv" else load_project(LENET)
    script = write_script(tmp_path, project, framework)
    result = run(tmp_path, [sys.executable, script, "--epochs", "1", "--data", files[kind]])
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(epoch_lines(result.stdout)) == 1


def test_pytorch_script_refuses_fp16_without_a_gpu_in_one_line(tmp_path):
    script = write_script(tmp_path, load_project(IRIS), "pytorch")
    result = run(tmp_path, [sys.executable, script, "--epochs", "1", "--precision", "fp16"])
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "--precision fp16 needs a CUDA GPU, and this run is on cpu: use bf16 or fp32"
    )


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["keras", "pytorch"])
def test_scripts_write_tensorboard_events_and_train_in_bf16(tmp_path, framework):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    script = write_script(tmp_path, load_project(IRIS), framework)
    flags = ["--epochs", "2", "--precision", "bf16", "--tensorboard", "tb"]
    result = run(tmp_path, [sys.executable, script, *flags])
    assert result.returncode == 0, result.stderr[-2000:]
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = events.Tags()
    names = set(tags["scalars"]) | set(tags["tensors"])  # tf.summary writes its scalars as tensors
    assert {"loss", "val_loss", "accuracy", "val_accuracy", "learning_rate"} <= names
    assert any(name.startswith("weights/") for name in names | set(tags["histograms"]))


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["keras", "pytorch"])
def test_the_schedule_flags_pick_any_schedule_in_a_constant_projects_script(tmp_path, framework):
    """--lr-schedule and its parameters: the rate each epoch logs is the studio's formula's."""
    project = load_project(IRIS)
    assert project.training.lr_schedule == "constant"
    script = write_script(tmp_path, project, framework)
    flags = ["--epochs", "3", "--lr", "0.04", "--lr-schedule", "step", "--lr-step-epochs", "1"]
    result = run(tmp_path, [sys.executable, script, *flags, "--lr-gamma", "0.5"])
    assert result.returncode == 0, result.stderr[-2000:]
    rates = [float(line.split(", lr ")[1].split(",")[0]) for line in epoch_lines(result.stdout)]
    assert rates == [0.04, 0.02, 0.01]
    result = run(tmp_path, [sys.executable, script, "--lr-schedule", "cosine", "--lr-min", "0.5"])
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "--lr-min must be in [0, --lr) for cosine"
