"""Channels-first sources (ONNX, PyTorch) onto the channels-last catalog.

A source tensor is represented by a :class:`Tensor`: the project layer that
computes it, and its *form*, i.e. how the source's axes relate to the Keras
tensor's:

- ``CF``: the source tensor is the Keras tensor with its channels moved to
  axis 1 (an ``(N, C, H, W)`` image is Keras ``(N, H, W, C)``);
- ``SAME``: the same axes in the same order (vectors, sequences);
- ``SQUEEZED``: a global pooling kept its unit axes in the source,
  ``(N, C, 1, 1)``, where Keras has ``(N, C)``;
- ``FLAT_CF``: the source flattened a channels-first tensor, ``(c, h, w)``
  order, where Keras's Flatten gives ``(h, w, c)``. Only Dense layers may
  consume it: their kernel rows are permuted instead of the data.

Layers that need another form get a ``Permute`` (or ``Reshape``) inserted;
the source's symmetric paddings become Keras 'same' only when Keras would
pad exactly the same way, and otherwise an explicit ``ZeroPadding2D`` where
that is equivalent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from studio.catalog import ShapeError
from studio.interop.builder import GraphBuilder
from studio.interop.errors import Unsupported

CF, SAME, SQUEEZED, FLAT_CF = "cf", "same", "squeezed", "flat_cf"


@dataclass(frozen=True)
class Tensor:
    layer: str
    form: str = SAME
    nonneg: bool = False  # every value >= 0 (after a ReLU): zero padding then equals -inf padding for max
    ones: int = 0  # SQUEEZED: how many unit axes the source keeps after the channels
    flat_source: tuple[int, ...] | None = None  # FLAT_CF: the Keras shape that was flattened


def same_pads(length: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """Keras 'same' padding along one axis: (before, after), any odd unit after."""
    out = math.ceil(length / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - length, 0)
    return total // 2, total - total // 2


class ChannelsFirstGraph:
    """Adds Keras-layout layers for source operations, converting forms where needed."""

    def __init__(self, builder: GraphBuilder) -> None:
        self.builder = builder

    # ----- shapes -----------------------------------------------------------------

    def keras_shape(self, tensor: Tensor) -> tuple[int, ...]:
        try:
            return self.builder.shape(tensor.layer)
        except ShapeError as error:
            raise Unsupported(str(error)) from None

    def source_shape(self, tensor: Tensor) -> tuple[int, ...]:
        """The shape the source framework sees (batch excluded)."""
        shape = self.keras_shape(tensor)
        if tensor.form == CF and len(shape) >= 2:
            return (shape[-1], *shape[:-1])
        if tensor.form == SQUEEZED:
            return (*shape, *(1,) * tensor.ones)
        return shape

    # ----- adding layers ------------------------------------------------------------

    def add(
        self,
        kind: str,
        name: str,
        inputs: Sequence[Tensor],
        params: dict[str, Any] | None = None,
        weights: list[np.ndarray] | None = None,
        source_kind: str | None = None,
        form: str | None = None,
        nonneg: bool = False,
    ) -> Tensor:
        node = self.builder.add(kind, name, params or {}, [t.layer for t in inputs], weights, source_kind)
        if node is None:
            raise AlreadyReported()
        if form is None and inputs:  # the layer keeps its input's layout
            result = replace(inputs[0], layer=node, nonneg=nonneg)
        else:
            result = Tensor(node, form or SAME, nonneg)
        self.keras_shape(result)  # check it now, so the problem is reported at this layer
        return result

    # ----- forms --------------------------------------------------------------------

    def to_cf(self, tensor: Tensor, name: str) -> Tensor:
        """The tensor in CF form: Keras channels-last for a channels-first source image."""
        if tensor.form == CF:
            return tensor
        if tensor.form == SQUEEZED:
            channels = self.keras_shape(tensor)[-1]
            target = [1] * tensor.ones + [channels]
            return self.add("Reshape", f"{name}_unsqueeze", [tensor], {"target_shape": target}, form=CF)
        if tensor.form == SAME:
            rank = len(self.keras_shape(tensor))
            if rank < 2:
                raise Unsupported(f"expects a channels-first tensor but received a vector of rank {rank + 1}")
            dims = [*range(2, rank + 1), 1]
            return self.add("Permute", f"{name}_to_channels_last", [tensor], {"dims": dims}, form=CF)
        raise Unsupported("expects an image, but its input was flattened in channels-first order")

    def to_same(self, tensor: Tensor, name: str) -> Tensor:
        """The tensor with the source's axis order (for layers that work on the last axis)."""
        if tensor.form == SAME:
            return tensor
        if tensor.form == CF:
            rank = len(self.keras_shape(tensor))
            dims = [rank, *range(1, rank)]
            return self.add("Permute", f"{name}_to_channels_first", [tensor], {"dims": dims}, form=SAME)
        if tensor.form == SQUEEZED:
            if tensor.ones == 0:
                return replace(tensor, form=SAME)
            shape = list(self.source_shape(tensor))
            return self.add("Reshape", f"{name}_unsqueeze", [tensor], {"target_shape": shape}, form=SAME)
        raise Unsupported("its input was flattened in channels-first order; only Dense layers can take it")

    def as_vector(self, tensor: Tensor, name: str) -> Tensor:
        """A (N, F) tensor for Dense: SAME, FLAT_CF and a SQUEEZED (N, C) pass unchanged."""
        if tensor.form == FLAT_CF or (tensor.form == SQUEEZED and tensor.ones == 0):
            return tensor
        return self.to_same(tensor, name)

    # ----- reshaping ----------------------------------------------------------------

    def flatten(self, tensor: Tensor, name: str, source_kind: str, only_dense: bool) -> Tensor:
        """The source's flatten from axis 1: (N, ...) -> (N, prod)."""
        shape = self.keras_shape(tensor)
        if tensor.form == SQUEEZED:
            return self.add(
                "Flatten", name, [tensor], source_kind=source_kind, form=SAME, nonneg=tensor.nonneg
            )
        if tensor.form == CF and math.prod(shape[:-1]) > 1:
            if only_dense:
                flat = self.add(
                    "Flatten", name, [tensor], source_kind=source_kind, form=FLAT_CF, nonneg=tensor.nonneg
                )
                return replace(flat, flat_source=shape)
            tensor = self.to_same(tensor, name)
        if tensor.form == FLAT_CF:
            return tensor
        return self.add("Flatten", name, [tensor], source_kind=source_kind, form=SAME, nonneg=tensor.nonneg)

    def reshape(
        self, tensor: Tensor, target: Sequence[int], name: str, source_kind: str, only_dense: bool
    ) -> Tensor:
        """The source's reshape to ``(N, *target)`` (target fully resolved, no -1 or 0)."""
        source = self.source_shape(tensor)
        if math.prod(target) != math.prod(source):
            raise Unsupported(f"cannot reshape {source} to {tuple(target)}")
        if len(target) == 1:
            return self.flatten(tensor, name, source_kind, only_dense)
        if tuple(target) == tuple(source):
            return tensor
        if tensor.form == SQUEEZED and tuple(target) == (source[0],) + (1,) * (len(target) - 1):
            return replace(tensor, ones=len(target) - 1)
        tensor = self.to_same(tensor, name)
        return self.add(
            "Reshape", name, [tensor], {"target_shape": list(target)}, source_kind=source_kind, form=SAME
        )

    def transpose(self, tensor: Tensor, perm: Sequence[int], name: str, source_kind: str) -> Tensor:
        """The source's permutation of all axes (batch included, which must stay first)."""
        rank = len(perm)
        perm = tuple(perm)
        if perm[0] != 0:
            raise Unsupported(f"perm={list(perm)} moves the batch axis")
        if perm == tuple(range(rank)):
            return tensor
        to_last = (0, *range(2, rank), 1)
        to_first = (0, rank - 1, *range(1, rank - 1))
        if tensor.form == CF and perm == to_last:
            return replace(tensor, form=SAME)
        if tensor.form == SAME and perm == to_first and rank >= 3:
            return replace(tensor, form=CF)
        tensor = self.to_same(tensor, name)
        dims = [int(axis) for axis in perm[1:]]
        return self.add("Permute", name, [tensor], {"dims": dims}, source_kind=source_kind, form=SAME)

    # ----- merges -------------------------------------------------------------------

    def common_form(self, tensors: Sequence[Tensor], name: str) -> list[Tensor]:
        """All tensors in the form of the first (a merge needs them alike)."""
        first = tensors[0]
        result = [first]
        for tensor in tensors[1:]:
            if (
                tensor.form == first.form
                and tensor.ones == first.ones
                and tensor.flat_source == first.flat_source
            ):
                result.append(tensor)
            elif first.form == CF:
                result.append(self.to_cf(tensor, name))
            elif first.form == SAME:
                result.append(self.to_same(tensor, name))
            else:
                raise Unsupported("its inputs are laid out differently (one was flattened channels-first)")
        return result

    def merge(self, kind: str, tensors: Sequence[Tensor], name: str, source_kind: str) -> Tensor:
        tensors = self.common_form(tensors, name)
        shapes = [self.source_shape(tensor) for tensor in tensors]
        if any(shape != shapes[0] for shape in shapes[1:]):
            raise Unsupported(
                f"its inputs have shapes {', '.join(str(s) for s in shapes)}; the catalog's merges need "
                "identical shapes (no broadcasting)"
            )
        nonneg = all(t.nonneg for t in tensors) and kind in ("Add", "Multiply", "Average", "Maximum")
        return self.add(kind, name, tensors, source_kind=source_kind, nonneg=nonneg)

    def concatenate(self, tensors: Sequence[Tensor], axis: int, name: str, source_kind: str) -> Tensor:
        tensors = self.common_form(tensors, name)
        first = tensors[0]
        rank = len(self.source_shape(first)) + 1
        axis = axis + rank if axis < 0 else axis
        if not 0 < axis < rank:
            raise Unsupported(f"axis={axis} concatenates along the batch axis or out of range")
        if first.form == CF:
            keras_axis = -1 if axis == 1 else axis - 1
        elif first.form == SQUEEZED:
            if axis != 1:
                raise Unsupported(f"axis={axis} concatenates along a unit axis of a pooled tensor")
            keras_axis = -1
        elif first.form == SAME:
            keras_axis = axis
        else:
            raise Unsupported("concatenates tensors flattened in channels-first order")
        nonneg = all(t.nonneg for t in tensors)
        return self.add(
            "Concatenate", name, tensors, {"axis": keras_axis}, source_kind=source_kind, nonneg=nonneg
        )

    # ----- windows ------------------------------------------------------------------

    def window_padding(
        self,
        tensor: Tensor,
        pads: Sequence[tuple[int, int]],
        kernel: Sequence[int],
        strides: Sequence[int],
        dilations: Sequence[int],
        name: str,
        mode: str,
    ) -> tuple[Tensor, str]:
        """The input and Keras padding for a window op that pads ``pads`` (before, after) per axis.

        ``mode``: "conv" (zeros), "max" (-inf: zeros are equivalent only for a
        non-negative input), "avg_include" (zeros, counted in the average) or
        "avg_exclude" (padding left out of the average, as Keras 'same').
        """
        pads = [tuple(pair) for pair in pads]
        if all(pair == (0, 0) for pair in pads):
            return tensor, "valid"
        spatial = self.keras_shape(tensor)[:-1]
        keras_same = [
            same_pads(n, k, s, d) for n, k, s, d in zip(spatial, kernel, strides, dilations, strict=True)
        ]
        if pads == keras_same and mode != "avg_include":
            return tensor, "same"
        if mode == "max" and not tensor.nonneg:
            raise Unsupported(
                f"pads {pads} with -inf; zero padding is equivalent only when the input is non-negative "
                "(after a ReLU), and Keras 'same' would pad "
                f"{keras_same}"
            )
        if mode == "avg_exclude":
            raise Unsupported(
                f"pads {pads} and leaves the padding out of the average; Keras 'same' would pad {keras_same}"
            )
        if len(pads) != 2:
            raise Unsupported(f"pads {pads} along one axis; the catalog has no ZeroPadding1D")
        if any(before < 0 or after < 0 for before, after in pads):
            raise Unsupported(f"negative pads {pads} (cropping)")
        (top, bottom), (left, right) = pads
        padded = self.add(
            "ZeroPadding2D",
            f"{name}_pad",
            [tensor],
            {"padding": [top, bottom, left, right]},
            source_kind="padding",
            nonneg=tensor.nonneg,
        )
        return padded, "valid"

    def dense_kernel(self, kernel: np.ndarray, tensor: Tensor) -> np.ndarray:
        """A Dense kernel ``(in, units)`` with rows in the source's order, reordered for Keras's."""
        if tensor.form != FLAT_CF:
            return kernel
        shape = tensor.flat_source  # Keras (..., C); the source's rows are (C, ...)
        units = kernel.shape[-1]
        channels_first = kernel.reshape(shape[-1], *shape[:-1], units)
        rank = len(shape)
        return channels_first.transpose(*range(1, rank), 0, rank).reshape(kernel.shape)


