"""Fault injection outside the GUI: killed training processes, failing data, failing checkpoints.

(The GUI's faults — a killed run in the dashboard, a full disk while saving,
a crash during autosave, an exception in a slot — are in test_gui_faults.py.)
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from studio.cli import main
from studio.training import RunConfig, TrainingRun
from studio.training.checkpoints import CheckpointWriter
from studio.training.child import train_and_report
from studio.training.emitter import Emitter
from studio.training.engine import CHECKPOINT_INTERVAL
from studio.training.rundir import RunFolder, prepare_run

EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"
LENET = EXAMPLES / "lenet_digits.layers.json"
IRIS = EXAMPLES / "mlp_iris.layers.json"
TIMEOUT = 240


def logged(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def epochs_logged(folder: Path) -> list[int]:
    return [m["epoch"] for m in logged(folder) if m["type"] == "epoch"]


def checkpoint_epoch(folder: Path, framework: str) -> int:
    """The number of whole epochs the run folder's resume checkpoint holds."""
    path = RunFolder(folder).checkpoint(framework)
    if framework == "pytorch":
        import torch

        meta = torch.load(path, map_location="cpu", weights_only=True)["meta"]
    else:
        with np.load(path, allow_pickle=False) as data:
            meta = str(data["meta"])
    return json.loads(meta)["progress"]["epoch"]


def wait_for(run: TrainingRun, condition, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        run.poll()
        assert run.outcome is None, run.outcome
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def batches_after_epoch(run: TrainingRun, epoch: int) -> int:
    return sum(m["type"] == "batch" and m["epoch"] > epoch for m in run.messages)


# ----- the training process is killed mid-epoch --------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["pytorch", "keras"])
def test_a_run_killed_mid_epoch_keeps_its_metrics_and_last_checkpoint_and_resumes(tmp_path, framework):
    folder = tmp_path / "killed"
    run = TrainingRun(RunConfig.from_project(LENET, framework, epochs=500, out_dir=str(folder)))
    run.start()
    try:
        wait_for(run, lambda: len(run.messages) and batches_after_epoch(run, 2) >= 2)
        killed_at = time.time()
        os.kill(run.pid, signal.SIGKILL)
        run.wait(30)
    finally:
        run.close()

    assert run.outcome["type"] == "failed" and run.outcome["reason"] == "crash"
    checkpoint = RunFolder(folder).checkpoint(framework)
    assert run.outcome["message"] == (
        "the training process ended unexpectedly (exit code -9, SIGKILL); "
        f"metrics up to that point are in {folder / 'metrics.jsonl'}; "
        f"the checkpoint of the last whole epoch is {checkpoint} (resume from the run folder)"
    )
    lines = logged(folder)
    assert lines[-1]["type"] == "failed"
    epochs = epochs_logged(folder)
    assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) >= 2
    assert not any(m["type"] in ("finished", "stopped") for m in lines)
    # The checkpoint is whole and recent: written at most CHECKPOINT_INTERVAL after an epoch ended.
    saved = checkpoint_epoch(folder, framework)
    assert 1 <= saved <= epochs[-1]
    assert killed_at - checkpoint.stat().st_mtime < CHECKPOINT_INTERVAL + 1.0

    resumed = TrainingRun(
        RunConfig.from_project(
            LENET, framework, epochs=saved + 1, resume_from=str(folder), out_dir=str(tmp_path / "resumed")
        )
    )
    resumed.start()
    try:
        resumed.wait(TIMEOUT)
    finally:
        resumed.close()
    assert resumed.outcome["type"] == "finished", resumed.outcome
    started = next(m for m in resumed.messages if m["type"] == "started")
    assert started["initial_epoch"] == saved and started["init"] == "checkpoint"
    assert resumed.outcome["summary"]["epochs_completed"] == saved + 1


