"""Training with PyTorch: a plain loop over the generated model, in the shared seeded batch order.

Initial weights: a run with ``same_start`` loads the weights Keras
initialises from the seed (made by a short-lived subprocess, see
studio.training.initial, so this process never imports TensorFlow);
otherwise the model keeps PyTorch's own initialisation after
``torch.manual_seed(seed)``.

Losses stay on the device until the stream sends a group of batch messages
(every 50 ms), so streaming costs one sync per group, not one per batch.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from codegen import recipes
from codegen.deploy import deploy
from codegen.plan import CF
from codegen.runtime import load_module, to_torch_layout
from codegen.weights import torch_counts
from studio.datasets import batch_indices
from studio.training.devices import DeviceError, resolve_device, torch_devices
from studio.training.engine import Engine
from studio.training.errors import TrainingError, checkpoint_error, is_pickled
from studio.training.initial import keras_initial_state
from studio.training.memory import torch_gpu_peak_mb
from studio.training.progress import EpochVerdict, Progress
from studio.training.rundir import RunFolder, atomic_target
from studio.training.tensorboard import TorchEventLog

# Datasets up to this size are copied to the accelerator once; larger ones batch by batch.
DEVICE_DATA_LIMIT = 1 << 30


class TorchEngine(Engine):
    framework = "pytorch"

    def setup(self) -> None:
        import torch

        self.torch = torch
        config, session = self.config, self.session
        if config.threads:
            torch.set_num_threads(config.threads)
            with contextlib.suppress(RuntimeError):  # allowed once, before any inter-op work
                torch.set_num_interop_threads(config.threads)
        try:
            self.device = resolve_device(config.device, "pytorch", torch_devices(torch))
        except DeviceError as error:
            raise TrainingError(str(error), reason="device") from None
        code = session.code["pytorch"]
        module = load_module(code.source, code.filename[:-3])
        torch.manual_seed(config.seed)
        self.model = module.build_model()
        checkpoint = self._read_checkpoint() if config.resume_from else None
        if checkpoint is not None:
            self._load_model_state(checkpoint["model"])
            self.init = "checkpoint"
        elif config.same_start:
            state = keras_initial_state(self.folder)
            self._load_model_state({key: torch.from_numpy(value) for key, value in state.items()})
            self.init = "keras-seed"
        else:
            self.init = "torch-seed"
        self.model.to(self.device)
        # The exported program's own optimizer: Keras's update rule (codegen.recipes).
        self.optimizer = module.make_optimizer(self.model.parameters(), config.learning_rate)
        if checkpoint is not None:
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            for group in self.optimizer.param_groups:
                group["lr"] = config.learning_rate  # a resumed run may use a new learning rate
            meta = json.loads(checkpoint["meta"])
            self.progress = Progress.from_meta(
                meta["progress"], config.epochs, config.early_stopping_patience
            )
        self._schedule(module)
        self._precision()
        self.loss_fn = recipes.torch_loss(torch, config.loss, session.logits)
        self.correct_fn = recipes.torch_correct(torch, config.loss, session.logits)
        self.best_state: dict[str, Any] | None = None
        self._tensors()

    def _schedule(self, module) -> None:
        """The program's own LambdaLR (codegen.schedules), stepped after every batch; None: constant."""
        self.scheduler = None
        self.last_lr = self.config.learning_rate
        if self.config.lr_schedule == "constant":
            return
        for group in self.optimizer.param_groups:
            group.pop("initial_lr", None)  # a resumed run restarts the schedule from the new base rate
        per_epoch = -(-self.session.data.num_train // self.config.batch_size)
        self.scheduler = module.make_scheduler(
            self.optimizer,
            self.config.learning_rate,
            per_epoch,
            per_epoch * self.config.epochs,
            first_step=self.progress.global_step,
        )

    def _precision(self) -> None:
        """Autocast for bf16/fp16 (codegen.recipes.PRECISIONS); fp16 also scales the loss (CUDA only)."""
        torch, precision = self.torch, recipes.PRECISIONS[self.config.precision]
        problem = recipes.precision_problem(self.config.precision, self.device)
        if problem:
            raise TrainingError(problem, reason="device")
        device_type = self.device.split(":")[0]
        if precision.torch_dtype is None:
            self.autocast = contextlib.nullcontext
        else:
            dtype = getattr(torch, precision.torch_dtype)
            self.autocast = lambda: torch.autocast(device_type, dtype=dtype)
        self.scaler = torch.amp.GradScaler(device_type) if precision.loss_scaling else None

    def _tensors(self) -> None:
        """The dataset as tensors in PyTorch's layout, on the device when it fits."""
        torch, data, layer = self.torch, self.session.data, self.session.input
        int_input = data.x_train.dtype == np.int32

        def tensor(array: np.ndarray, is_input: bool):
            if is_input:
                array = to_torch_layout(array, layer.layout)
                if int_input:
                    array = array.astype(np.int64)
            return torch.from_numpy(np.ascontiguousarray(array))

        arrays = (data.x_train, data.y_train, data.x_val, data.y_val)
        self.on_device = self.device != "cpu" and sum(a.nbytes for a in arrays) <= DEVICE_DATA_LIMIT
        place = (lambda t: t.to(self.device)) if self.on_device else (lambda t: t)
        self.x_train, self.y_train = place(tensor(data.x_train, True)), place(tensor(data.y_train, False))
        self.x_val, self.y_val = place(tensor(data.x_val, True)), place(tensor(data.y_val, False))

    def _batch(self, x, y, indices: np.ndarray):
        index = self.torch.from_numpy(indices)
        if self.on_device:
            index = index.to(self.device, non_blocking=True)
            return x[index], y[index]
        xb, yb = x[index], y[index]
        if self.device != "cpu":
            xb, yb = xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True)
        return xb, yb

    def _forward(self, x):
        """The model's output in Keras's channels-last layout."""
        output = self.model(x)
        if self.session.output.layout.kind == CF and output.dim() >= 3:
            output = output.movedim(1, -1)
        return output

    # ----- the loop -----------------------------------------------------------------------

    def train(self) -> None:
        for epoch_index in range(self.progress.first_epoch, self.config.epochs):
            if self.run_epoch(epoch_index).stop:
                break

    def run_epoch(self, epoch_index: int) -> EpochVerdict:
        """One epoch: the batches, the validation pass and the epoch's bookkeeping."""
        start = time.perf_counter()
        train_loss, train_accuracy = self._train_epoch(epoch_index)
        batches_end = time.perf_counter()
        val_loss, val_accuracy = self._evaluate()
        metrics = {
            "train_loss": train_loss,
            "train_accuracy": train_accuracy,
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
        }
        return self.end_epoch(metrics, time.perf_counter() - start, batches_end - start)

    def _train_epoch(self, epoch_index: int) -> tuple[float, float | None]:
        torch, config, model = self.torch, self.config, self.model
        model.train()
        self.start_epoch()
        accuracy = _Accuracy(torch, self.correct_fn, self.device) if self.session.classification else None
        order = batch_indices(len(self.x_train), config.batch_size, config.seed, epoch_index)
        batches = (self._batch(self.x_train, self.y_train, indices) for indices in order)
        for batch_index, (x, y) in enumerate(self.read_batches(epoch_index, batches)):
            self.optimizer.zero_grad(set_to_none=True)
            with self.autocast():
                output = self._forward(x)
                loss = self.loss_fn(output, y)
            self._step(loss)
            self.batch_done(epoch_index, batch_index, loss.detach(), len(y))
            if accuracy is not None:
                accuracy.add(output.detach(), y)
            if self.stream.due():
                self.flush_stream()
                if accuracy is not None:
                    accuracy.count()
            self.check_stop()
        self.flush_stream()
        return self.stream.epoch_loss, None if accuracy is None else accuracy.value()

    def _step(self, loss) -> None:
        self.last_lr = self.optimizer.param_groups[0]["lr"]
        if self.scaler is None:
            loss.backward()
            self.optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        if self.scheduler is not None:
            self.scheduler.step()

    def _evaluate(self) -> tuple[float | None, float | None]:
        """Loss and accuracy on the validation split, in eval mode (as Keras's evaluate)."""
        torch, config = self.torch, self.config
        n = len(self.x_val)
        if n == 0:
            return None, None
        self.model.eval()
        losses, sizes = [], []
        correct, count = torch.zeros((), dtype=torch.int64, device=self.device), 0
        with torch.no_grad(), self.autocast():
            for indices in batch_indices(n, config.batch_size, config.seed, 0, shuffle=False):
                x, y = self._batch(self.x_val, self.y_val, indices)
                output = self._forward(x)
                losses.append(self.loss_fn(output, y).float())
                sizes.append(len(indices))
                if self.session.classification:
                    right, size = self.correct_fn(output, y)
                    correct += right
                    count += size
        # One transfer for the pass; the weighted mean in float64 on the CPU (MPS has no float64).
        values = torch.stack(losses).cpu().double()
        total = float((values * torch.tensor(sizes, dtype=torch.float64)).sum())
        return total / n, (correct.item() / count if count else None)

    def flush_stream(self) -> None:
        self.stream.flush(lambda losses: self.torch.stack(losses).tolist())

    def learning_rate(self) -> float:
        return float(np.float32(self.last_lr))  # as Keras holds it, so both logs show the same number

    def open_event_log(self) -> TorchEventLog:
        return TorchEventLog(self.folder.tensorboard)

    def weight_state(self) -> dict[str, np.ndarray]:
        return {key: value.detach().float().cpu().numpy() for key, value in self.model.state_dict().items()}

    def validation_scores(self) -> np.ndarray:
        torch, config = self.torch, self.config
        self.model.eval()
        outputs = []
        with torch.no_grad(), self.autocast():
            for indices in batch_indices(len(self.x_val), config.batch_size, config.seed, 0, shuffle=False):
                x, _ = self._batch(self.x_val, self.y_val, indices)
                outputs.append(self._forward(x).float().cpu())
        return torch.cat(outputs).numpy()

    def param_counts(self) -> dict[str, int]:
        parameters, buffers = torch_counts(self.model)
        return {
            "trainable": parameters,
            "non_trainable": buffers,
        }

    # ----- checkpoints and weights --------------------------------------------------------

    def _read_checkpoint(self) -> dict[str, Any]:
        path = RunFolder(self.config.resume_from).checkpoint("pytorch")
        try:
            state = self.torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - torch raises many kinds for a bad file
            # The cause stays in the details, unless it is torch's advice to unpickle anyway.
            raise checkpoint_error(error, path) from (None if is_pickled(error) else error)
        if not isinstance(state, dict):
            raise checkpoint_error(TypeError(f"it holds a {type(state).__name__}, not a dict"), path)
        return state

    def _load_model_state(self, state: dict[str, Any]) -> None:
        try:
            self.model.load_state_dict(state, strict=True)
        except RuntimeError as error:
            first = str(error).strip().splitlines()[0]
            raise TrainingError(
                f"the saved weights do not fit this model (was the graph changed?): {first}"
            ) from None

    def capture_checkpoint(self) -> dict[str, Any]:
        return {
            "model": _cloned(self.model.state_dict()),
            "optimizer": _cloned(self.optimizer.state_dict()),
            "meta": json.dumps({"framework": "pytorch", "progress": self.progress.to_meta()}),
        }

    def write_checkpoint(self, snapshot: dict[str, Any]) -> None:
        with atomic_target(self.folder.checkpoint("pytorch")) as temp:
            self.torch.save(snapshot, temp)

    def snapshot_best(self) -> None:
        self.best_state = {key: value.detach().clone() for key, value in self.model.state_dict().items()}

    def save_weights(self, kind: str) -> bool:
        state = self.model.state_dict() if kind == "final" else self.best_state
        if state is None:
            return False
        with atomic_target(self.folder.weights(kind, "pytorch")) as temp:
            self.torch.save({key: value.cpu() for key, value in state.items()}, temp)
        return True

    def export_onnx(self) -> None:
        deploy("onnx", self.session.plan, self.model, self.folder.onnx)  # checked under onnxruntime first
        self.model.to(self.device)

    def measure_gpu_memory(self) -> float | None:
        return torch_gpu_peak_mb(self.torch, self.device)

    def synchronize(self) -> None:
        if self.device.startswith("cuda"):
            self.torch.cuda.synchronize(self.device)

    def thread_counts(self) -> dict[str, int]:
        return {"intra_op": self.torch.get_num_threads(), "inter_op": self.torch.get_num_interop_threads()}

    def model_bytes(self) -> dict[str, int]:
        torch = self.torch
        weights = sum(t.numel() * t.element_size() for t in self.model.state_dict().values())
        state = sum(
            value.numel() * value.element_size()
            for per_parameter in self.optimizer.state.values()
            for value in per_parameter.values()
            if torch.is_tensor(value)
        )
        return {"parameters": weights, "optimizer_state": state}

    def inference_call(self, size: int) -> Callable[[], Any]:
        torch = self.torch
        x, _ = self._batch(self.x_train, self.y_train, np.arange(size) % len(self.x_train))
        self.model.eval()

        def predict() -> None:
            with torch.no_grad():
                output = self._forward(x)
            if self.device != "cpu":
                output.cpu()  # wait for the result

        return predict


class _Accuracy:
    """Training accuracy over an epoch, counted a group of batches at a time (when the loss stream
    flushes) rather than with a few small tensor operations after every batch."""

    def __init__(self, torch, correct_fn, device: str) -> None:
        self.torch, self.correct_fn = torch, correct_fn
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.total = 0
        self.pending: list[tuple[Any, Any]] = []  # (output, target) of batches not counted yet

    def add(self, output, target) -> None:
        self.pending.append((output, target))

    def count(self) -> None:
        if not self.pending:
            return
        outputs, targets = zip(*self.pending, strict=True)
        self.pending = []
        right, total = self.correct_fn(self.torch.cat(outputs), self.torch.cat(targets))
        self.correct += right
        self.total += total

    def value(self) -> float | None:
        self.count()
        return self.correct.item() / self.total if self.total else None


def _cloned(value: Any) -> Any:
    """A copy of a state dict whose tensors are cloned (much faster than copy.deepcopy)."""
    if isinstance(value, dict):
        return {key: _cloned(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_cloned(item) for item in value]
    if hasattr(value, "detach"):
        return value.detach().clone()
    return value
