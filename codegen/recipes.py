"""Optimizers, losses and accuracy: the one table behind the generated programs and the training engine.

Each optimizer and loss is one row of :data:`OPTIMIZERS` / :data:`LOSSES`:
its class and arguments in each framework. The generated programs write it
as source text (``keras_optimizer_source`` ...); the studio's training engine
builds the same objects (``keras_optimizer`` ...), so what the studio trains
is what the exported scripts train (tests/test_training_recipes.py). Both
frameworks get the same hyper-parameters and update rules (codegen/DIFFERENCES.md, optimizers).

Two deliberate refinements of the engine over the scripts:

* the PyTorch loss is computed on the output in Keras's channels-last layout,
  so that class scores of a sequence or image output are on the last axis,
  and a model ending in softmax/sigmoid gets Keras's probability loss
  (clipped to [1e-7, 1 - 1e-7]) rather than a logits loss;
* binary accuracy thresholds logits at 0 and probabilities at 0.5.

The frameworks are passed in (``keras``, ``torch``): this module imports neither.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from codegen.writer import LINE_LENGTH

EPSILON = 1e-7  # Keras's backend epsilon: Adam/RMSprop epsilon and the probability clip
MOMENTUM = 0.9
RHO = 0.9
WEIGHT_DECAY = 0.01


# torch.optim's Adam and RMSprop apply epsilon where Keras does not, so an Adam run drifts apart
# from its Keras twin and an RMSprop layer can move 100 times further. The PyTorch programs get
# these small optimizers instead, which compute Keras's update rules exactly (in float32, as Keras).
KERAS_ADAM = '''class KerasAdam(torch.optim.Optimizer):
    """Adam (and AdamW) as Keras computes it, which torch.optim.Adam does not reproduce.

    Keras folds the bias corrections into the step size and adds epsilon to the
    uncorrected sqrt(v): w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps);
    torch adds epsilon to the corrected sqrt(v_hat). AdamW first decays the weights,
    w -= w * weight_decay * lr, as both do.
    """

    def __init__(self, params, lr, epsilon=1e-7, weight_decay=0.0):
        defaults = {"lr": lr, "epsilon": epsilon, "weight_decay": weight_decay}
        super().__init__(params, defaults)
        self.beta_1, self.beta_2 = 0.9, 0.999  # Keras's and torch's defaults

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, beta_1, beta_2 = group["lr"], self.beta_1, self.beta_2
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(p)
                    state["v"] = torch.zeros_like(p)
                state["step"] += 1
                if group["weight_decay"]:
                    p.sub_(p * group["weight_decay"] * lr)
                m, v = state["m"], state["v"]
                m.add_((p.grad - m) * (1 - beta_1))
                v.add_((p.grad.square() - v) * (1 - beta_2))
                # Keras computes the step size in the weights' dtype, from float32 betas.
                step = torch.tensor(state["step"], dtype=p.dtype)
                betas = torch.tensor([beta_1, beta_2], dtype=torch.float32).to(p.dtype)
                beta_1_power, beta_2_power = betas**step
                alpha = lr * torch.sqrt(1 - beta_2_power) / (1 - beta_1_power)
                p.sub_(m * alpha / (v.sqrt() + group["epsilon"]))
'''

KERAS_RMSPROP = '''class KerasRMSprop(torch.optim.Optimizer):
    """RMSprop as Keras computes it: w -= lr * g / sqrt(v + eps), where torch.optim.RMSprop
    divides by sqrt(v) + eps. v = rho * v + (1 - rho) * g^2 in both."""

    def __init__(self, params, lr, rho=0.9, epsilon=1e-7):
        super().__init__(params, {"lr": lr, "rho": rho, "epsilon": epsilon})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, rho = group["lr"], group["rho"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["v"] = torch.zeros_like(p)
                v = state["v"]
                v.mul_(rho).add_(p.grad.square() * (1 - rho))
                p.sub_(p.grad * lr / (v + group["epsilon"]).sqrt())
'''


KERAS_SGD = '''class KerasSGD(torch.optim.Optimizer):
    """SGD with momentum as Keras computes it: v = momentum * v - lr * g; w += v.

    torch.optim.SGD keeps b = momentum * b + g and steps w -= lr * b, the same only while
    the learning rate stays constant; under a learning-rate schedule the two drift apart.
    """

    def __init__(self, params, lr, momentum=0.0):
        super().__init__(params, {"lr": lr, "momentum": momentum})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, momentum = group["lr"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["velocity"] = torch.zeros_like(p)
                velocity = state["velocity"]
                velocity.mul_(momentum).sub_(p.grad * lr)
                p.add_(velocity)
'''


@dataclass(frozen=True)
class Optimizer:
    keras: str  # class in keras.optimizers, called as (learning_rate, **keras_args)
    keras_args: dict[str, float]
    torch: str  # the PyTorch class, called as (parameters, lr=learning_rate, **torch_args)
    torch_args: dict[str, float]
    torch_class: str = ""  # the program's own class, when torch.optim has none that matches Keras
    why: str = ""  # a comment in the PyTorch program: why this class and these arguments


@dataclass(frozen=True)
class Loss:
    keras: str  # class in keras.losses
    from_logits: bool  # the Keras class takes from_logits (the classification losses)
    torch: str  # class in torch.nn, on logits


OPTIMIZERS = {
    "adam": Optimizer(
        "Adam", {"epsilon": EPSILON}, "KerasAdam", {"epsilon": EPSILON}, KERAS_ADAM, "Keras's Adam update"
    ),
    "adamw": Optimizer(
        "AdamW",
        # Keras's default weight decay is 0.004, torch's 0.01: both programs pass the same value.
        {"weight_decay": WEIGHT_DECAY, "epsilon": EPSILON},
        "KerasAdam",
        {"epsilon": EPSILON, "weight_decay": WEIGHT_DECAY},
        KERAS_ADAM,
        "Keras's AdamW update, with the Keras program's weight decay",
    ),
    "sgd": Optimizer(
        "SGD",
        {"momentum": MOMENTUM},
        "torch.optim.SGD",
        {"momentum": MOMENTUM},
        why="torch's momentum (b = m*b + g; w -= lr*b) is Keras's (v = m*v - lr*g; w += v) at one lr",
    ),
    "rmsprop": Optimizer(
        "RMSprop",
        {"rho": RHO, "epsilon": EPSILON},
        "KerasRMSprop",
        {"rho": RHO, "epsilon": EPSILON},
        KERAS_RMSPROP,
        "Keras's RMSprop update, rho 0.9 and epsilon 1e-7 (torch's defaults are 0.99 and 1e-8)",
    ),
}

# Under a learning-rate schedule: the optimizers whose torch.optim class no longer matches Keras.
SCHEDULED_OPTIMIZERS = {
    "sgd": Optimizer(
        "SGD",
        {"momentum": MOMENTUM},
        "KerasSGD",
        {"momentum": MOMENTUM},
        KERAS_SGD,
        "Keras's momentum rule: torch.optim.SGD's matches it only at a constant learning rate",
    ),
}

LOSSES = {
    "cross_entropy": Loss("SparseCategoricalCrossentropy", True, "CrossEntropyLoss"),
    "binary_cross_entropy": Loss("BinaryCrossentropy", True, "BCEWithLogitsLoss"),
    "mse": Loss("MeanSquaredError", False, "MSELoss"),
    "mae": Loss("MeanAbsoluteError", False, "L1Loss"),
}


def _optimizer(name: str) -> Optimizer:
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}")
    return OPTIMIZERS[name]


def _loss(name: str) -> Loss:
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}")
    return LOSSES[name]


# ----- source text for the generated programs ----------------------------------------


def _keywords(values: dict[str, float]) -> str:
    """``", epsilon=1e-7"``: numbers as a person writes them (1e-7, not 1e-07)."""
    return "".join(f", {key}={repr(value).replace('e-0', 'e-')}" for key, value in values.items())


def keras_optimizer_lines(name: str) -> list[str]:
    """``make_optimizer(learning_rate)`` of a Keras program."""
    recipe = _optimizer(name)
    return [
        "def make_optimizer(learning_rate, clip_norm=None):",
        f'    """{recipe.keras}, with the hyper-parameters the PyTorch program uses too; ``clip_norm``',
        '    caps the gradients\' global norm."""',
        *_call_lines(
            f"keras.optimizers.{recipe.keras}",
            f"learning_rate{_keywords(recipe.keras_args)}, global_clipnorm=clip_norm",
        ),
    ]