@pytest.mark.slow
def test_the_cli_reports_a_killed_training_process(tmp_path, capsys):
    out = tmp_path / "run"

    def kill_after_the_first_checkpoint() -> None:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if (out / "checkpoint.pt").exists():
                for child in multiprocessing.active_children():
                    if child.name == "studio-train-pytorch":
                        os.kill(child.pid, signal.SIGKILL)
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_after_the_first_checkpoint)
    killer.start()
    try:
        code = main(["train", str(LENET), "--framework", "pytorch", "--epochs", "500", "--out", str(out)])
    finally:
        killer.join()
    printed = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in printed.out + printed.err
    error_lines = [line for line in printed.err.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1, printed.err
    assert error_lines[0].startswith("error: the training process ended unexpectedly (exit code -9, SIGKILL)")
    assert str(out / "metrics.jsonl") in error_lines[0] and str(out / "checkpoint.pt") in error_lines[0]
    assert "pytorch epoch 1/500: loss" in printed.out
    assert epochs_logged(out) and logged(out)[-1]["type"] == "failed"


# ----- the data fails mid-epoch ------------------------------------------------------------


@pytest.mark.parametrize("framework", ["pytorch", "keras"])
def test_data_that_fails_mid_epoch_ends_the_run_naming_epoch_and_batch(tmp_path, monkeypatch, framework):
    """The batch source raises at batch 3 of epoch 2 (as a file read can, half-way through)."""
    if framework == "pytorch":
        from studio.training import torch_engine as engine_module
    else:
        from studio.training import keras_engine as engine_module
    real_batches = engine_module.batch_indices

    def failing_batches(n, batch_size, seed, epoch, **options):
        for index, batch in enumerate(real_batches(n, batch_size, seed, epoch, **options)):
            if options.get("shuffle", True) and (epoch, index) == (1, 2):
                raise OSError(5, "Input/output error", "/data/iris/part-3.csv")
            yield batch

    monkeypatch.setattr(engine_module, "batch_indices", failing_batches)
    config, folder = prepare_run(RunConfig.from_project(IRIS, framework, epochs=4, out_dir=str(tmp_path)))
    emitter = Emitter(None, folder.metrics)
    try:
        train_and_report(config, folder, emitter)  # in this process: the data source is patched here
    finally:
        emitter.close()

    lines = logged(tmp_path)
    failed = lines[-1]
    assert failed["type"] == "failed" and failed["reason"] == "dataset"
    assert failed["message"] == (
        "reading the training data failed at epoch 2, batch 3: "
        "OSError: [Errno 5] Input/output error: '/data/iris/part-3.csv'"
    )
    assert "Traceback" not in failed["message"] and "Traceback" in failed["details"]
    assert epochs_logged(tmp_path) == [1]
    assert [m["step"] for m in lines if m["type"] == "batch" and m["epoch"] == 2] == [1, 2]
    assert checkpoint_epoch(tmp_path, framework) == 1


@pytest.mark.parametrize("framework", ["pytorch", "keras"])
def test_a_full_disk_while_training_names_the_file_and_the_fix(tmp_path, monkeypatch, framework):
    """The disk fills when the first checkpoint is written (issue 17, class 10)."""
    if framework == "pytorch":
        from studio.training.torch_engine import TorchEngine as engine_class
    else:
        from studio.training.keras_engine import KerasEngine as engine_class

    def disk_full(self, snapshot):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(engine_class, "write_checkpoint", disk_full)
    config, folder = prepare_run(RunConfig.from_project(IRIS, framework, epochs=2, out_dir=str(tmp_path)))
    emitter = Emitter(None, folder.metrics)
    try:
        train_and_report(config, folder, emitter)
    finally:
        emitter.close()

    failed = logged(tmp_path)[-1]
    assert failed["type"] == "failed"
    assert failed["message"] == (
        f"cannot write {folder.checkpoint(framework)}: No space left on device; the disk is full: "
        "free some space, or train into a folder on another disk with --out"
    )


# ----- the checkpoint writer ---------------------------------------------------------------


def test_the_checkpoint_writer_keeps_the_newest_snapshot_and_reports_a_failed_write():
    written: list[int] = []
    release = threading.Event()

    def slow_write(snapshot: int) -> None:
        release.wait(5)
        if snapshot == 99:
            raise OSError(28, "No space left on device")
        written.append(snapshot)

    writer = CheckpointWriter(slow_write)
    writer.submit(1)  # being written while the next ones arrive
    time.sleep(0.05)
    for snapshot in (2, 3, 4):
        writer.submit(snapshot)
    release.set()
    writer.flush()
    assert written == [1, 4]  # 2 and 3 were overtaken before they were written

    writer.submit(99)
    with pytest.raises(OSError, match="No space left on device"):
        writer.flush()
    writer.submit(5)  # the error was reported once; the writer goes on
    writer.flush()
    assert written == [1, 4, 5]


def test_the_checkpoint_writer_writes_at_most_once_per_interval_unless_flushed():
    written: list[tuple[int, float]] = []
    writer = CheckpointWriter(lambda snapshot: written.append((snapshot, time.monotonic())), min_interval=0.5)
    began = time.monotonic()
    writer.submit(1)
    deadline = began + 5
    while not written and time.monotonic() < deadline:
        time.sleep(0.005)
    assert [snapshot for snapshot, _ in written] == [1]  # the first one goes at once
    for snapshot in (2, 3):
        writer.submit(snapshot)
    time.sleep(0.2)
    assert len(written) == 1  # still inside the interval
    while len(written) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert written[1][0] == 3 and written[1][1] - written[0][1] >= 0.5
    writer.submit(4)
    flushed = time.monotonic()
    writer.flush()  # no waiting for the interval
    assert written[2][0] == 4 and time.monotonic() - flushed < 0.4
