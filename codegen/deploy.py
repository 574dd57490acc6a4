"""Deployment formats: write a built model to a file, load the file back in its own runtime, compare.

Every format is made from one of the two generated models (the very programs the studio
exports), with its weights already set:

=========== ========= ============ ===================================================
format      made from file         checked in
=========== ========= ============ ===================================================
keras       Keras     .keras       ``keras.saving.load_model`` (safe mode)
pytorch     PyTorch   .pt          ``torch.load(weights_only=True)`` into ``build_model()``
onnx        PyTorch   .onnx        onnxruntime (exported through ``torch.export``)
pt2         PyTorch   .pt2         ``torch.export.load`` (an ExportedProgram)
litert      Keras     .tflite      the LiteRT interpreter (``ai-edge-litert``)
savedmodel  Keras     a folder     ``tf.saved_model.load``, the ``serving_default`` signature
=========== ========= ============ ===================================================

:func:`deploy` runs the model and the reloaded file on the same random batch (batch 2, seeded)
and writes the file only when the largest difference is within the format's tolerance. All the
formats keep float32 weights, so each tolerance is 1e-4: absolute, or relative to the largest
output where that exceeds 1. The ONNX, pt2 and SavedModel files have a dynamic batch axis; the
LiteRT model takes one sample at a time, as a device runs it (and as the converter can lower
recurrent layers), and is checked sample by sample. The PyTorch model is exported with gradients enabled:
in no-grad inference, ``nn.MultiheadAttention`` takes a fused fast path
(``aten::_native_multi_head_attention``) that neither ONNX nor a portable ExportedProgram can
express; the unfused path computes the same function.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codegen.plan import ModelPlan
from codegen.runtime import to_torch_layout
from codegen.verify import random_inputs
from studio.files import staged_output

TOLERANCE = 1e-4
ONNX_OPSET = 18


@dataclass(frozen=True)
class DeployFormat:
    name: str
    framework: str  # the generated model it is made from: "keras" or "pytorch"
    suffix: str  # the file's ending; "" for a folder
    runtime: str  # where the written file is loaded back and run
    help: str
    tolerance: float = TOLERANCE


FORMATS = {
    fmt.name: fmt
    for fmt in (
        DeployFormat("keras", "keras", ".keras", "Keras", "a whole Keras model (.keras)"),
        DeployFormat(
            "pytorch", "pytorch", ".pt", "PyTorch", "a PyTorch state_dict for the program's build_model()"
        ),
        DeployFormat(
            "onnx", "pytorch", ".onnx", "onnxruntime", "ONNX through torch.export (dynamo exporter)"
        ),
        DeployFormat("pt2", "pytorch", ".pt2", "torch.export.load", "a torch.export ExportedProgram"),
        DeployFormat(
            "litert", "keras", ".tflite", "the LiteRT interpreter", "a LiteRT (TensorFlow Lite) model"
        ),
        DeployFormat(
            "savedmodel", "keras", "", "tf.saved_model", "a TensorFlow SavedModel folder for TF Serving"
        ),
    )
}


class DeployError(Exception):
    """The model cannot be written in the format, or its file does not run as the model does."""


@dataclass(frozen=True)
class DeployReport:
    path: Path
    format: DeployFormat
    difference: float  # the largest difference between the reloaded file and the model

    def text(self) -> str:
        fmt = self.format
        return (
            f"wrote {self.path} ({fmt.name}); in {fmt.runtime} it differs from the {_NAMES[fmt.framework]} "
            f"model by at most {self.difference:.3g} (tolerance {fmt.tolerance:g})"
        )


_NAMES = {"keras": "Keras", "pytorch": "PyTorch"}


def example_inputs(plan: ModelPlan, batch: int = 2, seed: int = 0) -> tuple[list[np.ndarray], list]:
    """A random batch for the model: (Keras-layout arrays, PyTorch tensors)."""
    import torch

    arrays = random_inputs(plan, batch, np.random.default_rng(seed))
    tensors = [
        torch.from_numpy(to_torch_layout(array, layer.layout))
        for array, layer in zip(arrays, plan.inputs, strict=True)
    ]
    return arrays, tensors


def largest_difference(got: list[np.ndarray], want: list[np.ndarray]) -> float:
    """The largest absolute difference, relative to the largest output when that exceeds 1."""
    if len(got) != len(want):
        raise DeployError(f"the file gives {len(got)} outputs; the model has {len(want)}")
    worst = 0.0
    for a, b in zip(got, want, strict=True):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            raise DeployError(f"the file gives an output of shape {a.shape}; the model's is {b.shape}")
        if b.size:
            scale = max(1.0, float(np.max(np.abs(b))))
            worst = max(worst, float(np.max(np.abs(a - b))) / scale)
    return worst


def deploy(
    name: str,
    plan: ModelPlan,
    model,
    out_path: str | os.PathLike,
    build: Callable[[], Any] | None = None,
    seed: int = 0,
) -> DeployReport:
    """Write ``model`` (the generated Keras or PyTorch model of ``plan``, as ``FORMATS[name]``
    says) to ``out_path``, checked in its runtime first; ``build`` makes an untrained PyTorch
    model (the ``pytorch`` format loads the state_dict into it). Raises DeployError."""
    fmt = FORMATS[name]
    arrays, tensors = example_inputs(plan, seed=seed)
    if fmt.framework == "pytorch":
        model = model.to("cpu").eval()
        expected = _torch_outputs(model(*tensors))
        inputs = tensors
    else:
        expected = [np.asarray(output) for output in _as_list(model(_keras_args(arrays), training=False))]
        # Serving signatures name their inputs after the Keras model's Input layers.
        inputs = {tensor.name: array for tensor, array in zip(model.inputs, arrays, strict=True)}
    save, run = _HANDLERS[name]
    if fmt.suffix:
        with staged_output(out_path, fmt.suffix) as temp:  # replaces the old file only when checked
            temp.unlink()  # some savers refuse an existing file
            difference = _save_and_check(fmt, save, run, model, temp, inputs, expected, build)
    else:
        with staged_folder(Path(out_path)) as temp:
            difference = _save_and_check(fmt, save, run, model, temp, inputs, expected, build)
    return DeployReport(Path(out_path), fmt, difference)


def _save_and_check(fmt, save, run, model, path: Path, inputs, expected, build) -> float:
    held: list[str] = []
    try:
        with held_native_output() as held:  # the lines are there once the block has ended
            save(model, path, inputs)
            got = run(path, inputs, build)
    except DeployError:
        raise
    except Exception as error:  # noqa: BLE001 - every exporter has its own errors; one line each
        raise DeployError(_failure(fmt, error, held)) from None
    difference = largest_difference(got, expected)
    if not difference <= fmt.tolerance:  # NaN fails too
        raise DeployError(
            f"the {fmt.name} file differs from the {_NAMES[fmt.framework]} model in {fmt.runtime} by "
            f"{difference:.3g}, above the tolerance {fmt.tolerance:g}; nothing was written"
        )
    return difference


def _failure(fmt: DeployFormat, error: BaseException, held: list[str]) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    reason = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    native = [line for line in held if "error" in line.lower()]
    if native:
        reason += f" ({native[-1].strip()[:200]})"
    return f"the {fmt.name} export failed: {reason}"


def _as_list(value) -> list:
    if isinstance(value, dict):
        return [value[key] for key in sorted(value, key=_output_index)]
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _output_index(key: str) -> tuple[int, str]:
    """Serving outputs are named output_0, output_1, ...: order them by their number."""
    suffix = key.rsplit("_", 1)[-1]
    return (int(suffix), key) if suffix.isdigit() else (0, key)


def _torch_outputs(outputs) -> list[np.ndarray]:
    return [item.detach().cpu().numpy() for item in _as_list(outputs)]


def _dynamic_batch(inputs: list):
    from torch.export import Dim

    batch = Dim("batch", min=1, max=2**20)
    return tuple({0: batch} for _ in inputs)


# What torch itself warns about while exporting, that says nothing about the user's model: its own
# pytree code calling a deprecated check, and nn.LSTM's weight list (rebuilt, not trained, in export).
TORCH_EXPORT_NOISE = (
    (FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated"),
    (UserWarning, r"The tensor attributes .*_flat_weights.* were assigned during export"),
)


@contextlib.contextmanager
def _quiet_torch_export() -> Iterator[None]:
    with warnings.catch_warnings():
        for category, message in TORCH_EXPORT_NOISE:
            warnings.filterwarnings("ignore", message=message, category=category)
        yield


def _exported_program(model, inputs: list):
    import torch

    with torch.enable_grad(), _quiet_torch_export():  # the unfused attention (see the module doc)
        return torch.export.export(model, tuple(inputs), dynamic_shapes=_dynamic_batch(inputs))


# ----- the formats: save(model, path, inputs), run(path, inputs, build) -> outputs ---------------


def _save_keras(model, path: Path, inputs) -> None:
    model.save(str(path))


def _run_keras(path: Path, inputs, build) -> list[np.ndarray]:
    import keras

    loaded = keras.saving.load_model(str(path), safe_mode=True, compile=False)
    return [
        np.asarray(output) for output in _as_list(loaded(_keras_args(list(inputs.values())), training=False))
    ]


def _keras_args(arrays: list):
    """A Keras model's call argument: one array, or the list of them for several inputs."""
    return arrays[0] if len(arrays) == 1 else arrays


