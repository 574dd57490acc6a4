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


def pooled_pads(
    length: int, kernel: int, stride: int, pads: tuple[int, int], ceil_mode: bool
) -> tuple[int, int]:
    """The (before, after) padding a PyTorch (or ONNX) pooling's windows reach along one axis.

    ``ceil_mode`` adds a partial last window where the windows do not tile the
    padded input, unless that window would start in the right padding: its
    overhang past the padding grows the after side. Pooling leaves it out of
    any count (a max ignores it; an average divides by the cells it covers up
    to the padding).
    """
    before, after = pads
    span = length + before + after - kernel
    if not ceil_mode or span < 0 or span % stride == 0:
        return before, after
    count = span // stride + 2  # ceil(span / stride) + 1 windows
    if (count - 1) * stride >= length + before:
        return before, after
    return before, (count - 1) * stride + kernel - length - before
