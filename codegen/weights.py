"""Convert Keras weights into the generated PyTorch model's ``state_dict``.

Each layer's lowering converts its Keras weights (``layer.get_weights()``,
numpy arrays in Keras order) to the PyTorch entries for that layer, keyed
without the module prefix. Layouts follow codegen/DIFFERENCES.md.
"""

from __future__ import annotations

import numpy as np

from codegen.layers import LOWERINGS
from codegen.layers.base import Arrays, State
from codegen.plan import ModelPlan


def load_torch_state(model, state: State) -> None:
    """Load numpy arrays (by state_dict key) into a generated PyTorch model.

    Every parameter and buffer must be given, except ``num_batches_tracked``,
    which keeps the model's own value. Raises ValueError naming what does not map.
    """
    import torch

    own = model.state_dict()
    missing = [key for key in own if key not in state and not key.endswith("num_batches_tracked")]
    unexpected = [key for key in state if key not in own]
    if missing or unexpected:
        raise ValueError(f"weights could not be mapped: missing {missing}, unexpected {unexpected}")
    merged = {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in state.items()}
    for key, value in own.items():
        merged.setdefault(key, value)
    model.load_state_dict(merged, strict=True)


def torch_counts(model) -> tuple[int, int]:
    """(trainable, non-trainable): parameters that train, then frozen parameters and buffers
    without ``num_batches_tracked``; the catalog's torch counting rule."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    buffers = sum(b.numel() for name, b in model.named_buffers() if not name.endswith("num_batches_tracked"))
    return int(trainable), int(frozen + buffers)


def keras_to_torch_state(plan: ModelPlan, keras_weights: dict[str, Arrays], dtype=np.float32) -> State:
    """The full torch state (numpy arrays) from each layer's Keras weights, keyed by layer ident."""
    state: State = {}
    for layer in plan.layers:
        weights = keras_weights.get(layer.ident) or []
        if not weights:
            continue
        converter = LOWERINGS[layer.kind].weights
        if converter is None:
            raise ValueError(f"no weight converter for {layer.kind} '{layer.node.name}'")
        for name, array in converter(layer, weights, plan).items():
            state[f"{layer.ident}.{name}"] = np.ascontiguousarray(array, dtype=dtype)
    return state


def torch_to_keras_weights(
    plan: ModelPlan, state: State, keras_shapes: dict[str, list[tuple]]
) -> dict[str, Arrays]:
    """Each layer's Keras weights (by layer ident) from a PyTorch ``state`` (numpy arrays by key).

    The inverse of :func:`keras_to_torch_state`, derived from it rather than written again per
    kind: every lowering's converter only moves values (transposes, reshapes, concatenations,
    gate reorders), so converting Keras weights numbered 1, 2, 3, ... shows where each value
    lands. ``keras_shapes`` gives each layer's Keras weight shapes. Raises ValueError when a
    converter computes rather than moves, or a Keras value has no PyTorch counterpart.
    """
    result: dict[str, Arrays] = {}
    for layer in plan.layers:
        shapes = keras_shapes.get(layer.ident) or []
        if not shapes:
            continue
        sizes = [int(np.prod(shape)) for shape in shapes]
        total = sum(sizes)
        if total >= 2**53:  # float64 numbers the values exactly below 2**53
            raise ValueError(f"'{layer.node.name}' has too many weights to convert back")
        numbers = np.arange(1, total + 1, dtype=np.float64)
        numbered, start = [], 0
        for shape, size in zip(shapes, sizes, strict=True):
            numbered.append(numbers[start : start + size].reshape(shape))
            start += size
        flat = np.zeros(total, dtype=np.float32)
        found = np.zeros(total, dtype=bool)
        for name, places in LOWERINGS[layer.kind].weights(layer, numbered, plan).items():
            places = np.asarray(places, dtype=np.float64).ravel()
            key = f"{layer.ident}.{name}"
            if key not in state:
                raise ValueError(f"'{layer.node.name}': the PyTorch weights have no {key}")
            values = np.asarray(state[key], dtype=np.float32).ravel()
            moved = places != 0  # zeros are values the converter made up (a frozen second bias)
            index = places[moved]
            if values.size != places.size or np.any(index != np.round(index)) or np.any(index > total):
                raise ValueError(f"'{layer.node.name}': its {layer.kind} weights cannot be converted back")
            index = index.astype(np.int64) - 1
            flat[index] = values[moved]
            found[index] = True
        if not found.all():
            raise ValueError(f"'{layer.node.name}': some of its Keras weights have no PyTorch counterpart")
        arrays, start = [], 0
        for shape, size in zip(shapes, sizes, strict=True):
            arrays.append(flat[start : start + size].reshape(shape))
            start += size
        result[layer.ident] = arrays
    return result