def _save_state_dict(model, path: Path, inputs) -> None:
    import torch

    torch.save({key: value.detach().clone() for key, value in model.state_dict().items()}, str(path))


def _run_state_dict(path: Path, inputs, build) -> list[np.ndarray]:
    import torch

    model = build()
    model.load_state_dict(torch.load(str(path), weights_only=True), strict=True)
    with torch.no_grad():
        return _torch_outputs(model.eval()(*inputs))


def _save_onnx(model, path: Path, inputs) -> None:
    import onnxscript.optimizer
    import onnxscript.rewriter
    import torch
    from onnxscript.rewriter.rules.common import (
        remove_optional_bias_from_conv_rule,
        remove_optional_bias_from_conv_transpose_rule,
    )

    program = _exported_program(model, inputs)
    with _quiet_torch_export():
        onnx_program = torch.onnx.export(
            program,
            opset_version=ONNX_OPSET,
            optimize=False,
            verbose=False,
            custom_translation_table={torch.ops.aten.softplus.default: _onnx_softplus},
        )
    # Constants folded and the zero biases of bias-free convolutions dropped, but no layers fused: the
    # graph keeps a node (or a few) per layer, named after it, so that it reads, and imports, as the
    # model; onnxruntime fuses (batch norm into convolutions) when it loads the file.
    onnxscript.optimizer.fold_constants(onnx_program.model)
    rules = [remove_optional_bias_from_conv_rule, remove_optional_bias_from_conv_transpose_rule]
    onnxscript.rewriter.rewrite(onnx_program.model, pattern_rewrite_rules=rules)
    onnxscript.optimizer.remove_unused_nodes(onnx_program.model)
    onnx_program.save(str(path), external_data=False)


