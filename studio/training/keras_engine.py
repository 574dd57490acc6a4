"""Training with Keras 3 (TensorFlow backend): ``model.compile`` and ``model.fit`` on the generated model.

The batches come from a tf.data pipeline over studio.datasets.batch_indices
(the order PyTorch runs use too), gathered from the arrays inside the
pipeline. A callback streams batch and epoch messages, checks the stop
request and the loss every batch, and does the epoch bookkeeping.

Keras reports the running mean of the loss over the epoch; the callback
recovers each batch's own loss from consecutive means and batch sizes
(exact up to float32 rounding of the mean, about 1e-7 relative times the
number of batches so far).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from codegen import GeneratedCode, recipes
from codegen.deploy import deploy
from codegen.runtime import load_module
from codegen.weights import keras_to_torch_state, load_torch_state
from studio.datasets import batch_indices
from studio.training.devices import DeviceError, resolve_device, tensorflow_devices
from studio.training.engine import Engine
from studio.training.errors import StopRequested, TrainingError, checkpoint_error, is_pickled
from studio.training.memory import tensorflow_gpu_peak_mb
from studio.training.progress import Progress
from studio.training.rundir import RunFolder, atomic_target
from studio.training.tensorboard import TensorFlowEventLog


def import_keras():
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:  # take GPU memory as needed, not all of it: PyTorch may train beside it
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised
            pass
    return keras, tf


def build_keras_model(keras, code: GeneratedCode, seed: int, module=None):
    """The model of the generated Keras source, initialised from ``seed``."""
    module = module or load_module(code.source, code.filename[:-3])
    keras.utils.set_random_seed(seed)
    return module.build_model()


class KerasEngine(Engine):
    framework = "keras"

    def setup(self) -> None:
        self.keras, self.tf = import_keras()
        if self.config.threads:  # before TensorFlow's runtime starts
            self.tf.config.threading.set_intra_op_parallelism_threads(self.config.threads)
            self.tf.config.threading.set_inter_op_parallelism_threads(self.config.threads)
        self.device = _resolve(self.config.device, self.tf)
        self._scope = contextlib.ExitStack()
        self._scope.enter_context(self.keras.device(self.device))
        config, session = self.config, self.session
        code = session.code["keras"]
        program = load_module(code.source, code.filename[:-3])
        self.model = self._build_model(code, program)
        # The program's own per-batch learning-rate callback (codegen.schedules); none: constant.
        self.schedule = program.PerBatchLearningRate if config.lr_schedule != "constant" else None
        self.model.compile(
            optimizer=program.make_optimizer(config.learning_rate),  # the exported program's own
            loss=recipes.keras_loss(self.keras, config.loss, session.logits),
            metrics=recipes.keras_metrics(self.keras, config.loss, session.logits, session.classification),
        )
        self.best_weights: list[np.ndarray] | None = None
        if config.resume_from:
            self._load_checkpoint()
            self.init = "checkpoint"

    def _build_model(self, code: GeneratedCode, program):
        """The model, under the mixed-precision policy of ``config.precision`` (codegen.recipes).

        Variables stay float32 under a mixed policy; the output layers compute in float32 too, as
        Keras recommends, so that the loss and the softmax are not rounded to 8 (or 11) bits.
        """
        keras, precision = self.keras, self.config.precision
        problem = recipes.precision_problem(precision, self.device)
        if problem:
            raise TrainingError(problem, reason="device")
        policy = recipes.PRECISIONS[precision].keras_policy
        if policy is None:
            return build_keras_model(keras, code, self.config.seed, program)
        keras.mixed_precision.set_global_policy(policy)
        try:
            model = build_keras_model(keras, code, self.config.seed, program)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        for layer in self.session.plan.outputs:
            model.get_layer(layer.ident).dtype_policy = keras.DTypePolicy("float32")
        return model

    def train(self) -> None:
        data, config = self.session.data, self.config
        validation = (data.x_val, data.y_val) if data.num_val else None
        self.data_failure: TrainingError | None = None
        try:
            self.model.fit(
                self._train_dataset(),
                epochs=config.epochs,
                initial_epoch=self.progress.first_epoch,
                steps_per_epoch=-(-data.num_train // config.batch_size),
                validation_data=validation,
                validation_batch_size=config.batch_size,
                callbacks=[_streaming_callback(self), *self._schedule_callback()],
                shuffle=False,  # the batches already come in the shared seeded order
                verbose=0,
            )
        except Exception as error:
            # tf.data prefetches, so a failure it recorded counts only if it is what stopped fit
            if self.data_failure is not None and not isinstance(error, (TrainingError, StopRequested)):
                raise self.data_failure from None
            raise
        finally:
            self._scope.close()

    def _schedule_callback(self) -> list[Any]:
        if self.schedule is None:
            return []
        per_epoch = -(-self.session.data.num_train // self.config.batch_size)
        return [self.schedule(self.config.learning_rate, per_epoch, per_epoch * self.config.epochs)]

    def _train_dataset(self):
        """Batches of every remaining epoch, in the shared seeded order."""
        tf, data, config = self.tf, self.session.data, self.config
        n, size, seed = data.num_train, config.batch_size, config.seed
        first, last = self.progress.first_epoch, config.epochs

        def indices():
            for epoch in range(first, last):
                try:
                    yield from self.read_batches(epoch, batch_indices(n, size, seed, epoch))
                except TrainingError as error:  # tf.data would bury it in its own error
                    self.data_failure = error
                    raise

        with tf.device("/CPU:0"):  # tf.data runs on the CPU; the batches go to the device
            x, y = tf.constant(data.x_train), tf.constant(data.y_train)
        order = tf.data.Dataset.from_generator(indices, output_signature=tf.TensorSpec([None], tf.int64))
        batches = order.map(lambda index: (tf.gather(x, index), tf.gather(y, index)))
        return batches.prefetch(tf.data.AUTOTUNE)

    def param_counts(self) -> dict[str, int]:
        return {
            "trainable": int(sum(np.prod(w.shape) for w in self.model.trainable_weights)),
            "non_trainable": int(sum(np.prod(w.shape) for w in self.model.non_trainable_weights)),
        }

    # ----- checkpoints and weights --------------------------------------------------------

    def capture_checkpoint(self) -> dict[str, np.ndarray]:
        """Weights, optimizer state and progress as arrays for one .npz (no pickles)."""
        optimizer = self.model.optimizer
        arrays = {f"weight_{i}": w for i, w in enumerate(self.model.get_weights())}
        arrays.update({f"optimizer_{i}": np.array(v.numpy()) for i, v in enumerate(optimizer.variables)})
        meta = {
            "framework": "keras",
            "progress": self.progress.to_meta(),
            "optimizer_variables": [v.path for v in optimizer.variables],
        }
        arrays["meta"] = np.array(json.dumps(meta))
        return arrays

    def write_checkpoint(self, snapshot: dict[str, np.ndarray]) -> None:
        with atomic_target(self.folder.checkpoint("keras")) as temp:
            np.savez(temp, **snapshot)

    def _load_checkpoint(self) -> None:
        path = RunFolder(self.config.resume_from).checkpoint("keras")
        try:
            data = np.load(path, allow_pickle=False)
            meta = json.loads(str(data["meta"]))
            weights = [data[f"weight_{i}"] for i in range(len(self.model.get_weights()))]
        except Exception as error:  # noqa: BLE001 - a bad zip, a missing entry, pickled objects...
            # The cause stays in the details, unless it is torch's advice to unpickle anyway.
            raise checkpoint_error(error, path) from (None if is_pickled(error) else error)
        with data:
            try:
                self.model.set_weights(weights)
            except (ValueError, KeyError) as error:
                raise TrainingError(
                    f"the checkpoint {path} does not fit this model (was the graph changed?): {error}"
                ) from None
            optimizer = self.model.optimizer
            optimizer.build(self.model.trainable_variables)
            for index, variable in enumerate(optimizer.variables):
                if variable.path.endswith("learning_rate"):
                    continue  # a resumed run may use a new learning rate
                variable.assign(data[f"optimizer_{index}"])
        self.progress = Progress.from_meta(
            meta["progress"], self.config.epochs, self.config.early_stopping_patience
        )

    def snapshot_best(self) -> None:
        self.best_weights = self.model.get_weights()

    def save_weights(self, kind: str) -> bool:
        if kind == "best" and self.best_weights is None:
            return False
        path = self.folder.weights(kind, "keras")
        current = self.model.get_weights() if kind == "best" else None
        if kind == "best":
            self.model.set_weights(self.best_weights)
        try:
            with atomic_target(path) as temp:
                self.model.save(temp)
        finally:
            if current is not None:
                self.model.set_weights(current)
        return True

    def learning_rate(self) -> float:
        return float(self.model.optimizer.learning_rate)

    def open_event_log(self) -> TensorFlowEventLog:
        return TensorFlowEventLog(self.tf, self.folder.tensorboard)

    def weight_state(self) -> dict[str, np.ndarray]:
        plan = self.session.plan
        weights = {
            layer.ident: self.model.get_layer(layer.ident).get_weights()
            for layer in plan.layers
            if not layer.spec.is_source
        }
        return keras_to_torch_state(plan, weights)

    def validation_scores(self) -> np.ndarray:
        data = self.session.data
        with self.keras.device(self.device):
            scores = self.model.predict(data.x_val, batch_size=self.config.batch_size, verbose=0)
        return np.asarray(scores, dtype=np.float32)

    def export_onnx(self) -> None:
        code = self.session.code["pytorch"]
        model = load_module(code.source, code.filename[:-3]).build_model()
        load_torch_state(model, self.weight_state())
        deploy("onnx", self.session.plan, model, self.folder.onnx)  # checked under onnxruntime first

    def measure_gpu_memory(self) -> float | None:
        return tensorflow_gpu_peak_mb(self.tf, self.device)

    def thread_counts(self) -> dict[str, int]:
        threading = self.tf.config.threading
        return {
            "intra_op": threading.get_intra_op_parallelism_threads(),
            "inter_op": threading.get_inter_op_parallelism_threads(),
        }

    def model_bytes(self) -> dict[str, int]:
        optimizer = self.model.optimizer
        return {
            "parameters": sum(_nbytes(v) for v in self.model.weights),
            "optimizer_state": sum(_nbytes(v) for v in optimizer.variables) if optimizer.built else 0,
        }

    def inference_call(self, size: int) -> Callable[[], Any]:
        x_train = self.session.data.x_train
        x = x_train[np.arange(size) % len(x_train)]

        def predict() -> None:
            with self.keras.device(self.device):
                self.model.predict_on_batch(x)  # returns NumPy arrays: waits for the result

        return predict


def _resolve(requested: str, tf) -> str:
    try:
        return resolve_device(requested, "keras", tensorflow_devices(tf))
    except DeviceError as error:
        raise TrainingError(str(error), reason="device") from None


def _streaming_callback(engine: KerasEngine):
    """A StreamingCallback for ``engine`` (the class is made here: Keras is imported lazily)."""
    keras = engine.keras

    class StreamingCallback(keras.callbacks.Callback):
        """Streams batch/epoch messages; stop, NaN and early stopping happen here."""

        def __init__(self, engine: KerasEngine) -> None:
            super().__init__()
            self.engine = engine
            self.sizes = _batch_sizes(engine.session.data.num_train, engine.config.batch_size)

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.epoch_start = time.perf_counter()
            self.seen, self.total = 0, 0.0
            self.engine.start_epoch()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            engine = self.engine
            size = self.sizes[batch]
            self.seen += size
            total = float(logs["loss"]) * self.seen  # logs hold the running mean over the epoch
            loss = (total - self.total) / size
            self.total = total
            engine.batch_done(engine.progress.epoch, batch, loss, size)
            if not math.isfinite(loss) or engine.stream.due():
                engine.stream.flush()
            self.batches_end = time.perf_counter()
            engine.check_stop()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            logs = logs or {}
            metrics = {
                "train_loss": _number(logs.get("loss")),
                "train_accuracy": _number(logs.get("accuracy")),
                "val_loss": _number(logs.get("val_loss")),
                "val_accuracy": _number(logs.get("val_accuracy")),
            }
            now = time.perf_counter()
            batches_end = getattr(self, "batches_end", now)
            verdict = self.engine.end_epoch(metrics, now - self.epoch_start, batches_end - self.epoch_start)
            if verdict.stop:
                self.model.stop_training = True

    return StreamingCallback(engine)


def _nbytes(variable: Any) -> int:
    return int(np.prod(variable.shape)) * np.dtype(variable.dtype).itemsize


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _batch_sizes(n: int, batch_size: int) -> list[int]:
    return [min(batch_size, n - start) for start in range(0, n, batch_size)]
