"""Optimizers, losses and accuracy in each framework, with the generated programs' choices.

These match codegen/program.py (KERAS_OPTIMIZERS, TORCH_OPTIMIZERS,
KERAS_LOSSES, TORCH_LOSSES), so that what the studio trains is what the
exported scripts train; tests/test_training_recipes.py checks that they
agree. Two deliberate refinements over the scripts:

* the PyTorch loss is computed on the output in Keras's channels-last layout,
  so that class scores of a sequence or image output are on the last axis,
  and a model ending in softmax/sigmoid gets Keras's probability loss
  (clipped to [1e-7, 1 - 1e-7]) rather than a logits loss;
* binary accuracy thresholds logits at 0 and probabilities at 0.5.

The frameworks are passed in (``keras``, ``torch``): this module imports neither.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

EPSILON = 1e-7  # Keras's backend epsilon: Adam/RMSprop epsilon and the probability clip
MOMENTUM = 0.9
RHO = 0.9
WEIGHT_DECAY = 0.01


def keras_optimizer(keras: Any, name: str, learning_rate: float) -> Any:
    optimizers = keras.optimizers
    if name == "adam":
        return optimizers.Adam(learning_rate, epsilon=EPSILON)
    if name == "adamw":
        return optimizers.AdamW(learning_rate, weight_decay=WEIGHT_DECAY, epsilon=EPSILON)
    if name == "sgd":
        return optimizers.SGD(learning_rate, momentum=MOMENTUM)
    if name == "rmsprop":
        return optimizers.RMSprop(learning_rate, rho=RHO, epsilon=EPSILON)
    raise ValueError(f"unknown optimizer {name!r}")


def torch_optimizer(torch: Any, name: str, parameters: Any, learning_rate: float) -> Any:
    optim = torch.optim
    if name == "adam":
        return optim.Adam(parameters, lr=learning_rate, eps=EPSILON)
    if name == "adamw":
        return optim.AdamW(parameters, lr=learning_rate, weight_decay=WEIGHT_DECAY, eps=EPSILON)
    if name == "sgd":
        return optim.SGD(parameters, lr=learning_rate, momentum=MOMENTUM)
    if name == "rmsprop":
        return optim.RMSprop(parameters, lr=learning_rate, alpha=RHO, eps=EPSILON)
    raise ValueError(f"unknown optimizer {name!r}")


def keras_loss(keras: Any, loss: str, logits: bool) -> Any:
    losses = keras.losses
    if loss == "cross_entropy":
        return losses.SparseCategoricalCrossentropy(from_logits=logits)
    if loss == "binary_cross_entropy":
        return losses.BinaryCrossentropy(from_logits=logits)
    if loss == "mse":
        return losses.MeanSquaredError()
    if loss == "mae":
        return losses.MeanAbsoluteError()
    raise ValueError(f"unknown loss {loss!r}")


def keras_metrics(keras: Any, loss: str, logits: bool, classification: bool) -> list[Any]:
    """[accuracy] for classification, reported as "accuracy"/"val_accuracy"; else none."""
    if not classification:
        return []
    if loss == "cross_entropy":
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    return [keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0 if logits else 0.5)]


def torch_loss(torch: Any, loss: str, logits: bool) -> Callable[[Any, Any], Any]:
    """``loss_fn(output, target)`` with the output channels-last, like Keras's."""
    functional = torch.nn.functional

    if loss == "cross_entropy":

        def cross_entropy(output, target):
            scores = output.reshape(-1, output.shape[-1])
            if not logits:  # Keras: log of the clipped probabilities, renormalised by softmax
                scores = torch.log(scores.clamp(EPSILON, 1 - EPSILON))
            return functional.cross_entropy(scores, target.reshape(-1))

        return cross_entropy
    if loss == "binary_cross_entropy":
        if logits:
            return functional.binary_cross_entropy_with_logits

        def binary_cross_entropy(output, target):
            p = output.clamp(EPSILON, 1 - EPSILON)
            return -(target * torch.log(p) + (1 - target) * torch.log(1 - p)).mean()

        return binary_cross_entropy
    if loss == "mse":
        return functional.mse_loss
    if loss == "mae":
        return functional.l1_loss
    raise ValueError(f"unknown loss {loss!r}")


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