def _call_lines(function: str, arguments: str) -> list[str]:
    """``return function(arguments)``, on one line when it fits as ruff format would keep it."""
    line = f"    return {function}({arguments})"
    if len(line) <= LINE_LENGTH:
        return [line]
    return [f"    return {function}(", f"        {arguments}", "    )"]


def torch_optimizer_lines(name: str, scheduled: bool = False) -> list[str]:
    """``make_optimizer(parameters, learning_rate)`` of a PyTorch program, after its own class if any.

    An optimizer whose torch.optim class matches Keras only at a constant rate (SGD's momentum)
    takes ``scheduled`` too, defaulting to the project's: whether the learning rate moves during
    the run (codegen.schedules), as a script's ``--lr-schedule`` may decide."""
    recipe = _optimizer(name)
    moving = SCHEDULED_OPTIMIZERS.get(name)
    if moving is None:
        own_class = [*recipe.torch_class.splitlines(), "", ""] if recipe.torch_class else []
        return [
            *own_class,
            "def make_optimizer(parameters, learning_rate):",
            f'    """The Keras program\'s {recipe.keras}, step for step."""',
            f"    # {recipe.why}.",
            f"    return {recipe.torch}(parameters, lr=learning_rate{_keywords(recipe.torch_args)})",
        ]
    return [
        *moving.torch_class.splitlines(),
        "",
        "",
        f"def make_optimizer(parameters, learning_rate, scheduled={scheduled}):",
        f'    """The Keras program\'s {recipe.keras}, step for step; ``scheduled``: the learning rate',
        '    moves during the run."""',
        f"    # {moving.why}.",
        "    if scheduled:",
        f"        return {moving.torch}(parameters, lr=learning_rate{_keywords(moving.torch_args)})",
        f"    return {recipe.torch}(parameters, lr=learning_rate{_keywords(recipe.torch_args)})",
    ]


