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
