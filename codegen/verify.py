"""The proof of equivalence: run the generated Keras and PyTorch programs side by side.

1. Generate both files and build both models *from the generated source*.
2. Copy the Keras weights into the PyTorch model, converting every layout.
3. Run both in inference mode on the same random batch and compare outputs.
4. Compare parameter counts with each other and with the catalog's rules.
5. Take one SGD step from identical weights on the same batch and MSE loss;
   compare the loss and the updated weights.

Documented exceptions:
- torch RNNs keep two biases (``bias_ih``, ``bias_hh``) where Keras keeps one:
  the counts differ by design (each is checked against its own rule), the
  Keras bias goes to ``bias_ih`` and ``bias_hh`` starts at zero. After a step
  ``bias_hh`` has moved by the same gradient as ``bias_ih``; Keras has no
  counterpart, so it is left out of the step comparison.
- Dropout is switched off for the step (the frameworks draw different masks).
- BatchNormalization's running variance: torch updates it with the unbiased
  batch variance, Keras with the biased one, so it is reported, not compared.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from codegen import generate
from codegen.layers import LOWERINGS
from codegen.plan import ModelPlan
from codegen.runtime import load_module, to_keras_layout, to_torch_layout
from codegen.weights import keras_to_torch_state, load_torch_state, torch_counts
from studio.project import Project

TOLERANCE = 1e-4
LEARNING_RATE = 0.1


@dataclass
class Comparison:
    max_abs: float
    max_rel: float  # max |a - b| relative to the largest |a|

    @property
    def ok(self) -> bool:
        return self.max_abs <= TOLERANCE or self.max_rel <= TOLERANCE


@dataclass
class VerifyReport:
    model: str
    catalog: dict[str, int]
    keras: dict[str, int]
    torch: dict[str, int]
    counts_ok: bool
    outputs: Comparison
    step_loss: dict[str, float]
    step_weights: Comparison
    step_ok: bool
    running_mean: Comparison | None = None
    running_var_max_abs: float | None = None
    first_divergence: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.counts_ok and self.outputs.ok and self.step_ok

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        data["outputs"]["ok"] = self.outputs.ok
        return data

    def format(self) -> str:
        mark = "EQUIVALENT" if self.ok else "NOT EQUIVALENT"
        lines = [
            f"Model {self.model!r}: {mark}",
            "Parameters       trainable   non-trainable",
            f"  catalog (Keras) {self.catalog['trainable']:>9,} {self.catalog['non_trainable']:>15,}",
            f"  catalog (torch) {self.catalog['torch_trainable']:>9,} {self.catalog['torch_non_trainable']:>15,}",
            f"  Keras           {self.keras['trainable']:>9,} {self.keras['non_trainable']:>15,}",
            f"  PyTorch         {self.torch['parameters']:>9,} {self.torch['buffers']:>15,}",
            f"Outputs: max abs diff {self.outputs.max_abs:.3g}, max rel diff {self.outputs.max_rel:.3g}",
            f"SGD step (lr {LEARNING_RATE}): loss Keras {self.step_loss['keras']:.6g}, "
            f"PyTorch {self.step_loss['torch']:.6g}; updated weights max abs diff "
            f"{self.step_weights.max_abs:.3g}, max rel diff {self.step_weights.max_rel:.3g}",
        ]
        if self.running_mean is not None:
            lines.append(
                f"BatchNorm running mean max abs diff {self.running_mean.max_abs:.3g}; running variance "
                f"{self.running_var_max_abs:.3g} (torch uses the unbiased variance: not compared)"
            )
        if self.first_divergence:
            lines.append(f"First layer whose output differs: {self.first_divergence}")
        lines += [f"Note: {note}" for note in self.notes]
        return "\n".join(lines)


def compare(a: np.ndarray, b: np.ndarray) -> Comparison:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return Comparison(float("inf"), float("inf"))
    if a.size == 0:
        return Comparison(0.0, 0.0)
    diff = float(np.max(np.abs(a - b)))
    scale = float(np.max(np.abs(a)))
    return Comparison(diff, diff / scale if scale > 0 else diff)


def _combine(comparisons: list[Comparison]) -> Comparison:
    """The worst of several comparisons: a failing one first, then the largest difference."""
    if not comparisons:
        return Comparison(0.0, 0.0)
    return max(comparisons, key=lambda c: (not c.ok, c.max_abs))


def random_inputs(plan: ModelPlan, batch: int, rng: np.random.Generator) -> list[np.ndarray]:
    arrays = []
    for layer in plan.inputs:
        shape = (batch, *layer.shape)
        if layer.params["dtype"] == "int32":
            vocab = min(
                consumer.params["input_dim"]
                for consumer in plan.consumers(layer.id)
                if consumer.spec.takes_token_ids
            )
            arrays.append(rng.integers(0, vocab, size=shape).astype(np.int32))
        else:
            arrays.append(rng.standard_normal(shape).astype(np.float32))
    return arrays


def _import_frameworks():
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf
    import torch

    return keras, tf, torch


class _Models:
    """Both models built from the generated source, with identical weights."""

    def __init__(self, project: Project) -> None:
        keras, _, torch = _import_frameworks()
        keras_code = generate(project, "keras")
        torch_code = generate(project, "pytorch", keras_code.plan.analysis)
        self.plan = keras_code.plan
        self.keras_model = load_module(keras_code.source, keras_code.filename[:-3]).build_model()
        self.torch_model = load_module(torch_code.source, torch_code.filename[:-3]).build_model()
        self.keras, self.torch = keras, torch
        self.copy_weights()

    def keras_weights(self) -> dict[str, list[np.ndarray]]:
        return {
            layer.ident: self.keras_model.get_layer(layer.ident).get_weights()
            for layer in self.plan.layers
            if not layer.spec.is_source
        }

    def copy_weights(self) -> None:
        load_torch_state(self.torch_model, keras_to_torch_state(self.plan, self.keras_weights()))

    def run_keras(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        outputs = self.keras_model(inputs if len(inputs) > 1 else inputs[0], training=False)
        return [np.asarray(output) for output in _as_list(outputs)]

    def torch_inputs(self, inputs: list[np.ndarray]) -> list:
        return [
            self.torch.from_numpy(to_torch_layout(array, layer.layout))
            for array, layer in zip(inputs, self.plan.inputs, strict=True)
        ]

    def run_torch(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        self.torch_model.eval()
        with self.torch.no_grad():
            outputs = self.torch_model(*self.torch_inputs(inputs))
        return [
            to_keras_layout(output.numpy(), layer.layout)
            for output, layer in zip(_as_list(outputs), self.plan.outputs, strict=True)
        ]


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def verify_project(project: Project, seed: int = 0, batch: int = 4) -> VerifyReport:
    models = _Models(project)
    plan = models.plan
    rng = np.random.default_rng(seed)
    inputs = random_inputs(plan, batch, rng)
    keras_out = models.run_keras(inputs)
    torch_out = models.run_torch(inputs)
    outputs = _combine([compare(k, t) for k, t in zip(keras_out, torch_out, strict=True)])

    report = VerifyReport(
        model=project.name,
        catalog=_catalog_counts(plan),
        keras=_keras_counts(models.keras_model),
        torch=_torch_counts(models.torch_model),
        counts_ok=False,
        outputs=outputs,
        step_loss={},
        step_weights=Comparison(0.0, 0.0),
        step_ok=False,
    )
    report.counts_ok = (
        report.keras["trainable"] == report.catalog["trainable"]
        and report.keras["non_trainable"] == report.catalog["non_trainable"]
        and report.torch["parameters"] == report.catalog["torch_trainable"]
        and report.torch["buffers"] == report.catalog["torch_non_trainable"]
    )
    if report.catalog["trainable"] != report.catalog["torch_trainable"]:
        report.notes.append(
            "torch RNNs keep bias_ih and bias_hh where Keras keeps one bias: counts differ by design"
        )
    if not outputs.ok:
        report.first_divergence = first_divergence(models, inputs)
    _sgd_step(models, inputs, rng, report)
    return report


def _catalog_counts(plan: ModelPlan) -> dict[str, int]:
    keras_rule = plan.analysis.total_params
    torch_rule = plan.analysis.total_torch_params
    return {
        "trainable": keras_rule.trainable,
        "non_trainable": keras_rule.non_trainable,
        "torch_trainable": torch_rule.trainable,
        "torch_non_trainable": torch_rule.non_trainable,
    }


def _keras_counts(model) -> dict[str, int]:
    return {
        "trainable": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        "non_trainable": int(sum(np.prod(w.shape) for w in model.non_trainable_weights)),
    }


def _torch_counts(model) -> dict[str, int]:
    parameters, buffers = torch_counts(model)
    return {"parameters": parameters, "buffers": buffers}


def torch_forward_locals(model, inputs: list) -> dict[str, Any]:
    """Every local variable of ``forward`` when it returns: one per layer, by identifier."""
    captured: dict[str, Any] = {}
    forward_code = type(model).forward.__code__

    def on_call(frame, event, arg):
        if frame.f_code is not forward_code:
            return None

        def on_line(frame, event, arg):
            if event == "return":
                captured.update(frame.f_locals)
            return on_line

        return on_line

    previous = sys.gettrace()
    sys.settrace(on_call)
    try:
        model(*inputs)
    finally:
        sys.settrace(previous)
    return captured


def first_divergence(models: _Models, inputs: list[np.ndarray]) -> str | None:
    """The first layer, in model order, whose Keras and PyTorch outputs differ."""
    keras = models.keras
    plan = models.plan
    layers = [layer for layer in plan.layers if not layer.spec.is_source]
    probe = keras.Model(
        models.keras_model.inputs, [models.keras_model.get_layer(layer.ident).output for layer in layers]
    )
    keras_values = _as_list(probe(inputs, training=False))
    models.torch_model.eval()
    with models.torch.no_grad():
        torch_values = torch_forward_locals(models.torch_model, models.torch_inputs(inputs))
    for layer, keras_value in zip(layers, keras_values, strict=True):
        torch_value = torch_values.get(layer.ident)
        if torch_value is None:
            continue
        result = compare(np.asarray(keras_value), to_keras_layout(torch_value.numpy(), layer.layout))
        if not result.ok:
            shape = tuple(np.asarray(keras_value).shape)
            return (
                f"{layer.kind} '{layer.node.name}' (max abs diff {result.max_abs:.3g}, "
                f"Keras output shape {shape})"
            )
    return None


def _sgd_step(
    models: _Models, inputs: list[np.ndarray], rng: np.random.Generator, report: VerifyReport
) -> None:
    keras, torch, plan = models.keras, models.torch, models.plan
    _, tf, _ = _import_frameworks()
    targets = [
        rng.standard_normal(np.asarray(out).shape).astype(np.float32) for out in models.run_keras(inputs)
    ]
    _disable_dropout(models)

    variables = models.keras_model.trainable_variables
    with tf.GradientTape() as tape:
        outputs = _as_list(models.keras_model(inputs if len(inputs) > 1 else inputs[0], training=True))
        keras_loss = tf.add_n(
            [tf.reduce_mean(tf.square(out - target)) for out, target in zip(outputs, targets, strict=True)]
        )
    if variables:  # a model of pooling and reshaping only has nothing to update
        gradients = tape.gradient(keras_loss, variables)
        keras.optimizers.SGD(learning_rate=LEARNING_RATE).apply_gradients(
            zip(gradients, variables, strict=True)
        )

    model = models.torch_model
    model.train()
    parameters = list(model.parameters())
    optimizer = torch.optim.SGD(parameters, lr=LEARNING_RATE) if parameters else None
    torch_outputs = _as_list(model(*models.torch_inputs(inputs)))
    torch_targets = [
        torch.from_numpy(to_torch_layout(target, layer.layout))
        for target, layer in zip(targets, plan.outputs, strict=True)
    ]
    torch_loss = sum(
        torch.mean((out - target) ** 2) for out, target in zip(torch_outputs, torch_targets, strict=True)
    )
    if optimizer is not None:
        torch_loss.backward()
        optimizer.step()

    report.step_loss = {"keras": float(keras_loss), "torch": torch_loss.item()}
    loss_ok = compare(np.array(report.step_loss["keras"]), np.array(report.step_loss["torch"])).ok
    expected = keras_to_torch_state(plan, models.keras_weights())
    actual = {key: value.detach().numpy() for key, value in model.state_dict().items()}
    parameters = {name for name, _ in model.named_parameters()}
    weights, means, variances = [], [], []
    for key, value in expected.items():
        if key.endswith("running_mean"):
            means.append(compare(value, actual[key]))
        elif key.endswith("running_var"):
            variances.append(compare(value, actual[key]).max_abs)
        elif key in parameters and not _is_extra_rnn_bias(plan, key):
            weights.append(compare(value, actual[key]))
    report.step_weights = _combine(weights)
    if means:
        report.running_mean = _combine(means)
        report.running_var_max_abs = max(variances)
    report.step_ok = (
        loss_ok and report.step_weights.ok and (report.running_mean is None or report.running_mean.ok)
    )


def _is_extra_rnn_bias(plan: ModelPlan, key: str) -> bool:
    """A torch weight that Keras does not have (SimpleRNN/LSTM ``bias_hh``): its lowering names it."""
    ident, _, name = key.partition(".")
    layer = next((layer for layer in plan.layers if layer.ident == ident), None)
    return layer is not None and name.startswith(LOWERINGS[layer.kind].torch_only_weights)


def _disable_dropout(models: _Models) -> None:
    for layer in models.keras_model.layers:
        if isinstance(layer, models.keras.layers.Dropout):
            layer.rate = 0.0
        dropout_layer = getattr(layer, "_dropout_layer", None)
        if dropout_layer is not None:
            dropout_layer.rate = 0.0
    for module in models.torch_model.modules():
        if isinstance(module, models.torch.nn.Dropout):
            module.p = 0.0
        if isinstance(module, models.torch.nn.MultiheadAttention):
            module.dropout = 0.0
