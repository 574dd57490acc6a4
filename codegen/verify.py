"""The proof of equivalence: run the generated Keras and PyTorch programs side by side.

1. Generate both files and build both models *from the generated source*.
2. Copy the Keras weights into the PyTorch model, converting every layout.
3. Run both in inference mode on the same random batch and compare outputs.
4. Compare parameter counts with each other and with the catalog's rules.
5. Take one SGD step from identical weights on the same batch and MSE loss;
   compare the loss and the updated weights.
6. (``verify_training``) Run each program's own optimizer, loss and ``train_step``
   for N steps from identical weights on identical batches, in float64, and
   compare every layer's weights after each step.

Weights that start constant (biases, normalisation statistics) are randomised
first, so that a wrong conversion or a changed epsilon cannot hide behind them.

Documented exceptions:
- torch RNNs keep two biases (``bias_ih``, ``bias_hh``) where Keras keeps one:
  the PyTorch program keeps ``bias_hh`` at zero and frozen, so the same one
  bias trains; the torch count lists it as non-trainable.
- Dropout is switched off for the steps (the frameworks draw different masks).
- BatchNormalization's running variance: torch updates it with the unbiased
  batch variance, Keras with the biased one, so it is reported, not compared.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from codegen import generate
from codegen.plan import ModelPlan
from codegen.runtime import (
    exact_rescaling_constants,
    keras_float64,
    load_module,
    to_keras_layout,
    to_torch_layout,
)
from codegen.schedules import is_scheduled
from codegen.weights import keras_to_torch_state, load_torch_state, torch_counts
from studio.project import Project

# Two arrays agree when, element by element, |a - b| <= ATOL * scale + RTOL * |a|, where ``a`` is
# the reference (Keras) and ``scale`` its largest magnitude. Both terms scale with the outputs, so
# tiny outputs (a model ending in Rescaling(1e-5)) cannot hide a wrong program under an absolute
# tolerance, and huge ones are not failed by float32 rounding.
ATOL = 1e-4
RTOL = 1e-4
LEARNING_RATE = 0.1
# The training check: after each of the programs' own steps, every layer's weights may differ by
# at most this much, relative to the layer's largest weight.
DRIFT_TOLERANCE = 1e-5


@dataclass
class Comparison:
    max_abs: float
    max_rel: float  # max |a - b| relative to the largest |a|
    excess: float = 0.0  # the largest |a - b| / (ATOL * scale + RTOL * |a|): above 1 fails

    @property
    def ok(self) -> bool:
        return self.excess <= 1.0


@dataclass
class TrainingCheck:
    """The programs' own training steps from identical weights on identical batches."""

    optimizer: str
    steps: int
    learning_rate: float
    layers: dict[str, float]  # layer -> its largest relative weight drift over the steps
    losses: dict[str, list[float]]  # framework -> the loss of each step
    first_divergence: str | None = None  # the first step and layer beyond DRIFT_TOLERANCE
    # framework -> the learning rate of each step, under the project's schedule (empty: constant)
    rates: dict[str, list[float]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.first_divergence is None

    @property
    def worst_layer(self) -> tuple[str, float] | None:
        return max(self.layers.items(), key=lambda item: item[1]) if self.layers else None

    def to_dict(self) -> dict[str, Any]:
        worst = self.worst_layer
        return {
            **asdict(self),
            "ok": self.ok,
            "worst_layer": worst[0] if worst else None,
            "worst_drift": worst[1] if worst else 0.0,
        }

    def format(self) -> str:
        if self.steps == 0:
            return f"Training ({self.optimizer}): the model has no weights to train"
        worst = self.worst_layer
        where = f"; worst layer {worst[0]} drifted {worst[1]:.2g}" if worst else ""
        verdict = "equivalent" if self.ok else f"diverged: {self.first_divergence}"
        rates = self.rates.get("keras") or []
        schedule = f", scheduled {rates[0]:g} … {rates[-1]:g} alike per step" if rates and self.ok else ""
        return (
            f"Training ({self.optimizer}, {self.steps} steps, lr {self.learning_rate:g}{schedule}, the programs' "
            f"own optimizer and loss): {verdict}{where} (tolerance {DRIFT_TOLERANCE:g} relative)"
        )


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
    training: list[TrainingCheck] = field(default_factory=list)
    mains: dict[str, str | None] = field(
        default_factory=dict
    )  # framework -> None if main() ran, else why not

    @property
    def ok(self) -> bool:
        trained = all(check.ok for check in self.training) and not any(self.mains.values())
        return self.counts_ok and self.outputs.ok and self.step_ok and trained

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        data["outputs"]["ok"] = self.outputs.ok
        data["training"] = [check.to_dict() for check in self.training]
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
        lines += [check.format() for check in self.training]
        for framework, problem in self.mains.items():
            lines.append(
                f"{framework} program's main(), one tiny epoch: {problem or 'ran and saved its model'}"
            )
        lines += [f"Note: {note}" for note in self.notes]
        return "\n".join(lines)


def compare(reference: np.ndarray, other: np.ndarray) -> Comparison:
    """How far ``other`` is from ``reference``, element by element (see ATOL and RTOL)."""
    a, b = np.asarray(reference, dtype=np.float64), np.asarray(other, dtype=np.float64)
    if a.shape != b.shape:
        return Comparison(float("inf"), float("inf"), float("inf"))
    if a.size == 0:
        return Comparison(0.0, 0.0)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        same = bool(np.array_equal(a, b, equal_nan=True))
        return Comparison(0.0, 0.0) if same else Comparison(float("inf"), float("inf"), float("inf"))
    diff = np.abs(a - b)
    magnitude = np.abs(a)
    scale = max(float(magnitude.max()), np.finfo(np.float32).tiny)
    allowed = ATOL * scale + RTOL * magnitude
    max_diff = float(diff.max())
    return Comparison(max_diff, max_diff / scale, float(np.max(diff / allowed)))


def _combine(comparisons: list[Comparison]) -> Comparison:
    """The worst of several comparisons: a failing one first, then the largest difference."""
    if not comparisons:
        return Comparison(0.0, 0.0)
    return max(comparisons, key=lambda c: (c.excess, c.max_abs))


def random_inputs(plan: ModelPlan, batch: int, rng: np.random.Generator) -> list[np.ndarray]:
    arrays = []
    for layer in plan.inputs:
        shape = (batch, *layer.shape)
        if _only_masks(plan, layer):  # ones and zeros
            dtype = np.int32 if layer.params["dtype"] == "int32" else np.float32
            mask = rng.random(shape) < 0.6
            mask[:, 0] = True  # no query without keys: its gradient differs (DIFFERENCES.md, masks)
            arrays.append(mask.astype(dtype))
        elif layer.params["dtype"] == "int32":
            vocab = min(
                consumer.params["input_dim"]
                for consumer in plan.consumers(layer.id)
                if consumer.spec.takes_token_ids
            )
            arrays.append(rng.integers(0, vocab, size=shape).astype(np.int32))
        else:
            arrays.append(rng.standard_normal(shape).astype(np.float32))
    return arrays


def _only_masks(plan: ModelPlan, layer) -> bool:
    """True for an input that every consumer takes as its mask (attention's padding mask)."""
    consumers = plan.consumers(layer.id)
    for consumer in consumers:
        index = consumer.spec.mask_input(consumer.params, len(consumer.inputs))
        if index is None or consumer.inputs[index] != layer.id:
            return False
    return bool(consumers)


def _import_frameworks():
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf
    import torch

    return keras, tf, torch


class ProgramMismatch(ValueError):
    """A given program does not fit the project: it cannot be built, or its weights do not map."""


class _Models:
    """Both models, each built from a program's source (the generated ones by default), with identical weights."""

    def __init__(
        self,
        project: Project,
        rng: np.random.Generator,
        sources: dict[str, str] | None = None,
        dtype: type = np.float32,
    ) -> None:
        keras, _, torch = _import_frameworks()
        keras_code = generate(project, "keras")
        torch_code = generate(project, "pytorch", keras_code.plan.analysis)
        sources = sources or {}
        self.plan = keras_code.plan
        self.keras, self.torch = keras, torch
        self.keras_program = _load("Keras", sources.get("keras", keras_code.source), keras_code.filename)
        self.torch_program = _load("PyTorch", sources.get("pytorch", torch_code.source), torch_code.filename)
        self.dtype = dtype
        self.keras_model = _build("Keras", self.keras_program)  # in keras.config.floatx()
        if dtype == np.float64:
            exact_rescaling_constants(self.keras_model)
        self.torch_model = _build("PyTorch", self.torch_program).to(
            torch.float64 if dtype == np.float64 else torch.float32
        )
        _break_constant_weights(self.keras_model, rng)
        self.copy_weights()

    def keras_weights(self) -> dict[str, list[np.ndarray]]:
        weights = {}
        for layer in self.plan.layers:
            if layer.spec.is_source:
                continue
            try:
                weights[layer.ident] = self.keras_model.get_layer(layer.ident).get_weights()
            except ValueError:
                raise ProgramMismatch(
                    f"the Keras program has no layer named {layer.ident!r} ({layer.kind} '{layer.node.name}')"
                ) from None
        return weights

    def expected_torch_state(self) -> dict[str, np.ndarray]:
        """The Keras model's weights, converted to the PyTorch program's state_dict."""
        return keras_to_torch_state(self.plan, self.keras_weights(), self.dtype)

    def copy_weights(self) -> None:
        try:
            load_torch_state(self.torch_model, self.expected_torch_state())
        except (ValueError, RuntimeError) as error:
            if isinstance(error, ProgramMismatch):
                raise
            raise ProgramMismatch(
                f"the PyTorch program's weights do not fit the project: {_first_line(error)}"
            ) from None

    def run_keras(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        outputs = self.keras_model(inputs if len(inputs) > 1 else inputs[0], training=False)
        return [np.asarray(output) for output in _as_list(outputs)]

    def torch_inputs(self, inputs: list[np.ndarray]) -> list:
        return [
            self.torch.from_numpy(np.ascontiguousarray(to_torch_layout(array, layer.layout)))
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


def _load(framework: str, source: str, filename: str):
    """A program's module; a program that fails to load is a mismatch, named."""
    try:
        return load_module(source, filename[:-3])
    except Exception as error:  # the program is the user's: any error means it does not fit
        raise ProgramMismatch(
            f"the {framework} program fails to build: {type(error).__name__}: {_first_line(error)}"
        ) from None


def _build(framework: str, program):
    """``build_model()`` of a program; one that fails is a mismatch, named."""
    try:
        return program.build_model()
    except Exception as error:  # the program is the user's: any error means it does not fit
        raise ProgramMismatch(
            f"the {framework} program fails to build: {type(error).__name__}: {_first_line(error)}"
        ) from None


def _run(framework: str, run, inputs: list[np.ndarray]) -> list[np.ndarray]:
    try:
        return run(inputs)
    except Exception as error:  # a given program may fail on the project's inputs: say so, by name
        raise ProgramMismatch(
            f"the {framework} program fails on a batch of the project's inputs: "
            f"{type(error).__name__}: {_first_line(error)}"
        ) from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def _break_constant_weights(model, rng: np.random.Generator) -> None:
    """Give weights that start constant (biases, batch-norm statistics, scales) random values.

    Keras starts biases at 0 (an LSTM's forget gate at 1) and normalisation statistics at 0 and 1,
    where a wrong conversion or a changed epsilon, bias or momentum would go unseen. Each such
    value v becomes v + U(-1/2, 1/2) * max(|v|, 0.2), which keeps variances and scales positive.
    """
    for variable in model.weights:
        value = np.asarray(variable)
        if not np.issubdtype(value.dtype, np.floating) or not value.size or value.size > 1_000_000:
            continue  # seed states are integers; large kernels start random already
        if np.unique(value).size <= 2:
            noise = rng.uniform(-0.5, 0.5, size=value.shape) * np.maximum(np.abs(value), 0.2)
            variable.assign((value + noise).astype(value.dtype))
    for layer in model.layers:  # Normalization reads its statistics once, when they are loaded
        if isinstance(layer, keras_normalization()):
            layer.finalize_state()


def keras_normalization():
    from keras import layers

    return layers.Normalization


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def verify_project(
    project: Project,
    seed: int = 0,
    batch: int = 4,
    sources: dict[str, str] | None = None,
    optimizers: Sequence[str] = (),
    steps: int = 5,
    run_main: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> VerifyReport:
    """Prove the project's two programs equivalent, or say where they differ.

    ``sources`` replaces a generated program by the given one ({"keras": ..., "pytorch": ...}), e.g.
    one the user has edited. ``optimizers`` adds a training check of ``steps`` steps per optimizer
    (:func:`verify_training`); ``run_main`` runs each program's main() for one tiny epoch. Raises
    ProgramMismatch when a program cannot be built or its weights do not map onto the project.
    ``progress(stage, stages, text)`` is called as each stage begins.
    """
    if batch < 1:
        raise ValueError(f"the batch size must be a positive integer. Received: {batch}")
    stages = [
        "Build both models from the generated code and copy the weights",
        "Compare the outputs on a random batch",
        "Take one SGD step in each program",
        *(f"Train {steps} steps with {name} in each program" for name in optimizers),
    ]
    if run_main:
        stages.append("Run each program's main() for one tiny epoch")
    begin = _stage_reporter(stages, progress)
    rng = np.random.default_rng(seed)
    begin(0)
    models = _Models(project, rng, sources)
    plan = models.plan
    inputs = random_inputs(plan, batch, rng)
    begin(1)
    keras_out = _run("Keras", models.run_keras, inputs)
    torch_out = _run("PyTorch", models.run_torch, inputs)
    if len(keras_out) != len(torch_out):
        raise ProgramMismatch(
            f"the Keras program gives {len(keras_out)} outputs, the PyTorch one {len(torch_out)}"
        )
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
    if report.catalog["non_trainable"] != report.catalog["torch_non_trainable"]:
        report.notes.append(
            "torch RNNs keep bias_ih and bias_hh where Keras keeps one bias: the PyTorch program keeps "
            "bias_hh at zero and frozen, so it counts as non-trainable there"
        )
    if not outputs.ok:
        report.first_divergence = first_divergence(models, inputs)
    begin(2)
    _sgd_step(models, inputs, rng, report)
    for index, name in enumerate(optimizers):
        begin(3 + index)
        report.training.append(verify_training(project, name, steps, seed, batch, sources))
    if run_main and plan.analysis.total_params.trainable > 0:
        begin(len(stages) - 1)
        report.mains = run_mains(project, sources)
    elif run_main:
        report.notes.append("the model has no weights to train, so its programs' main() was not run")
    return report


def _stage_reporter(
    stages: list[str], progress: Callable[[int, int, str], None] | None
) -> Callable[[int], None]:
    def begin(index: int) -> None:
        if progress is not None:
            progress(index + 1, len(stages), stages[index])

    return begin


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
        elif key in parameters:
            weights.append(compare(value, actual[key]))
    report.step_weights = _combine(weights)
    if means:
        report.running_mean = _combine(means)
        report.running_var_max_abs = max(variances)
    report.step_ok = (
        loss_ok and report.step_weights.ok and (report.running_mean is None or report.running_mean.ok)
    )


def _disable_dropout(models: _Models) -> None:
    for layer in models.keras_model.layers:
        if isinstance(layer, models.keras.layers.Dropout):
            layer.rate = 0.0
        dropout_layer = getattr(layer, "_dropout_layer", None)
        if dropout_layer is not None:
            dropout_layer.rate = 0.0
    for module in models.torch_model.modules():
        if isinstance(module, models.torch.nn.modules.dropout._DropoutNd):  # Dropout, Dropout1d-3d
            module.p = 0.0
        if isinstance(module, models.torch.nn.MultiheadAttention):
            module.dropout = 0.0


# ----- the programs' own training steps ------------------------------------------------------


def verify_training(
    project: Project,
    optimizer: str,
    steps: int = 5,
    seed: int = 0,
    batch: int = 4,
    sources: dict[str, str] | None = None,
) -> TrainingCheck:
    """Run each program's own optimizer and loss for ``steps`` steps from identical weights on
    identical batches, comparing every layer's weights after each step.

    The generated programs are made for ``optimizer``; given ``sources`` keep their own. Both run
    in float64, so that float32 rounding, which Adam amplifies on near-zero gradients, cannot pass
    for a difference, nor hide one. Dropout is off (the frameworks draw different masks);
    BatchNormalization's running variance is left out (torch updates it with the unbiased variance).
    """
    keras, _, _ = _import_frameworks()
    with keras_float64(keras):
        return _train_both(project, optimizer, steps, seed, batch, sources)


def _train_both(
    project: Project, optimizer: str, steps: int, seed: int, batch: int, sources: dict[str, str] | None
) -> TrainingCheck:
    trial = Project(
        project.graph, project.name, project.description, replace(project.training, optimizer=optimizer)
    )
    rng = np.random.default_rng(seed)
    models = _Models(trial, rng, sources, dtype=np.float64)
    plan, torch = models.plan, models.torch
    _disable_dropout(models)
    learning_rate = trial.training.learning_rate
    keras_program, torch_program = models.keras_program, models.torch_program
    if not any(parameter.requires_grad for parameter in models.torch_model.parameters()):
        return TrainingCheck(optimizer, 0, learning_rate, {}, {"keras": [], "pytorch": []})  # nothing trains
    keras_optimizer = _call("Keras", keras_program, "make_optimizer", learning_rate)
    models.keras_model.compile(optimizer=keras_optimizer, loss=_call("Keras", keras_program, "make_loss"))
    parameters = models.torch_model.parameters()
    torch_optimizer = _call("PyTorch", torch_program, "make_optimizer", parameters, learning_rate)
    loss_fn = _call("PyTorch", torch_program, "make_loss")
    check = TrainingCheck(optimizer, steps, learning_rate, {}, {"keras": [], "pytorch": []})
    schedule = _Schedule(models, torch_optimizer, learning_rate, steps, is_scheduled(trial.training))
    models.torch_model.train()
    several = len(plan.inputs) > 1 or len(plan.outputs) > 1
    for step in range(1, steps + 1):
        inputs = [_as_float64(array) for array in random_inputs(plan, batch, rng)]
        targets = [_as_float64(array) for array in _random_targets(plan, batch, rng)]
        batch_keras = (_one_or_list(inputs), _one_or_list(targets))
        schedule.before(step - 1, check)
        keras_loss = _call("Keras", models.keras_model, "train_on_batch", *batch_keras)
        torch_inputs = models.torch_inputs(inputs)
        torch_targets = [
            torch.from_numpy(array if array.dtype == np.int64 else to_torch_layout(array, layer.layout))
            for array, layer in zip(targets, plan.outputs, strict=True)
        ]
        batch_torch = (torch_inputs, torch_targets) if several else (torch_inputs[0], torch_targets[0])
        step_args = (models.torch_model, torch_optimizer, loss_fn, *batch_torch)
        torch_loss = _call("PyTorch", torch_program, "train_step", *step_args)
        if isinstance(torch_loss, tuple):  # (loss, outputs), as the generated programs return it
            torch_loss = torch_loss[0]
        schedule.after()
        check.losses["keras"].append(float(np.asarray(keras_loss).reshape(-1)[0]))
        check.losses["pytorch"].append(float(torch_loss.item()))
        for label, drift in _layer_drifts(models).items():
            check.layers[label] = max(check.layers.get(label, 0.0), drift)
            if drift > DRIFT_TOLERANCE and check.first_divergence is None:
                check.first_divergence = f"step {step}, {label} (weights differ by {drift:.2g} relative)"
    return check


class _Schedule:
    """The programs' learning-rate schedule over the check's steps (one epoch): Keras's callback
    before each step, PyTorch's LambdaLR after it. Nothing when the schedule is constant."""

    def __init__(self, models, torch_optimizer, rate: float, steps: int, active: bool):
        self.active = active
        if not active:
            return
        keras_program, torch_program = models.keras_program, models.torch_program
        self.callback = _call("Keras", keras_program, "PerBatchLearningRate", rate, steps, steps)
        self.callback.set_model(models.keras_model)
        self.callback.on_epoch_begin(0)
        self.torch_optimizer = torch_optimizer
        self.scheduler = _call(
            "PyTorch", torch_program, "make_scheduler", torch_optimizer, rate, steps, steps
        )
        self.keras_model = models.keras_model

    def before(self, step: int, check: TrainingCheck) -> None:
        """Set Keras's rate for ``step`` and record both rates; a difference is a divergence."""
        if not self.active:
            return
        _call("Keras", self.callback, "on_train_batch_begin", step)
        # Keras holds the rate in a variable of floatx (float64 here); compared as float32, as trained.
        keras_rate = float(np.float32(self.keras_model.optimizer.learning_rate))
        torch_rate = float(np.float32(self.torch_optimizer.param_groups[0]["lr"]))
        check.rates.setdefault("keras", []).append(keras_rate)
        check.rates.setdefault("pytorch", []).append(torch_rate)
        if keras_rate != torch_rate and check.first_divergence is None:
            check.first_divergence = (
                f"step {step + 1}, learning rate {keras_rate:g} (Keras) vs {torch_rate:g} (PyTorch)"
            )

    def after(self) -> None:
        if self.active:
            self.scheduler.step()


def _call(framework: str, program, function: str, *args):
    """``program.function(*args)``; a program that lacks it or fails in it is a mismatch, named."""
    try:
        return getattr(program, function)(*args)
    except Exception as error:  # the program may be the user's: say what failed, where
        raise ProgramMismatch(
            f"the {framework} program's {function}() fails: {type(error).__name__}: {_first_line(error)}"
        ) from None


def _as_float64(array: np.ndarray) -> np.ndarray:
    return array.astype(np.float64) if array.dtype == np.float32 else array


def _one_or_list(arrays: list[np.ndarray]):
    return arrays[0] if len(arrays) == 1 else arrays


def _random_targets(plan: ModelPlan, batch: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Targets for each output, as the project's loss takes them (class ids, 0/1 or values)."""
    loss = plan.project.training.loss
    targets = []
    for layer in plan.outputs:
        shape = (batch, *layer.shape)
        if loss == "cross_entropy":
            targets.append(rng.integers(0, layer.shape[-1], size=shape[:-1]).astype(np.int64))
        elif loss == "binary_cross_entropy":
            targets.append(rng.integers(0, 2, size=shape).astype(np.float32))
        else:
            targets.append(rng.standard_normal(shape).astype(np.float32))
    return targets


def _layer_drifts(models: _Models) -> dict[str, float]:
    actual = {key: value.detach().numpy() for key, value in models.torch_model.state_dict().items()}
    return layer_drifts(models.plan, models.expected_torch_state(), actual)


def layer_drifts(
    plan: ModelPlan, expected: dict[str, np.ndarray], actual: dict[str, Any]
) -> dict[str, float]:
    """Each layer's largest weight difference, relative to its largest weight, between the Keras
    weights converted to the PyTorch state_dict (``expected``) and PyTorch's own (``actual``).
    torch's running variance is left out: it is the unbiased variance (documented)."""
    layers = {layer.ident: layer for layer in plan.layers}
    drifts: dict[str, float] = {}
    for key, value in expected.items():
        if key.endswith("running_var") or key not in actual:
            continue
        layer = layers[key.partition(".")[0]]
        label = f"{layer.kind} '{layer.node.name}'"
        drifts[label] = max(drifts.get(label, 0.0), compare(value, np.asarray(actual[key])).max_rel)
    return drifts


# ----- the programs' own main() -------------------------------------------------------------


def run_mains(
    project: Project, sources: dict[str, str] | None = None, timeout: float = 600
) -> dict[str, str | None]:
    """Run each program's ``main()`` for one tiny epoch in a temporary folder, on a small .npz that
    fits the model: proof that its data loading, training loop and saving run. Returns, per
    framework, None when it ran, else the last line it printed on stderr."""
    import subprocess
    import tempfile
    from pathlib import Path

    keras_code = generate(project, "keras")
    codes = {"keras": keras_code, "pytorch": generate(project, "pytorch", keras_code.plan.analysis)}
    results: dict[str, str | None] = {}
    with tempfile.TemporaryDirectory(prefix="layer-studio-main-") as folder:
        data = Path(folder) / "data.npz"
        np.savez(data, **_tiny_dataset(keras_code.plan))
        environment = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
        for framework, code in codes.items():
            program = Path(folder) / code.filename
            program.write_text((sources or {}).get(framework, code.source), encoding="utf-8")
            out = Path(folder) / ("model.keras" if framework == "keras" else "model.pt")
            command = [
                sys.executable,
                str(program),
                "--epochs",
                "1",
                "--batch-size",
                "8",
                "--data",
                str(data),
            ]
            try:
                done = subprocess.run(
                    [*command, "--out", str(out)],
                    cwd=folder,
                    env=environment,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                )
            except subprocess.TimeoutExpired:
                results[framework] = f"main() did not finish within {timeout:.0f} s"
                continue
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            if done.returncode != 0:
                results[framework] = f"main() failed (exit {done.returncode}): {lines[-1] if lines else ''}"
            elif not out.exists():
                results[framework] = f"main() ran but did not save {out.name}"
            else:
                results[framework] = None
    return results


def _tiny_dataset(plan: ModelPlan, samples: int = 16) -> dict[str, np.ndarray]:
    """Arrays that fit the model, named as its program's --data reads them."""
    rng = np.random.default_rng(0)
    inputs = random_inputs(plan, samples, rng)
    targets = _random_targets(plan, samples, rng)
    if len(plan.inputs) == 1 and len(plan.outputs) == 1:
        return {"x": inputs[0], "y": targets[0]}
    arrays = {f"x_{layer.ident}": array for layer, array in zip(plan.inputs, inputs, strict=True)}
    arrays |= {f"y_{layer.ident}": array for layer, array in zip(plan.outputs, targets, strict=True)}
    return arrays
