"""Messages from a training process to its caller: plain JSON-compatible dicts with a ``"type"``.

Every message carries ``type``, ``framework`` and ``time`` (seconds since the
epoch). Epochs, steps and batches count from 1.

=========== =====================================================================
type        other keys
=========== =====================================================================
started     config (the RunConfig dict), run_dir, dataset (one line), num_train,
            num_val, batches_per_epoch, initial_epoch, device, params
            ({"trainable", "non_trainable"}), init ("keras-seed" | "torch-seed" |
            "checkpoint")
batch       epoch, step (batch within the epoch), global_step, loss (the batch's
            mean loss; NaN or inf when it diverged), samples_per_s
epoch       epoch, train_loss, train_accuracy, val_loss, val_accuracy (None when
            not measured), epoch_time (s), learning_rate (of the epoch's last batch)
checkpoint  path, kind ("best" | "final")
finished    summary (its keys are listed below)
failed      message (readable, one or a few lines), details (traceback text, for
            the log only), reason ("project" | "dataset" | "checkpoint" | "device" |
            "nan" | "crash" | "error")
stopped     summary (as in finished, for the part that ran)
=========== =====================================================================
"""

from __future__ import annotations

import time
from typing import Any

STARTED, BATCH, EPOCH, CHECKPOINT = "started", "batch", "epoch", "checkpoint"
FINISHED, FAILED, STOPPED = "finished", "failed", "stopped"
TERMINAL = frozenset({FINISHED, FAILED, STOPPED})

# Why a run failed: the CLI exits 2 for the first four (an unusable input), 1 for the others.
REASONS = ("project", "dataset", "checkpoint", "device", "nan", "crash", "error")
UNREADABLE_REASONS = frozenset(REASONS[:4])

# The keys of a finished/stopped summary:
#   framework: "keras" | "pytorch"
#   run_dir
#   epochs_completed: the epoch counter, counting epochs of resumed runs too
#   best_epoch: by val_loss (train_loss without validation data); None if no epoch ended
#   best_loss
#   final: {"train_loss", "train_accuracy", "val_loss", "val_accuracy"} of the last epoch
#   stopped_early: early stopping ended the run
#   wall_time: seconds, from the process start
#   train_time: seconds spent on training batches in this run (validation excluded)
#   first_epoch_time: seconds of this run's first epoch (includes tracing/compilation)
#   epoch_time: mean seconds per epoch (with validation), the first left out when there are more
#   samples_per_s: training samples per second over this run's batches after the first one
#   train_epoch_time: seconds per epoch at that speed: training batches only, no validation
#   first_step_time: seconds of this run's first batch (tracing, compilation, first allocations)
#   inference_ms: {"1": ms, "<batch_size>": ms}: median prediction latency; None unless benchmark
#   threads: {"intra_op", "inter_op"}: the framework's compute threads (0: its own default)
#   model_bytes: {"parameters", "optimizer_state"}: bytes of weights and buffers, of optimizer state
#   peak_memory_mb: peak resident memory of the training process
#   gpu_peak_memory_mb: peak accelerator memory, None on the CPU
#   params: {"trainable", "non_trainable"} in the framework's own count
#   device
#   files: {"final", "best", "onnx", "code", "metrics", "config", "confusion_matrix", "tensorboard"}:
#          paths that exist
#   warnings: readable notes (e.g. the ONNX export failed)


def _message(message_type: str, framework: str, **fields: Any) -> dict[str, Any]:
    return {"type": message_type, "framework": framework, "time": round(time.time(), 4), **fields}


def started(framework: str, config: dict[str, Any], **info: Any) -> dict[str, Any]:
    return _message(STARTED, framework, config=config, **info)


def batch(
    framework: str, epoch: int, step: int, global_step: int, loss: float, samples_per_s: float
) -> dict[str, Any]:
    return _message(
        BATCH,
        framework,
        epoch=epoch,
        step=step,
        global_step=global_step,
        loss=loss,
        samples_per_s=round(samples_per_s, 1),
    )


def epoch(
    framework: str,
    epoch: int,
    train_loss: float,
    train_accuracy: float | None,
    val_loss: float | None,
    val_accuracy: float | None,
    epoch_time: float,
    learning_rate: float | None = None,
) -> dict[str, Any]:
    return _message(
        EPOCH,
        framework,
        epoch=epoch,
        train_loss=train_loss,
        train_accuracy=train_accuracy,
        val_loss=val_loss,
        val_accuracy=val_accuracy,
        epoch_time=round(epoch_time, 4),
        learning_rate=learning_rate,
    )


def checkpoint(framework: str, path: str, kind: str) -> dict[str, Any]:
    return _message(CHECKPOINT, framework, path=path, kind=kind)


def finished(framework: str, summary: dict[str, Any]) -> dict[str, Any]:
    return _message(FINISHED, framework, summary=summary)


def stopped(framework: str, summary: dict[str, Any]) -> dict[str, Any]:
    return _message(STOPPED, framework, summary=summary)


def failed(framework: str, message: str, details: str = "", reason: str = "error") -> dict[str, Any]:
    return _message(FAILED, framework, message=message, details=details, reason=reason)


def format_message(message: dict[str, Any]) -> str:
    """One readable line for a log view."""
    kind, framework = message.get("type"), message.get("framework", "?")
    if kind == BATCH:
        return (
            f"[{framework}] epoch {message['epoch']} step {message['step']}: loss {message['loss']:.4g} "
            f"({message['samples_per_s']:.0f} samples/s)"
        )
    if kind == EPOCH:
        parts = [f"loss {message['train_loss']:.4g}"]
        for key, label in (("train_accuracy", "acc"), ("val_loss", "val_loss"), ("val_accuracy", "val_acc")):
            if message.get(key) is not None:
                parts.append(f"{label} {message[key]:.4g}")
        if message.get("learning_rate") is not None:
            parts.append(f"lr {message['learning_rate']:.3g}")
        return (
            f"[{framework}] epoch {message['epoch']}: "
            + ", ".join(parts)
            + f" ({message['epoch_time']:.2f} s)"
        )
    if kind == STARTED:
        return f"[{framework}] started in {message.get('run_dir')}: {message.get('dataset', '')}"
    if kind == CHECKPOINT:
        return f"[{framework}] saved the {message['kind']} weights to {message['path']}"
    if kind == FAILED:
        return f"[{framework}] failed: {message['message']}"
    if kind in (FINISHED, STOPPED):
        summary = message.get("summary", {})
        verb = "finished" if kind == FINISHED else "stopped"
        return f"[{framework}] {verb} after {summary.get('epochs_completed', 0)} epochs in {summary.get('run_dir')}"
    return f"[{framework}] {kind}"
