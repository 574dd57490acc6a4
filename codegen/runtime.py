"""Running generated programs: load their source as a module, and move arrays between layouts.

The models that the studio trains, verifies and exports are built from this
very source text, never from a parallel implementation.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator

import numpy as np

from codegen.layers.base import CF, FLAT_CF, Layout


def load_module(source: str, name: str) -> types.ModuleType:
    """Execute generated source as a module: the models are built from this very text."""
    module = types.ModuleType(name)
    module.__file__ = f"<generated {name}>"
    exec(compile(source, module.__file__, "exec"), module.__dict__)  # our own generated code
    return module


def keras_layer_classes() -> dict[str, type]:
    """The Keras layer classes the generated programs define (``Lowering.keras_class``), by kind."""
    from codegen.layers import LOWERINGS

    kinds = [lowering for lowering in LOWERINGS.kinds.values() if lowering.keras_class]
    lines = ["import keras", "from keras import layers", ""]
    for lowering in kinds:
        lines += ["", *lowering.keras_class]
    module = load_module("\n".join(lines) + "\n", "layer_studio_keras_classes")
    return {lowering.kind: getattr(module, lowering.kind) for lowering in kinds}


def to_torch_layout(array: np.ndarray, layout: Layout) -> np.ndarray:
    if layout.kind == CF and array.ndim >= 3:
        return np.ascontiguousarray(np.moveaxis(array, -1, 1))
    return array


def to_keras_layout(array: np.ndarray, layout: Layout) -> np.ndarray:
    if layout.kind == CF and array.ndim >= 3:
        return np.moveaxis(array, 1, -1)
    if layout.kind == FLAT_CF:
        shape = layout.source
        channels_first = array.reshape(len(array), shape[-1], *shape[:-1])
        return np.moveaxis(channels_first, 1, -1).reshape(len(array), -1)
    return array


@contextlib.contextmanager
def keras_float64(keras) -> Iterator[None]:
    """Keras models built inside compute and keep their variables in float64 (the checks that
    float32 rounding must neither fake nor hide a difference in)."""
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")  # new layers' dtype, once a policy has been cached
    try:
        yield
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)


def exact_rescaling_constants(keras_model) -> None:
    """Rescaling layers whose scale and offset are their config's numbers in float64 too.

    Keras's Rescaling casts its Python-float constants with the TensorFlow backend's ``cast``,
    which makes a float32 tensor of a Python float first: in a float64 model, 1/255 is then the
    float32 rounding of 1/255 (6e-8 off), enough for a deep network in training mode to drift
    visibly from a PyTorch program computing the exact number. numpy float64 values keep theirs.
    """
    for layer in keras_model.layers:
        if type(layer).__name__ == "Rescaling":
            for name in ("scale", "offset"):
                value = getattr(layer, name)
                if isinstance(value, float):
                    setattr(layer, name, np.float64(value))
