"""The training engine's framework-free parts: config, messages, counters, devices, folders, tables."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from studio.project import ProjectError
from studio.training import ConfigError, RunConfig, messages
from studio.training.compare import loss_curve_difference
from studio.training.console import ProgressPrinter, format_table
from studio.training.devices import CPU, Device, DeviceError, resolve_device
from studio.training.emitter import BatchStream, Emitter
from studio.training.errors import LossNotFinite, readable_error
from studio.training.progress import Progress
from studio.training.rundir import prepare_run, resume_folder, slug

EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"
IRIS = EXAMPLES / "mlp_iris.layers.json"


# ----- config -------------------------------------------------------------------------


def test_config_takes_the_project_settings_and_overrides():
    config = RunConfig.from_project(IRIS, "pytorch", epochs=3, learning_rate=0.5, device=None)
    assert config.dataset == "iris" and config.batch_size == 16  # from the project
    assert config.epochs == 3 and config.learning_rate == 0.5  # overridden
    assert config.device == "auto"  # None means "not given"
    assert config.project == str(IRIS.resolve()) and config.base_dir == str(EXAMPLES.resolve())


def test_config_json_round_trip():
    config = RunConfig.from_project(IRIS, "keras", early_stopping_patience=2, resume_from="runs/x")
    again = RunConfig.from_json(config.to_json())
    assert again == config
    data = json.loads(IRIS.read_text())
    from_dict = RunConfig.from_project(data, "keras")
    assert RunConfig.from_json(from_dict.to_json()).project == data


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"framework": "jax"}, "config.framework"),
        ({"epochs": 0}, "config.epochs: expected a positive integer"),
        ({"optimizer": "lbfgs"}, "config.optimizer"),
        ({"device": "tpu"}, "config.device"),
        ({"early_stopping_patience": -1}, "early_stopping_patience"),
    ],
)
def test_config_rejects_invalid_settings(overrides, expected):
    framework = overrides.pop("framework", "keras")
    with pytest.raises(ConfigError, match=expected):
        RunConfig.from_project(IRIS, framework, **overrides)


def test_config_reports_an_unreadable_project(tmp_path):
    with pytest.raises(ProjectError, match="no such file"):
        RunConfig.from_project(tmp_path / "missing.layers.json")
    with pytest.raises(ConfigError, match="unknown run setting 'colour'"):
        RunConfig.from_dict({"project": "x", "colour": "red"})


# ----- run folders --------------------------------------------------------------------


def test_run_folder_is_named_after_project_framework_and_time(tmp_path):
    config = RunConfig.from_project(IRIS, "keras", runs_root=str(tmp_path))
    first, folder = prepare_run(config, now=0)
    second, _ = prepare_run(config, now=0)
    assert folder.path.parent == tmp_path
    assert folder.path.name.startswith("mlp-on-iris-keras-")
    assert Path(second.out_dir).name == folder.path.name + "-2"  # never reuses a folder
    assert RunConfig.from_json(folder.config.read_text()) == first
    assert slug("LeNet on digits!") == "lenet-on-digits"


def test_run_folder_refuses_to_overwrite_a_run(tmp_path):
    config = RunConfig.from_project(IRIS, "keras", out_dir=str(tmp_path / "run"))
    prepare_run(config)
    with pytest.raises(ConfigError, match="already holds a training run"):
        prepare_run(config)


def test_resume_needs_a_checkpoint_of_the_framework(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    assert resume_folder(tmp_path / "checkpoint.pt", "pytorch").path == tmp_path
    with pytest.raises(ConfigError, match="holds a pytorch checkpoint: resume it with --framework pytorch"):
        resume_folder(tmp_path, "keras")
    with pytest.raises(ConfigError, match="no such file or folder"):
        resume_folder(tmp_path / "nope", "keras")


# ----- counters and early stopping ----------------------------------------------------


def test_progress_tracks_the_best_epoch_and_stops_after_patience():
    progress = Progress(epochs=10, patience=2)
    verdicts = [progress.end_epoch({"train_loss": 1.0, "val_loss": v}) for v in (0.9, 0.8, 0.85, 0.81)]
    assert [v.improved for v in verdicts] == [True, True, False, False]
    assert [v.stop for v in verdicts] == [False, False, False, True]
    assert progress.best_epoch == 2 and progress.best_loss == 0.8 and progress.stopped_early


def test_progress_without_validation_monitors_the_training_loss_and_survives_a_checkpoint():
    progress = Progress(epochs=5)
    progress.end_epoch({"train_loss": 0.7, "val_loss": None})
    progress.global_step = 8
    restored = Progress.from_meta(json.loads(json.dumps(progress.to_meta())), epochs=9, patience=0)
    assert (restored.epoch, restored.global_step, restored.best_epoch) == (1, 8, 1)
    assert restored.best_loss == 0.7 and restored.epochs == 9
    assert not restored.end_epoch({"train_loss": 0.9}).stop  # patience 0: never stops early


# ----- the message stream -------------------------------------------------------------


class _ListQueue:
    def __init__(self):
        self.items = []

    def put(self, item):
        self.items.append(item)


def test_batch_stream_logs_every_batch_and_reports_the_first_nan(tmp_path):
    queue, log = _ListQueue(), tmp_path / "metrics.jsonl"
    emitter = Emitter(queue, log, interval=3600)
    stream = BatchStream(emitter, "keras")
    stream.start_epoch()
    for step, loss in enumerate([0.5, 0.4, math.nan, 0.3], start=1):
        stream.add(2, step, 12 + step, loss, 4)
    with pytest.raises(LossNotFinite) as caught:
        stream.flush()
    assert str(caught.value) == (
        "loss became nan at epoch 2, step 15 (batch 3 of epoch 2): try a lower learning rate"
    )
    assert caught.value.reason == "nan"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [m["global_step"] for m in lines] == [13, 14, 15]  # up to and including the NaN
    assert math.isnan(lines[-1]["loss"])
    assert [m["step"] for group in queue.items for m in group] == [1, 2, 3]  # sent before raising
    assert stream.epoch_loss == pytest.approx(0.45)


def test_emitter_groups_batch_messages_but_sends_others_at_once(tmp_path):
    queue = _ListQueue()
    emitter = Emitter(queue, None, interval=3600)
    emitter.emit_batch(messages.batch("keras", 1, 1, 1, 0.5, 10.0))
    emitter.emit_batch(messages.batch("keras", 1, 2, 2, 0.4, 10.0))
    assert queue.items == []
    emitter.emit(messages.epoch("keras", 1, 0.45, None, None, None, 0.1))
    assert [[m["type"] for m in group] for group in queue.items] == [["batch", "batch", "epoch"]]


def test_messages_are_json_and_readable():
    message = messages.failed("pytorch", "boom", "Traceback ...", reason="crash")
    assert json.loads(json.dumps(message))["reason"] == "crash"
    assert messages.format_message(message) == "[pytorch] failed: boom"
    line = messages.format_message(messages.epoch("keras", 3, 0.25, 0.9, None, None, 1.5))
    assert line == "[keras] epoch 3: loss 0.25, acc 0.9 (1.50 s)"


def test_readable_error_is_short_and_names_the_type():
    message, reason = readable_error(ValueError("bad value\n" + "detail\n" * 50))
    assert message.startswith("ValueError: bad value") and message.count("\n") <= 5
    assert reason == "error"
    assert readable_error(MemoryError())[0].startswith("out of memory while training")


# ----- devices ------------------------------------------------------------------------

ONE_GPU = [CPU, Device("cuda:0", "NVIDIA H100", "pytorch"), Device("gpu:0", "NVIDIA H100", "keras")]


@pytest.mark.parametrize(
    ("requested", "framework", "devices", "expected"),
    [
        ("auto", "pytorch", [CPU], "cpu"),
        ("auto", "pytorch", ONE_GPU, "cuda:0"),
        ("gpu", "pytorch", ONE_GPU, "cuda:0"),
        ("auto", "keras", ONE_GPU, "gpu:0"),
        ("cuda:0", "keras", ONE_GPU, "gpu:0"),
        ("auto", "pytorch", [CPU, Device("mps", "Apple GPU", "pytorch")], "mps"),
        ("cpu", "keras", ONE_GPU, "cpu"),
    ],
)
def test_resolve_device(requested, framework, devices, expected):
    assert resolve_device(requested, framework, devices) == expected


@pytest.mark.parametrize(
    ("requested", "framework", "devices", "message"),
    [
        ("cuda:1", "pytorch", ONE_GPU, "cuda:1 is not available: PyTorch sees 1 CUDA device (cuda:0)"),
        ("cuda:0", "pytorch", [CPU], "cuda:0 is not available: PyTorch sees no CUDA device"),
        ("gpu", "keras", [CPU], "no GPU is visible to TensorFlow"),
        ("gpu:2", "keras", ONE_GPU, "gpu:2 is not available: TensorFlow sees 1 GPU (gpu:0)"),
        ("mps", "pytorch", ONE_GPU, "mps is not available"),
    ],
)
def test_resolve_device_names_what_the_framework_sees(requested, framework, devices, message):
    with pytest.raises(DeviceError) as caught:
        resolve_device(requested, framework, devices)
    assert str(caught.value).startswith(message)


# ----- the terminal -------------------------------------------------------------------


def _started(framework="keras"):
    config = {"epochs": 2}
    return messages.started(
        framework,
        config,
        run_dir="runs/x",
        dataset="iris: ...",
        batches_per_epoch=8,
        initial_epoch=0,
        device="cpu",
    )


def test_progress_printer_redraws_one_line_on_a_terminal():
    out = io.StringIO()
    printer = ProgressPrinter(out, tty=True)
    printer.handle(_started())
    printer.handle(messages.batch("keras", 1, 4, 4, 0.75, 100.0))
    printer.handle(messages.epoch("keras", 1, 0.7, 0.5, 0.8, 0.4, 0.2))
    printer.close()
    text = out.getvalue()
    assert "\rkeras epoch 1/2 [############------------] 4/8 loss 0.7500" in text
    assert "\rkeras epoch 1/2: loss 0.7000, acc 0.5000, val_loss 0.8000, val_acc 0.4000 (0.20 s)" in text


def test_progress_printer_prints_plain_epoch_lines_elsewhere():
    out = io.StringIO()
    printer = ProgressPrinter(out, tty=False)
    printer.handle(_started())
    printer.handle(messages.batch("keras", 1, 4, 4, 0.75, 100.0))
    printer.handle(messages.epoch("keras", 1, 0.7, None, None, None, 0.2))
    assert "\r" not in out.getvalue()
    assert out.getvalue().splitlines()[-1] == "keras epoch 1/2: loss 0.7000 (0.20 s)"


def test_table_has_a_column_per_framework():
    summary = {
        "epochs_completed": 2,
        "final": {"train_loss": 0.5},
        "params": {"trainable": 1200, "non_trainable": 0},
    }
    table = format_table({"keras": summary, "pytorch": dict(summary, epochs_completed=3)})
    lines = table.splitlines()
    assert lines[0].split() == ["keras", "pytorch"]
    assert lines[1].split() == ["epochs", "2", "3"]
    assert "1,200" in table


def test_loss_curve_difference():
    assert loss_curve_difference([1.0, 0.5, 0.25], [1.0, 0.52, 0.25, 9.0]) == (pytest.approx(0.02), 2)
    assert loss_curve_difference([], [1.0]) == (None, None)


def test_importing_the_engine_imports_no_framework():
    code = (
        "import sys, studio.training, studio.training.session, studio.training.console;"
        "print([m for m in ('torch', 'tensorflow', 'keras', 'onnx') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# ----- compare: notes, spreads, warnings, the table ------------------------------------------


def _compare_config(rate: float, optimizer: str = "adam") -> RunConfig:
    from studio.project import project_to_dict
    from tests.graph_builders import chain

    project = chain([4], ("Dense", {"units": 8}), ("Dropout", {"rate": rate}), ("Dense", {"units": 3}))
    return RunConfig.from_project(project_to_dict(project), "keras", optimizer=optimizer)


def test_compare_notes_name_dropout_only_when_it_drops_something():
    from studio.training.compare import comparison_notes

    assert not any("Dropout" in note for note in comparison_notes(_compare_config(0.0, "sgd")))
    assert comparison_notes(_compare_config(0.0, "sgd")) == []
    assert any("Dropout" in note for note in comparison_notes(_compare_config(0.25, "sgd")))


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "rmsprop"])
def test_compare_notes_no_optimizer_gap_since_both_programs_use_kerass_update_rule(optimizer):
    """The PyTorch program carries Keras's Adam and RMSprop rules (codegen.recipes): no gap to explain."""
    from studio.training.compare import comparison_notes

    assert comparison_notes(_compare_config(0.0, optimizer)) == []