class AlreadyReported(Unsupported):
    """The builder already recorded this layer's problem (invalid parameters): record nothing more."""


# ----- layers shared by the channels-first importers ------------------------------------
# Weights arrive in the PyTorch / ONNX layout (the two agree) and leave in Keras layout.


def conv_layer(
    graph: ChannelsFirstGraph,
    x: Tensor,
    name: str,
    source_kind: str,
    weight: np.ndarray,
    bias: np.ndarray | None,
    strides: Sequence[int],
    dilations: Sequence[int],
    pads: Sequence[tuple[int, int]],
    groups: int,
) -> Tensor:
    """Conv1D, Conv2D or DepthwiseConv2D for a convolution with weight ``(out, in / groups, k...)``."""
    rank = weight.ndim - 2
    if rank not in (1, 2):
        raise Unsupported(f"a {rank}-D convolution; the catalog has 1-D and 2-D convolutions")
    x = graph.to_cf(x, name)
    channels = graph.keras_shape(x)[-1]
    out_channels = weight.shape[0]
    kernel = tuple(int(k) for k in weight.shape[2:])
    x, padding = graph.window_padding(x, pads, kernel, strides, dilations, name, "conv")
    common = {"padding": padding, "use_bias": bias is not None}
    if rank == 1:
        if groups != 1:
            raise Unsupported(f"groups={groups}: the catalog has no grouped or depthwise 1-D convolution")
        kind = "Conv1D"
        params = {
            "filters": out_channels,
            "kernel_size": kernel[0],
            "strides": int(strides[0]),
            "dilation_rate": int(dilations[0]),
            **common,
        }
        weights = [weight.transpose(2, 1, 0)]
    elif groups == 1:
        kind = "Conv2D"
        params = {
            "filters": out_channels,
            "kernel_size": kernel,
            "strides": tuple(strides),
            "dilation_rate": tuple(dilations),
            **common,
        }
        weights = [weight.transpose(2, 3, 1, 0)]
    elif groups == channels and out_channels % channels == 0 and weight.shape[1] == 1:
        kind = "DepthwiseConv2D"
        multiplier = out_channels // channels
        params = {
            "kernel_size": kernel,
            "strides": tuple(strides),
            "dilation_rate": tuple(dilations),
            "depth_multiplier": multiplier,
            **common,
        }
        weights = [weight.transpose(2, 3, 1, 0).reshape(*kernel, channels, multiplier)]
    else:
        raise Unsupported(
            f"groups={groups}: grouped convolutions have no catalog equivalent (only groups=1 and depthwise)"
        )
    if bias is not None:
        weights.append(bias)
    return graph.add(kind, name, [x], params, weights, source_kind=source_kind)


