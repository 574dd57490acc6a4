"""The shape of every run, whatever the framework: set up, announce, train, save, summarise.

A framework engine (keras_engine, torch_engine) subclasses :class:`Engine`
and fills in building the model, the epoch loop, checkpoints and saving;
this class owns the message stream, the counters, early stopping, the stop
request and the summary.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import numpy as np

from studio.training import messages
from studio.training.checkpoints import CheckpointWriter
from studio.training.confusion import confusion_report, write_report
from studio.training.emitter import BatchStream, Emitter
from studio.training.errors import StopRequested, TrainingError, readable_error, write_error
from studio.training.memory import peak_rss_mb
from studio.training.progress import EpochVerdict, Progress
from studio.training.rundir import RunFolder
from studio.training.session import Session
from studio.training.tensorboard import EventLog

Batch = TypeVar("Batch")

# The resume checkpoint is written after an epoch at most this often (seconds): a killed run
# loses at most about this much training, and tiny epochs do not pay for a file each.
CHECKPOINT_INTERVAL = 1.0

# The stop request and the caller's presence are looked at most this often (seconds): a stop
# takes effect within a batch plus this, and a fast loop does not pay the check every batch.
STOP_CHECK_INTERVAL = 0.02


class Engine:
    framework = ""

    def __init__(
        self,
        session: Session,
        folder: RunFolder,
        emitter: Emitter,
        stop_event: Any = None,
        started_at: float | None = None,
        parent_pid: int | None = None,
    ) -> None:
        self.session = session
        self.config = session.config
        self.folder = folder
        self.emitter = emitter
        self.stream = BatchStream(emitter, self.framework)
        self.progress = Progress(self.config.epochs, self.config.early_stopping_patience)
        self._stop_event = stop_event
        self._parent_pid = parent_pid
        self._next_stop_check = 0.0
        self.started_at = started_at if started_at is not None else time.perf_counter()
        self.device = "cpu"
        self.init = "keras-seed"
        self.timings: list[tuple[float, float, int]] = []  # per epoch: (epoch s, batches s, samples)
        self._epoch_started = time.perf_counter()
        self.first_step: tuple[float, int] | None = None  # (seconds, samples) of this run's first batch
        self.inference_ms: dict[str, float] | None = None  # batch size -> median latency (benchmark runs)
        self.peak_memory: float | None = None
        self.gpu_peak_memory: float | None = None
        self.files: dict[str, str] = {"config": str(folder.config), "metrics": str(folder.metrics)}
        self.warnings: list[str] = list(session.data.notes)  # e.g. channels-first data transposed
        self.checkpoints = CheckpointWriter(self._write_checkpoint_file, CHECKPOINT_INTERVAL)
        self.events: EventLog | None = None  # TensorBoard, when the config asks for it

    # ----- what a framework engine provides ----------------------------------------------

    def setup(self) -> None:
        """Import the framework, pick the device, build the model and optimizer, restore a checkpoint."""
        raise NotImplementedError

    def train(self) -> None:
        """Train from ``progress.first_epoch`` to ``config.epochs``, calling batch_done and end_epoch."""
        raise NotImplementedError

    def param_counts(self) -> dict[str, int]:
        raise NotImplementedError

    def capture_checkpoint(self) -> Any:
        """The resume state now (weights, optimizer, ``progress.to_meta()``), copied in memory."""
        raise NotImplementedError

    def write_checkpoint(self, snapshot: Any) -> None:
        """Write a captured state to ``folder.checkpoint(framework)``, atomically."""
        raise NotImplementedError

    def snapshot_best(self) -> None:
        raise NotImplementedError

    def save_weights(self, kind: str) -> bool:
        """Write final/best weights; False when there is nothing to write."""
        raise NotImplementedError

    def export_onnx(self) -> None:
        raise NotImplementedError

    def measure_gpu_memory(self) -> float | None:
        return None

    def learning_rate(self) -> float:
        """The learning rate the last training batch used."""
        raise NotImplementedError

    def open_event_log(self) -> EventLog:
        """A TensorBoard writer into ``folder.tensorboard``."""
        raise NotImplementedError

    def weight_state(self) -> dict[str, np.ndarray]:
        """The weights as NumPy arrays under their PyTorch state-dict names (TensorBoard histograms)."""
        raise NotImplementedError

    def validation_scores(self) -> np.ndarray:
        """The model's outputs on the validation inputs, channels-last (as Keras computes them)."""
        raise NotImplementedError

    def thread_counts(self) -> dict[str, int]:
        """{"intra_op", "inter_op"}: the framework's compute threads (0: its own default)."""
        raise NotImplementedError

    def model_bytes(self) -> dict[str, int]:
        """{"parameters", "optimizer_state"}: bytes of the weights (and buffers) and of the optimizer's state."""
        raise NotImplementedError

    def inference_call(self, size: int) -> Callable[[], Any]:
        """A call that predicts one batch of ``size`` training samples and waits for the result."""
        raise NotImplementedError

    def synchronize(self) -> None:
        """Wait for the accelerator's queued work (engines that run asynchronously override this)."""

    def flush_stream(self) -> None:
        self.stream.flush()

    # ----- the run ------------------------------------------------------------------------

    def run(self) -> None:
        self.setup()
        if self.progress.epoch >= self.config.epochs:
            raise TrainingError(
                f"the checkpoint has already completed {self.progress.epoch} epochs; "
                f"ask for more than {self.progress.epoch} epochs to continue training"
            )
        self.emit_started()
        if self.config.tensorboard:
            self.folder.tensorboard.mkdir(exist_ok=True)
            self.events = self.open_event_log()
            self.files["tensorboard"] = str(self.folder.tensorboard)
        try:
            self._train_and_save()
        finally:
            if self.events is not None:
                self.events.close()

    def _train_and_save(self) -> None:
        try:
            self.train()
        except StopRequested:
            self.flush_stream()
            self.measure_memory()
            self.checkpoints.flush()
            self.save_all(onnx=False)
            self.emitter.emit(messages.stopped(self.framework, self.summary()))
            return
        except BaseException:
            self._keep_what_was_done()
            raise
        self.measure_memory()
        if self.config.benchmark:
            self.measure_inference()
        self.checkpoints.flush()
        self.save_all(onnx=self.config.export_onnx)
        self.emitter.emit(messages.finished(self.framework, self.summary()))

    def emit_started(self) -> None:
        data = self.session.data
        self.emitter.emit(
            messages.started(
                self.framework,
                self.config.to_dict(),
                run_dir=str(self.folder.path),
                dataset=data.describe(),
                num_train=data.num_train,
                num_val=data.num_val,
                batches_per_epoch=-(-data.num_train // self.config.batch_size),
                initial_epoch=self.progress.epoch,
                device=self.device,
                params=self.param_counts(),
                init=self.init,
            )
        )

    def check_stop(self) -> None:
        """Raise StopRequested if the caller asked to stop, or is gone (looked at every
        STOP_CHECK_INTERVAL seconds at most)."""
        now = time.perf_counter()
        if now < self._next_stop_check:
            return
        self._next_stop_check = now + STOP_CHECK_INTERVAL
        if self._stop_event is not None and self._stop_event.is_set():
            raise StopRequested
        if self._parent_pid is not None and os.getppid() != self._parent_pid:
            raise StopRequested

    def read_batches(self, epoch_index: int, batches: Iterable[Batch]) -> Iterator[Batch]:
        """``batches`` one at a time; an error while reading one names the epoch and the batch."""
        iterator = iter(batches)
        for batch_index in itertools.count():
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except Exception as error:  # noqa: BLE001 - whatever the data source raised
                message, _ = readable_error(error)
                raise TrainingError(
                    f"reading the training data failed at epoch {epoch_index + 1}, "
                    f"batch {batch_index + 1}: {message}",
                    reason="dataset",
                ) from error
            yield batch

    def start_epoch(self) -> None:
        """At the start of each epoch's batches."""
        self._epoch_started = time.perf_counter()
        self.stream.start_epoch()

    def batch_done(self, epoch_index: int, batch_index: int, loss: Any, size: int) -> None:
        """After each training batch (0-based indices); ``loss`` may be a device scalar."""
        if self.first_step is None:  # tracing, compilation and first allocations: timed apart
            self.synchronize()
            self.first_step = (time.perf_counter() - self._epoch_started, size)
        self.progress.global_step += 1
        self.stream.add(epoch_index + 1, batch_index + 1, self.progress.global_step, loss, size)

    def end_epoch(self, metrics: dict[str, Any], epoch_time: float, train_time: float) -> EpochVerdict:
        """After each epoch: message, counters, best snapshot, checkpoint."""
        self.flush_stream()
        self.timings.append((epoch_time, train_time, self.stream.epoch_samples))
        epoch = self.progress.epoch + 1
        learning_rate = self.learning_rate()
        self.emitter.emit(
            messages.epoch(
                self.framework,
                epoch,
                metrics["train_loss"],
                metrics.get("train_accuracy"),
                metrics.get("val_loss"),
                metrics.get("val_accuracy"),
                epoch_time,
                learning_rate,
            )
        )
        if self.events is not None:
            self.events.write_epoch(epoch, {**metrics, "learning_rate": learning_rate}, self.weight_state())
        verdict = self.progress.end_epoch(metrics)
        if verdict.improved:
            self.snapshot_best()
        self.checkpoints.submit(self.capture_checkpoint())
        return verdict

    def _keep_what_was_done(self) -> None:
        """A failing run still logs the batches it trained and leaves the checkpoint of its last
        whole epoch on disk. The run's own error is the one reported."""
        with contextlib.suppress(Exception):  # e.g. LossNotFinite again: already logged
            self.flush_stream()
        try:
            self.checkpoints.flush()
        except Exception as error:  # noqa: BLE001
            print(f"the last checkpoint could not be written: {error}", file=sys.stderr)

    def measure_memory(self) -> None:
        self.peak_memory = peak_rss_mb()
        self.gpu_peak_memory = self.measure_gpu_memory()

    def measure_inference(self) -> None:
        """Median prediction latency at batch size 1 and at the training batch size."""
        sizes = sorted({1, self.config.batch_size})
        self.inference_ms = {str(size): median_ms(self.inference_call(size)) for size in sizes}

    def steady_speed(self) -> tuple[float | None, float | None]:
        """(samples/s, seconds per epoch) over this run's training batches after the first one,
        validation left out; None without a second batch."""
        if self.first_step is None:
            return None, None
        seconds = sum(t[1] for t in self.timings) - self.first_step[0]
        samples = sum(t[2] for t in self.timings) - self.first_step[1]
        if samples <= 0 or seconds <= 0:
            return None, None
        rate = samples / seconds
        return rate, self.session.data.num_train / rate

    def _write_checkpoint_file(self, snapshot: Any) -> None:
        path = self.folder.checkpoint(self.framework)
        try:
            self.write_checkpoint(snapshot)
        except OSError as error:
            raise write_error(error, path) from None

    def write_confusion(self) -> None:
        """``confusion_matrix.json`` of a classification run, from the final weights."""
        data, config = self.session.data, self.config
        report = confusion_report(
            self.validation_scores(),
            data.y_val,
            config.loss,
            self.session.logits,
            data.class_names,
            data.x_val,
        )
        report.update(framework=self.framework, weights="final", epoch=self.progress.epoch)
        try:
            write_report(self.folder.confusion, report)
        except OSError as error:
            raise write_error(error, self.folder.confusion) from None
        self.files["confusion_matrix"] = str(self.folder.confusion)

    def save_all(self, onnx: bool) -> None:
        for kind in ("final", "best"):
            try:
                saved = self.save_weights(kind)
            except OSError as error:
                raise write_error(error, self.folder.weights(kind, self.framework)) from None
            if saved:
                path = str(self.folder.weights(kind, self.framework))
                self.files[kind] = path
                self.emitter.emit(messages.checkpoint(self.framework, path, kind))
        if self.config.classification and self.session.data.num_val and self.progress.epoch:
            self.write_confusion()
        if onnx:
            try:
                self.export_onnx()
                self.files["onnx"] = str(self.folder.onnx)
            except Exception as error:  # noqa: BLE001 - the run succeeded; the export is a bonus
                first = str(error).strip().splitlines()[0] if str(error).strip() else ""
                self.warnings.append(f"the ONNX export failed: {type(error).__name__}: {first}")

    def summary(self) -> dict[str, Any]:
        progress = self.progress
        last = progress.last
        steady = self.timings[1:] or self.timings  # the first epoch also traces/compiles: left out
        epoch_time = sum(t[0] for t in steady) / len(steady) if steady else None
        samples_per_s, train_epoch_time = self.steady_speed()
        return {
            "framework": self.framework,
            "run_dir": str(self.folder.path),
            "epochs_completed": progress.epoch,
            "best_epoch": progress.best_epoch,
            "best_loss": None if progress.best_epoch is None else progress.best_loss,
            "final": {
                key: last.get(key) for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
            },
            "stopped_early": progress.stopped_early,
            "wall_time": round(time.perf_counter() - self.started_at, 3),
            "train_time": round(sum(t[1] for t in self.timings), 3),
            "first_epoch_time": round(self.timings[0][0], 4) if self.timings else None,
            "epoch_time": None if epoch_time is None else round(epoch_time, 4),
            "samples_per_s": None if samples_per_s is None else round(samples_per_s, 1),
            "train_epoch_time": None if train_epoch_time is None else round(train_epoch_time, 5),
            "first_step_time": None if self.first_step is None else round(self.first_step[0], 5),
            "inference_ms": self.inference_ms,
            "threads": self.thread_counts(),
            "model_bytes": self.model_bytes(),
            "peak_memory_mb": self.peak_memory,
            "gpu_peak_memory_mb": self.gpu_peak_memory,
            "params": self.param_counts(),
            "device": self.device,
            "precision": self.config.precision,
            "files": dict(self.files),
            "warnings": list(self.warnings),
        }


def median_ms(call: Callable[[], Any], budget: float = 0.3, least: int = 5, most: int = 200) -> float:
    """The median milliseconds of ``call`` after two warm-up calls: at least ``least`` calls, more
    while ``budget`` seconds last (at most ``most``)."""
    call()
    call()
    times: list[float] = []
    deadline = time.perf_counter() + budget
    while len(times) < least or (len(times) < most and time.perf_counter() < deadline):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 4)
