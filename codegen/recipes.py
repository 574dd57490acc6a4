"""Optimizers, losses and accuracy: the one table behind the generated programs and the training engine.

Each optimizer and loss is one row of :data:`OPTIMIZERS` / :data:`LOSSES`:
its class and arguments in each framework. The generated programs write it
as source text (``keras_optimizer_source`` ...); the studio's training engine
builds the same objects (``keras_optimizer`` ...), so what the studio trains
is what the exported scripts train (tests/test_training_recipes.py). Both
frameworks get the same hyper-parameters (see keras-vs-pytorch.md, optimizers).

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

EPSILON = 1e-7  # Keras's backend epsilon: Adam/RMSprop epsilon and the probability clip
MOMENTUM = 0.9
RHO = 0.9
WEIGHT_DECAY = 0.01


@dataclass(frozen=True)
class Optimizer:
    keras: str  # class in keras.optimizers, called as (learning_rate, **keras_args)
    keras_args: dict[str, float]
    torch: str  # class in torch.optim, called as (parameters, lr=learning_rate, **torch_args)
    torch_args: dict[str, float]


@dataclass(frozen=True)
class Loss:
    keras: str  # class in keras.losses
    from_logits: bool  # the Keras class takes from_logits (the classification losses)
    torch: str  # class in torch.nn, on logits


OPTIMIZERS = {
    "adam": Optimizer("Adam", {"epsilon": EPSILON}, "Adam", {"eps": EPSILON}),
    "adamw": Optimizer(
        "AdamW",
        {"weight_decay": WEIGHT_DECAY, "epsilon": EPSILON},
        "AdamW",
        {"weight_decay": WEIGHT_DECAY, "eps": EPSILON},
    ),
    "sgd": Optimizer("SGD", {"momentum": MOMENTUM}, "SGD", {"momentum": MOMENTUM}),
    "rmsprop": Optimizer(
        "RMSprop", {"rho": RHO, "epsilon": EPSILON}, "RMSprop", {"alpha": RHO, "eps": EPSILON}
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


def keras_optimizer_source(name: str) -> str:
    """``keras.optimizers.Adam(args.lr, epsilon=1e-7)``."""
    recipe = _optimizer(name)
    return f"keras.optimizers.{recipe.keras}(args.lr{_keywords(recipe.keras_args)})"


def torch_optimizer_source(name: str) -> str:
    """``torch.optim.Adam(model.parameters(), lr=args.lr, eps=1e-7)``."""
    recipe = _optimizer(name)
    return f"torch.optim.{recipe.torch}(model.parameters(), lr=args.lr{_keywords(recipe.torch_args)})"


def keras_loss_source(name: str, logits: bool) -> str:
    """``keras.losses.SparseCategoricalCrossentropy(from_logits=True)``."""
    recipe = _loss(name)
    return f"keras.losses.{recipe.keras}({f'from_logits={logits}' if recipe.from_logits else ''})"


def torch_loss_source(name: str) -> str:
    """``nn.CrossEntropyLoss()``: the loss on logits."""
    return f"nn.{_loss(name).torch}()"


# ----- objects for the training engine ------------------------------------------------


def keras_optimizer(keras: Any, name: str, learning_rate: float) -> Any:
    recipe = _optimizer(name)
    return getattr(keras.optimizers, recipe.keras)(learning_rate, **recipe.keras_args)


def torch_optimizer(torch: Any, name: str, parameters: Any, learning_rate: float) -> Any:
    recipe = _optimizer(name)
    return getattr(torch.optim, recipe.torch)(parameters, lr=learning_rate, **recipe.torch_args)


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
