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
from dataclasses import replace
from typing import Any

import numpy as np

from codegen.layers.base import CF, FLAT_CF, SAME, SQUEEZED, AlreadyReported, Tensor, Unsupported
from codegen.layers.windows import same_padding
from studio.catalog import ShapeError
from studio.interop.builder import GraphBuilder


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
        if tensor.form == SQUEEZED:  # (N, C) holds its elements in the source's order already
            return self.add(
                "Reshape", name, [tensor], {"target_shape": list(target)}, source_kind=source_kind, form=SAME
            )
        if tensor.form == CF and len(source) >= 2 and target[0] == source[0]:
            # The channels stay first and only the spatial axes change (patches (N, C, H, W) ->
            # (N, C, H * W)): the same reshape of the spatial axes in Keras, channels still last.
            keras_target = [*target[1:], target[0]]
            return self.add(
                "Reshape", name, [tensor], {"target_shape": keras_target}, source_kind=source_kind, form=CF
            )
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
        source = self.source_shape(tensor)
        moved = [axis for axis in perm[1:] if source[axis - 1] != 1]
        if moved == sorted(moved):  # only unit axes move (a pooled (N, C, 1, 1) to (N, 1, 1, C)): a reshape
            target = [source[axis - 1] for axis in perm[1:]]
            return self.reshape(tensor, target, name, source_kind, only_dense=False)
        tensor = self.to_same(tensor, name)
        dims = [int(axis) for axis in perm[1:]]
        return self.add("Permute", name, [tensor], {"dims": dims}, source_kind=source_kind, form=SAME)

    # ----- merges -------------------------------------------------------------------

    def common_form(self, tensors: Sequence[Tensor], name: str) -> list[Tensor]:
        """All tensors in one form (a merge needs them alike): the first image's, else the first's."""
        # A pooled (N, C) that kept no unit axes is (N, C) in both layouts.
        tensors = [replace(t, form=SAME) if t.form == SQUEEZED and t.ones == 0 else t for t in tensors]
        first = next((tensor for tensor in tensors if tensor.form == CF), tensors[0])
        result = []
        for tensor in tensors:
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
                forms = ", ".join(sorted({tensor.form for tensor in tensors}))
                raise Unsupported(
                    f"its inputs are laid out differently ({forms}); the catalog merges them alike"
                )
        return result

    def merge(self, kind: str, tensors: Sequence[Tensor], name: str, source_kind: str) -> Tensor:
        tensors = self.common_form(tensors, name)
        _check_broadcast([self.source_shape(tensor) for tensor in tensors])
        nonneg = all(t.nonneg for t in tensors) and kind in (
            "Add",
            "Multiply",
            "Average",
            "Maximum",
            "Minimum",
        )
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
            same_padding(n, k, s, d) for n, k, s, d in zip(spatial, kernel, strides, dilations, strict=True)
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
        if any(before < 0 or after < 0 for before, after in pads):
            raise Unsupported(f"negative pads {pads} (cropping)")
        if len(pads) == 1:
            padding = list(pads[0])
            padded = self.add(
                "ZeroPadding1D", f"{name}_pad", [tensor], {"padding": padding}, nonneg=tensor.nonneg
            )
            return padded, "valid"
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


def _check_broadcast(shapes: Sequence[tuple[int, ...]]) -> None:
    """The source broadcasts tensors of one rank (with their batch) as Keras does, axis by axis.

    The forms are alike, so the Keras shapes are the source shapes with the same axes moved;
    different ranks would align the batch with another axis in the source.
    """
    if len({len(shape) for shape in shapes}) > 1:
        raise Unsupported(
            f"its inputs have shapes {', '.join(str(s) for s in shapes)}: ranks that differ would "
            "broadcast the batch axis against another one"
        )
    for axis in range(len(shapes[0])):
        if len({shape[axis] for shape in shapes} - {1}) > 1:
            raise Unsupported(
                f"its inputs have shapes {', '.join(str(s) for s in shapes)}, which do not broadcast "
                f"(axis {axis + 1} differs)"
            )