def keras_loss_source(name: str, logits: bool) -> str:
    """``keras.losses.SparseCategoricalCrossentropy(from_logits=True)``."""
    recipe = _loss(name)
    return f"keras.losses.{recipe.keras}({f'from_logits={logits}' if recipe.from_logits else ''})"


def torch_loss_source(name: str) -> str:
    """``nn.CrossEntropyLoss()``: the loss on logits."""
    return f"nn.{_loss(name).torch}()"


# ----- objects for the training engine ------------------------------------------------


def keras_loss(keras: Any, loss: str, logits: bool) -> Any:
    recipe = _loss(loss)
    cls = getattr(keras.losses, recipe.keras)
    return cls(from_logits=logits) if recipe.from_logits else cls()


def keras_metrics(keras: Any, loss: str, logits: bool, classification: bool) -> list[Any]:
    """[accuracy] for classification, reported as "accuracy"/"val_accuracy"; else none."""
    if not classification:
        return []
    if loss == "cross_entropy":
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    return [keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0 if logits else 0.5)]


def torch_loss(torch: Any, loss: str, logits: bool) -> Callable[[Any, Any], Any]:
    """``loss_fn(output, target)`` with the output channels-last, like Keras's."""
    on_logits = getattr(torch.nn, _loss(loss).torch)()

    if loss == "cross_entropy":

        def cross_entropy(output, target):
            scores = output.reshape(-1, output.shape[-1])
            if not logits:  # Keras: log of the clipped probabilities, renormalised by softmax
                scores = torch.log(scores.clamp(EPSILON, 1 - EPSILON))
            return on_logits(scores, target.reshape(-1))

        return cross_entropy
    if loss == "binary_cross_entropy" and not logits:

        def binary_cross_entropy(output, target):
            p = output.clamp(EPSILON, 1 - EPSILON)
            return -(target * torch.log(p) + (1 - target) * torch.log(1 - p)).mean()

        return binary_cross_entropy
    return on_logits


def torch_correct(torch: Any, loss: str, logits: bool) -> Callable[[Any, Any], tuple[Any, int]]:
    """``correct(output, target)`` -> (number right as a tensor, number of predictions)."""
    if loss == "cross_entropy":

        def correct_classes(output, target):
            return (output.argmax(dim=-1) == target).sum(), target.numel()

        return correct_classes
    threshold = 0.0 if logits else 0.5

    def correct_binary(output, target):
        return ((output > threshold) == (target > 0.5)).sum(), target.numel()

    return correct_binary


# ----- mixed precision ------------------------------------------------------------------


@dataclass(frozen=True)
class Precision:
    keras_policy: str | None  # keras.mixed_precision policy of the model's layers (None: float32)
    torch_dtype: str | None  # torch.autocast dtype (None: no autocast)
    loss_scaling: bool  # float16 gradients underflow: Keras's LossScaleOptimizer, torch's GradScaler


PRECISIONS = {
    "fp32": Precision(None, None, False),
    "bf16": Precision("mixed_bfloat16", "bfloat16", False),
    "fp16": Precision("mixed_float16", "float16", True),
}


def precision_problem(precision: str, device: str) -> str | None:
    """Why ``device`` cannot train at ``precision`` (one line), or None.

    float16 training needs loss scaling, which torch.amp.GradScaler does on CUDA only; Keras runs
    the same precision on the same devices, so both frameworks refuse it elsewhere.
    """
    if precision not in PRECISIONS:
        return f"precision: expected one of {', '.join(PRECISIONS)}. Received: {precision!r}"
    if PRECISIONS[precision].loss_scaling and not device.startswith(("cuda", "gpu")):
        return f"--precision {precision} needs a CUDA GPU, and this run is on {device}: use bf16 or fp32"
    return None