def _onnx_softplus(x, beta: float = 1.0, threshold: float = 20.0):
    """ONNX's own Softplus, as Keras computes it: log(1 + exp(x)). torch's linear branch above
    ``threshold`` (20) is left out: there the float32 result is x either way, and the file reads
    as one operator rather than five (``F.softplus`` is only emitted with beta 1)."""
    from onnxscript import opset18 as op

    if beta != 1.0:
        raise DeployError(f"softplus with beta={beta} is not written by the studio's programs")
    return op.Softplus(x)


def _run_onnx(path: Path, inputs, build) -> list[np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [item.name for item in session.get_inputs()]
    return session.run(None, {name: tensor.numpy() for name, tensor in zip(names, inputs, strict=True)})


def _save_pt2(model, path: Path, inputs) -> None:
    import torch

    program = _exported_program(model, inputs)
    with _quiet_torch_export():
        torch.export.save(program, str(path))


def _run_pt2(path: Path, inputs, build) -> list[np.ndarray]:
    import torch

    with _quiet_torch_export():
        program = torch.export.load(str(path))
    return _torch_outputs(program.module()(*inputs))


def _save_litert(model, path: Path, inputs) -> None:
    import tensorflow as tf

    # A batch of one, as a device runs the model: the converter cannot lower a recurrent layer's
    # loop over an unknown batch (TensorListReserve needs a static element shape).
    # Through a SavedModel of that signature, which holds the weights as the converter wants them.
    specs = [tf.TensorSpec([1, *tensor.shape[1:]], tensor.dtype, name=tensor.name) for tensor in model.inputs]
    with tempfile.TemporaryDirectory() as folder:
        saved = Path(folder) / "model"
        model.export(str(saved), format="tf_saved_model", input_signature=[_keras_args(specs)], verbose=False)
        path.write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(saved)).convert())