def conv_transpose_layer(
    graph: ChannelsFirstGraph,
    x: Tensor,
    name: str,
    source_kind: str,
    weight: np.ndarray,
    bias: np.ndarray | None,
    strides: Sequence[int],
    pads: Sequence[tuple[int, int]],
    output_padding: Sequence[int],
) -> Tensor:
    """Conv2DTranspose (+ Cropping2D) for weight ``(in, out, kh, kw)``, pads (begin, end) per axis.

    The source's output is the full transposed convolution ``(n-1)*s + k`` cropped
    by ``begin`` and ``end - output_padding``; Keras 'valid' gives the full output
    (for k >= s), and 'same' crops ``((k-s)//2, (k-s) - (k-s)//2)``.
    """
    if weight.ndim != 4:
        raise Unsupported("only 2-D transposed convolutions are in the catalog")
    x = graph.to_cf(x, name)
    kernel = tuple(int(k) for k in weight.shape[2:])
    crops = []
    for k, s, (before, after), extra in zip(kernel, strides, pads, output_padding, strict=True):
        if k < s:
            if (before, after, extra) != (0, 0, s - k):
                raise Unsupported(
                    f"kernel {k} < stride {s} with pads or output_padding that Keras cannot express"
                )
            crops.append((0, 0))
            continue
        if after - extra < 0 or before < 0:
            raise Unsupported(f"output_padding {extra} larger than the padding {after}")
        crops.append((before, after - extra))
    same = [((k - s) // 2, (k - s) - (k - s) // 2) for k, s in zip(kernel, strides, strict=True)]
    padding = "valid"
    if all(k >= s for k, s in zip(kernel, strides, strict=True)) and crops == same and crops != [(0, 0)] * 2:
        padding, crops = "same", [(0, 0), (0, 0)]
    params = {
        "filters": int(weight.shape[1]),
        "kernel_size": kernel,
        "strides": tuple(strides),
        "padding": padding,
        "use_bias": bias is not None,
    }
    weights = [weight.transpose(2, 3, 1, 0)] + ([bias] if bias is not None else [])
    result = graph.add("Conv2DTranspose", name, [x], params, weights, source_kind=source_kind)
    if crops != [(0, 0), (0, 0)]:
        (top, bottom), (left, right) = crops
        result = graph.add(
            "Cropping2D",
            f"{name}_crop",
            [result],
            {"cropping": [top, bottom, left, right]},
            source_kind=source_kind,
        )
    return result


def dense_layer(
    graph: ChannelsFirstGraph,
    x: Tensor,
    name: str,
    source_kind: str,
    kernel: np.ndarray,
    bias: np.ndarray | None,
) -> Tensor:
    """Dense for a kernel ``(in, units)`` (rows in the source's order) on the source's last axis."""
    x = graph.as_vector(x, name) if len(graph.source_shape(x)) == 1 else graph.to_same(x, name)
    if graph.source_shape(x)[-1] != kernel.shape[0]:
        raise Unsupported(f"a weight of shape {kernel.shape} for {graph.source_shape(x)[-1]} input features")
    units = int(kernel.shape[1])
    weights = [graph.dense_kernel(kernel, x)] + ([bias.reshape(units)] if bias is not None else [])
    params = {"units": units, "use_bias": bias is not None}
    return graph.add("Dense", name, [x], params, weights, source_kind=source_kind, form=SAME)


def batch_norm_layer(
    graph: ChannelsFirstGraph,
    x: Tensor,
    name: str,
    source_kind: str,
    scale: np.ndarray | None,
    bias: np.ndarray | None,
    mean: np.ndarray,
    variance: np.ndarray,
    epsilon: float,
    keras_momentum: float,
) -> Tensor:
    """BatchNormalization over the channel axis (axis 1 of the source)."""
    rank = len(graph.source_shape(x))
    x = graph.to_cf(x, name) if rank >= 2 else graph.as_vector(x, name)
    affine = scale is not None
    params = {"momentum": keras_momentum, "epsilon": epsilon, "center": affine, "scale": affine}
    weights = ([scale, bias] if affine else []) + [mean, variance]
    return graph.add("BatchNormalization", name, [x], params, weights, source_kind=source_kind)


def pooling_layer(
    graph: ChannelsFirstGraph,
    x: Tensor,
    name: str,
    source_kind: str,
    is_max: bool,
    kernel: Sequence[int],
    strides: Sequence[int],
    pads: Sequence[tuple[int, int]],
    count_include_pad: bool = False,
    ceil_mode: bool = False,
) -> Tensor:
    """MaxPooling / AveragePooling 1D or 2D, its padding made Keras-exact or refused."""
    x = graph.to_cf(x, name)
    rank = len(graph.keras_shape(x)) - 1
    if rank not in (1, 2) or len(kernel) != rank:
        raise Unsupported(f"a {len(kernel)}-D pooling on a rank-{rank + 2} tensor")
    if ceil_mode:
        spatial = graph.keras_shape(x)[:-1]
        for size, k, s, (before, after) in zip(spatial, kernel, strides, pads, strict=True):
            if (size + before + after - k) % s:
                raise Unsupported("ceil_mode adds a partial window here; Keras pools whole windows only")
    mode = "max" if is_max else ("avg_include" if count_include_pad else "avg_exclude")
    x, padding = graph.window_padding(x, pads, kernel, strides, (1,) * rank, name, mode)
    kind = f"{'Max' if is_max else 'Average'}Pooling{rank}D"
    params = {"pool_size": tuple(kernel), "strides": tuple(strides), "padding": padding}
    return graph.add(kind, name, [x], params, source_kind=source_kind, nonneg=x.nonneg)


def global_pooling_layer(
    graph: ChannelsFirstGraph, x: Tensor, name: str, source_kind: str, is_max: bool, keep_dims: bool
) -> Tensor:
    """Global pooling over every spatial axis; with ``keep_dims`` the source keeps unit axes."""
    x = graph.to_cf(x, name)
    rank = len(graph.keras_shape(x)) - 1
    if rank not in (1, 2):
        raise Unsupported(f"a {rank}-D global pooling; the catalog has 1-D and 2-D")
    kind = f"Global{'Max' if is_max else 'Average'}Pooling{rank}D"
    result = graph.add(kind, name, [x], source_kind=source_kind, form=SQUEEZED, nonneg=x.nonneg)
    return Tensor(result.layer, SQUEEZED, x.nonneg, ones=rank if keep_dims else 0)


def check_softmax_axis(graph: ChannelsFirstGraph, x: Tensor, axis: int) -> None:
    """The catalog's softmax runs over the channels: axis 1 of a channels-first source, else the last."""
    shape = graph.source_shape(x)
    rank = len(shape) + 1
    axis = axis + rank if axis < 0 else axis
    if x.form == FLAT_CF or (x.form in (CF, SQUEEZED) and axis == 1) or (x.form == SAME and axis == rank - 1):
        return
    raise Unsupported(f"softmax over axis {axis}; the catalog's softmax is over the channel axis")


def crop_layer(
    graph: ChannelsFirstGraph, x: Tensor, name: str, source_kind: str, bounds: dict[int, tuple[int, int]]
) -> Tensor:
    """Cropping2D for a slice ``start:end`` (step 1) of source axes, given as {axis: (start, end)}."""
    source = graph.source_shape(x)
    crops = {}
    for axis, (start, end) in bounds.items():
        size = source[axis - 1] if 0 < axis <= len(source) else None
        if size is None:
            raise Unsupported(f"slices axis {axis} (the batch, or out of range)")
        start = max(0, min(size, start + size if start < 0 else start))
        end = max(0, min(size, end + size if end < 0 else end))
        if (start, end) != (0, size):
            crops[axis] = (start, size - end)
    if not crops:
        return x
    if x.form != CF or len(source) != 3 or any(axis not in (2, 3) for axis in crops):
        raise Unsupported(
            "slices a tensor; the catalog only crops the height and width of images (Cropping2D)"
        )
    top, bottom = crops.get(2, (0, 0))
    left, right = crops.get(3, (0, 0))
    params = {"cropping": [top, bottom, left, right]}
    return graph.add("Cropping2D", name, [x], params, source_kind=source_kind, nonneg=x.nonneg)
