"""Pooling layers: windowed max and average pooling, and their global forms.

Windowed pooling slides like a convolution (see :func:`window_output_shape`);
``strides`` is null by default, meaning "the same as pool_size", in both
frameworks. Keras 'same' padding is asymmetric (the odd unit goes at the end)
and is excluded from averages; the PyTorch code pads explicitly to match.
Global pooling reduces every spatial axis and returns ``(channels,)``, or
``(1, 1, channels)`` with ``keepdims``. Adaptive pooling gives a fixed output
size with PyTorch's windows: output ``i`` pools the input from
``floor(i * n / out)`` to ``ceil((i + 1) * n / out)``, so windows may overlap
or (``out > n``) repeat input cells.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from studio.catalog.base import (
    FlopCount,
    LayerSpec,
    Shape,
    ShapeError,
    check_size,
    element_count,
    expect_rank,
)
from studio.catalog.convolution import window_output_shape
from studio.catalog.params import BoolParam, ChoiceParam, IntTupleParam, Param

_AXES = {1: "length", 2: "height and width"}


def pooling_params(rank: int, average: bool) -> tuple[Param, ...]:
    """pool_size, strides and padding of a windowed pooling over ``rank`` axes."""
    axes = _AXES[rank]
    if average:
        same = (
            "'same' pads so the output is ceil(input / strides), padding left out of averages (unlike torch)"
        )
    else:
        same = "'same' pads with -inf so the output is ceil(input / strides)"
    return (
        IntTupleParam("pool_size", (2,) * rank, f"Window size along {axes} (Keras default 2).", length=rank),
        IntTupleParam(
            "strides",
            None,
            f"Step of the window along {axes}; null means the same as pool_size (both frameworks).",
            length=rank,
            nullable=True,
        ),
        ChoiceParam(
            "padding",
            "valid",
            f"'valid' adds no padding; {same}, any odd unit at the end as Keras does.",
            choices=("valid", "same"),
        ),
    )


class _Pooling(LayerSpec):
    """Shared shape rule of the windowed poolings: the channels are kept."""

    category = "Pooling"
    rank: ClassVar[int]
    average: ClassVar[bool] = False

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        shape = expect_rank(inputs, self.rank + 1, "sequence" if self.rank == 1 else "channels-last image")
        pool = params["pool_size"]
        strides = params["strides"] if params["strides"] is not None else pool
        spatial = window_output_shape(shape, pool, strides, params["padding"], window_name="pool_size")
        return (*spatial, shape[-1])

    def count_flops(self, params: Mapping[str, Any], inputs: Sequence[Shape], output: Shape) -> FlopCount:
        # A window of k values: k - 1 comparisons, or k - 1 additions and a division.
        window = math.prod(params["pool_size"])
        per_output = window if self.average else window - 1
        return FlopCount(elementwise=element_count(output) * per_output)


class MaxPooling1D(_Pooling):
    key = "MaxPooling1D"
    doc = "Maximum over a window sliding along the steps of a (steps, channels) sequence."
    rank = 1
    params = pooling_params(1, average=False)


class AveragePooling1D(_Pooling):
    key = "AveragePooling1D"
    average = True
    doc = "Mean over a window sliding along the steps of a (steps, channels) sequence."
    rank = 1
    params = pooling_params(1, average=True)


class MaxPooling2D(_Pooling):
    key = "MaxPooling2D"
    doc = "Maximum over a window sliding over the height and width of an (h, w, c) image."
    rank = 2
    params = pooling_params(2, average=False)


class AveragePooling2D(_Pooling):
    key = "AveragePooling2D"
    average = True
    doc = "Mean over a window sliding over the height and width of an (h, w, c) image."
    rank = 2
    params = pooling_params(2, average=True)


class _GlobalPooling(LayerSpec):
    """Reduces every spatial axis: ``(..., channels)`` -> ``(channels,)``, or unit axes kept."""

    category = "Pooling"
    rank: ClassVar[int]
    params = (
        BoolParam(
            "keepdims",
            False,
            "Keep the pooled axes with size 1, e.g. (1, 1, channels) rather than (channels,) "
            "(PyTorch's keepdim=True, AdaptiveAvgPool2d(1)).",
        ),
    )
    average: ClassVar[bool] = False

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        shape = expect_rank(inputs, self.rank + 1, "sequence" if self.rank == 1 else "channels-last image")
        if params.get("keepdims"):
            return (*(1,) * self.rank, shape[-1])
        return (shape[-1],)

    def count_flops(self, params: Mapping[str, Any], inputs: Sequence[Shape], output: Shape) -> FlopCount:
        values = element_count(inputs[0][:-1])  # per channel
        per_channel = values if self.average else values - 1
        return FlopCount(elementwise=output[-1] * per_channel)


class GlobalMaxPooling1D(_GlobalPooling):
    key = "GlobalMaxPooling1D"
    doc = "Maximum over all steps of a (steps, channels) sequence, giving (channels,)."
    rank = 1


class GlobalAveragePooling1D(_GlobalPooling):
    key = "GlobalAveragePooling1D"
    average = True
    doc = "Mean over all steps of a (steps, channels) sequence, giving (channels,)."
    rank = 1


class GlobalMaxPooling2D(_GlobalPooling):
    key = "GlobalMaxPooling2D"
    doc = "Maximum over the height and width of an (h, w, c) image, giving (channels,)."
    rank = 2


class GlobalAveragePooling2D(_GlobalPooling):
    key = "GlobalAveragePooling2D"
    average = True
    doc = "Mean over the height and width of an (h, w, c) image, giving (channels,)."
    rank = 2


class _AdaptivePooling(LayerSpec):
    """Pools to a fixed ``output_size`` with PyTorch's windows (see the module docstring)."""

    category = "Pooling"
    rank: ClassVar[int]
    is_max: ClassVar[bool] = False

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        shape = expect_rank(inputs, self.rank + 1, "sequence" if self.rank == 1 else "channels-last image")
        size = tuple(params["output_size"])
        if self.is_max and 1 in (*shape[:-1], *size):
            # Keras 3.15's TensorFlow kernel divides by zero there (the process dies of SIGFPE).
            raise ShapeError(
                f"{self.key} with an axis of size 1 (input {shape[:-1]}, output_size {size}) crashes "
                f"Keras's TensorFlow backend; use GlobalMaxPooling{self.rank}D (keepdims) or "
                f"MaxPooling{self.rank}D, which compute the same"
            )
        result = (*size, shape[-1])
        check_size(result)
        return result

    def count_flops(self, params: Mapping[str, Any], inputs: Sequence[Shape], output: Shape) -> FlopCount:
        # PyTorch's windows: output i of an axis of n spans floor(i*n/out) to ceil((i+1)*n/out).
        taps = 1
        for n, out in zip(inputs[0][:-1], output[:-1], strict=True):
            taps *= sum(-(-(i + 1) * n // out) - i * n // out for i in range(out))
        outputs = element_count(output[:-1])
        per_channel = taps if not self.is_max else taps - outputs  # sums and divisions, or comparisons
        return FlopCount(elementwise=output[-1] * per_channel)


def _output_size_param(rank: int) -> IntTupleParam:
    axes = _AXES[rank]
    return IntTupleParam(
        "output_size",
        (2,) * rank,
        f"Output size along {axes}; any size, smaller or larger than the input (windows from "
        "floor(i*n/out) to ceil((i+1)*n/out), as PyTorch).",
        length=rank,
    )


class AdaptiveAveragePooling1D(_AdaptivePooling):
    key = "AdaptiveAveragePooling1D"
    doc = "Mean over output_size windows spanning a (steps, channels) sequence (PyTorch's AdaptiveAvgPool1d)."
    rank = 1
    params = (_output_size_param(1),)


class AdaptiveAveragePooling2D(_AdaptivePooling):
    key = "AdaptiveAveragePooling2D"
    doc = "Mean over output_size windows spanning an (h, w, c) image (PyTorch's AdaptiveAvgPool2d)."
    rank = 2
    params = (_output_size_param(2),)


class AdaptiveMaxPooling1D(_AdaptivePooling):
    key = "AdaptiveMaxPooling1D"
    doc = "Maximum over output_size windows spanning a (steps, channels) sequence (AdaptiveMaxPool1d)."
    rank = 1
    is_max = True
    params = (_output_size_param(1),)


class AdaptiveMaxPooling2D(_AdaptivePooling):
    key = "AdaptiveMaxPooling2D"
    doc = "Maximum over output_size windows spanning an (h, w, c) image (PyTorch's AdaptiveMaxPool2d)."
    rank = 2
    is_max = True
    params = (_output_size_param(2),)


SPECS = (
    MaxPooling2D(),
    AveragePooling2D(),
    GlobalAveragePooling2D(),
    GlobalMaxPooling2D(),
    MaxPooling1D(),
    AveragePooling1D(),
    GlobalAveragePooling1D(),
    GlobalMaxPooling1D(),
    AdaptiveAveragePooling2D(),
    AdaptiveMaxPooling2D(),
    AdaptiveAveragePooling1D(),
    AdaptiveMaxPooling1D(),
)