def _run_litert(path: Path, inputs, build) -> list[np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path)).get_signature_runner()
    _check_signature(set(runner.get_input_details()), inputs)
    batch = len(next(iter(inputs.values())))
    samples = [
        _as_list(runner(**{name: array[index : index + 1] for name, array in inputs.items()}))
        for index in range(batch)
    ]
    return [np.concatenate([np.asarray(sample[i]) for sample in samples]) for i in range(len(samples[0]))]


def _save_savedmodel(model, path: Path, inputs) -> None:
    model.export(str(path), format="tf_saved_model", verbose=False)


def _run_savedmodel(path: Path, inputs, build) -> list[np.ndarray]:
    import tensorflow as tf

    serving = tf.saved_model.load(str(path)).signatures["serving_default"]
    _check_signature(set(serving.structured_input_signature[1]), inputs)
    outputs = serving(**{name: tf.constant(array) for name, array in inputs.items()})
    return [value.numpy() for value in _as_list(outputs)]


def _check_signature(names: set[str], inputs: dict) -> None:
    if names != set(inputs):
        raise DeployError(f"the file's inputs {sorted(names)} are not the model's {list(inputs)}")


_HANDLERS = {
    "keras": (_save_keras, _run_keras),
    "pytorch": (_save_state_dict, _run_state_dict),
    "onnx": (_save_onnx, _run_onnx),
    "pt2": (_save_pt2, _run_pt2),
    "litert": (_save_litert, _run_litert),
    "savedmodel": (_save_savedmodel, _run_savedmodel),
}


# ----- output plumbing --------------------------------------------------------------------------


@contextlib.contextmanager
def held_native_output() -> Iterator[list[str]]:
    """Hold back what native code writes to descriptors 1 and 2 in the block (TensorFlow's converter
    and torch's exporter log there); the lines are in the yielded list afterwards, for errors."""
    held: list[str] = []
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError, OSError):
            stream.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield held
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(AttributeError, ValueError, OSError):
                    stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for descriptor in saved:
                os.close(descriptor)
            sink.seek(0)
            held += sink.read().decode("utf-8", errors="replace").splitlines()


@contextlib.contextmanager
def staged_folder(path: Path) -> Iterator[Path]:
    """A temporary folder beside ``path`` that replaces it when the block succeeds (an old folder
    is moved aside first and removed after); a file at ``path`` is refused."""
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(20, "exists and is not a folder", str(path))
    temp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield temp
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
        os.replace(path, old / path.name)
    os.replace(temp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