def test_spread_is_median_min_max_of_what_was_measured():
    from studio.training.compare import spread

    assert spread([3.0, 1.0, None, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0}
    assert spread([None, None]) is None


def test_a_busy_machine_is_warned_about():
    from studio.training.compare import busy_warnings

    assert busy_warnings({"before": 0.2, "after": 0.9}, cores=4) == []
    [warning] = busy_warnings({"before": 0.2, "after": 2.5}, cores=4)
    assert "busy" in warning and "2.5 on 4 cores" in warning
    assert busy_warnings({"before": None, "after": None}, cores=4) == []


def test_the_comparison_table_shows_spreads_and_memory():
    from studio.training.console import format_comparison

    figures = {
        "threads": {"intra_op": 2, "inter_op": 2},
        "device": "cpu",
        "train_seconds_per_epoch": {"median": 0.5, "min": 0.4, "max": 0.7},
        "first_step_seconds": {"median": 1.0, "min": 1.0, "max": 1.0},
        "samples_per_second": {"median": 1000.0, "min": 900.0, "max": 1100.0},
        "inference_ms_per_batch": {"1": {"median": 0.2, "min": 0.2, "max": 0.2}},
        "model_bytes": 2048,
        "parameters": 100,
        "final_loss": 0.5,
        "val_accuracy": None,
    }
    table = format_comparison({"keras": figures, "pytorch": dict(figures, threads={"intra_op": 1})})
    lines = {line.split("  ")[0]: line for line in table.splitlines()}
    assert lines["train s/epoch (no validation)"].count("0.5000 [0.4000–0.7000]") == 2
    assert lines["threads (intra/inter-op)"].split()[-2:] == ["2/2", "1/default"]
    assert lines["samples/s"].count("1,000 [900–1,100]") == 2
    assert lines["model memory (KiB)"].split()[-2:] == ["2.0", "2.0"]
    assert lines["inference ms, batch 1"].split()[-1] == "0.200"


def test_a_run_folder_in_use_is_refused_until_its_run_ends(tmp_path):
    config = RunConfig.from_project(IRIS, "keras", out_dir=str(tmp_path / "run"))
    _, folder = prepare_run(config)  # held: the run is under way
    with pytest.raises(
        ConfigError, match=rf"run is in use by another training run \(process {os.getpid()}\)"
    ):
        prepare_run(config)
    with pytest.raises(ConfigError, match="in use by another training run"):
        prepare_run(config.with_changes(out_dir=str(tmp_path / "run" / ".." / "run")))
    folder.unlock()  # the run ended: the folder holds a run now, which is the next refusal
    with pytest.raises(ConfigError, match="already holds a training run"):
        prepare_run(config)


def test_a_second_process_training_into_the_same_folder_is_refused(tmp_path):
    config = RunConfig.from_project(IRIS, "keras", out_dir=str(tmp_path / "run"))
    _, folder = prepare_run(config)
    command = [
        sys.executable,
        "-m",
        "studio",
        "train",
        IRIS,
        "--framework",
        "keras",
        "--out",
        str(folder.path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {folder.path} is in use by another training run (process {os.getpid()}); "
        "wait for it to end, or choose another folder with --out"
    )
    folder.unlock()


# ----- errors that name the file and the fix (issue 17, class 10) ---------------------------------


def test_a_full_disk_names_the_file_and_what_to_do():
    from studio.training.errors import readable_error, write_error

    error = OSError(28, "No space left on device", "/runs/a/checkpoint.pt")
    message, reason = readable_error(error)
    assert message == (
        "cannot write /runs/a/checkpoint.pt: No space left on device; the disk is full: free some space, "
        "or train into a folder on another disk with --out"
    )
    assert reason == "error"
    assert str(write_error(OSError(13, "Permission denied"), "/runs/a/final.pt")) == (
        "cannot write /runs/a/final.pt: Permission denied"
    )


def test_a_pickled_or_damaged_checkpoint_is_named_without_relaying_torch_advice(tmp_path):
    import pickle

    import torch

    from studio.training.errors import checkpoint_error

    path = tmp_path / "checkpoint.pt"
    torch.save({"x": Path("anything")}, path)  # a Python object: needs unpickling
    with pytest.raises(pickle.UnpicklingError) as caught:
        torch.load(path, weights_only=True)
    assert "weights_only" in str(caught.value)  # torch advises loading it anyway; we must not relay that
    error = checkpoint_error(caught.value, path)
    assert str(error) == (
        f"cannot resume from the checkpoint {path}: it holds pickled Python objects, which are never "
        "loaded (they could run code); start a new run, or resume another run folder"
    )
    assert error.reason == "checkpoint" and "weights_only" not in str(error)
    import zipfile

    path.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(zipfile.BadZipFile) as caught:
        zipfile.ZipFile(path)
    assert str(checkpoint_error(caught.value, path)).startswith(
        f"cannot resume from the checkpoint {path}: it is damaged or not a checkpoint (BadZipFile: "
    )


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["keras", "pytorch"])
def test_resuming_from_a_damaged_checkpoint_exits_2_naming_it(tmp_path, framework):
    folder = tmp_path / "old"
    folder.mkdir()
    checkpoint = folder / ("checkpoint.npz" if framework == "keras" else "checkpoint.pt")
    checkpoint.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    command = [sys.executable, "-m", "studio", "train", str(IRIS), "--framework", framework]
    command += ["--resume", str(folder), "--out", str(tmp_path / "new")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot resume from the checkpoint {checkpoint}: it is damaged")
    assert "Traceback" not in result.stdout + result.stderr
    assert checkpoint.read_bytes() == b"PK\x03\x04" + b"\x00" * 100


def test_batch_size_and_epochs_beyond_the_integer_limit_are_config_errors():
    with pytest.raises(
        ConfigError, match=r"config.batch_size: expected a positive integer of at most 2147483647"
    ):
        RunConfig.from_project(IRIS, "keras", batch_size=10**20)
    with pytest.raises(ConfigError, match=r"config.epochs: expected a positive integer of at most"):
        RunConfig.from_project(IRIS, "keras", epochs=2**31)


def test_a_home_folder_of_no_user_is_a_dataset_error():
    from studio.datasets import DatasetError, load_dataset

    with pytest.raises(DatasetError, match="there is no user 'nosuchuser_x', so ~nosuchuser_x names no home"):
        load_dataset("~nosuchuser_x/data.csv")


def test_side_by_side_runs_split_the_cores_and_say_so(tmp_path):
    from studio.training import BothRun

    cores = os.cpu_count() or 1
    config = RunConfig.from_project(IRIS, "keras", out_dir=str(tmp_path / "both"))
    side_by_side = BothRun(config, parallel=True)
    half = max(1, cores // 2)
    assert {run.config.threads for run in side_by_side.runs.values()} == {half}
    assert side_by_side.note == f"side by side, each framework on {half} of the {cores} cores"
    one_after_the_other = BothRun(config, parallel=False)  # each may use every core in turn
    assert {run.config.threads for run in one_after_the_other.runs.values()} == {0}
    assert one_after_the_other.note == ""
    pinned = BothRun(config.with_changes(threads=1), parallel=True)  # the user's choice stands
    assert {run.config.threads for run in pinned.runs.values()} == {1}
