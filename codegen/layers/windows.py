"""The one place for window arithmetic: Keras 'same' padding, and PyTorch's padding arguments."""

from __future__ import annotations

import math

from codegen.writer import py


def same_padding(length: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """Keras 'same' padding along one axis: (before, after), any odd unit after (PyTorch puts it before)."""
    out = math.ceil(length / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - length, 0)
    return total // 2, total - total // 2


def keras_pads(
    spatial: tuple[int, ...], padding: str, kernel: tuple, strides: tuple, dilation: tuple
) -> list[tuple[int, int]]:
    """Per spatial axis (in Keras order) the (before, after) padding Keras applies."""
    if padding == "valid":
        return [(0, 0)] * len(spatial)
    if padding == "causal":
        return [((kernel[0] - 1) * dilation[0], 0)]
    return [same_padding(n, k, s, d) for n, k, s, d in zip(spatial, kernel, strides, dilation, strict=True)]


def pad_arg(pads: list[tuple[int, int]]) -> str:
    """F.pad's argument: the last axis first, ``(left, right, top, bottom)``."""
    flat = [value for pair in reversed(pads) for value in pair]
    return py(tuple(flat))
