"""What the families' ONNX handlers (``ONNX_OPS``) may ask of the walker, and helpers they share.

A handler ``(walker, node, inputs, name, index)`` gets the ONNX node, its
input values (a :class:`~codegen.layers.base.Tensor` for a computed tensor, a
numpy array for a constant, None for an omitted optional input), the project
layer name and the node's position in the graph. It returns the value of the
node's output(s), or raises ``Unsupported``. The walker
(``studio.interop.onnx_import``) is used by duck typing:

- ``walker.graph``: the channels-first graph (``SourceGraph``) layers are added to;
- ``walker.opset``: the model's ONNX opset;
- ``walker.batch_size``: the batch size the file's inputs fix (None: a dynamic batch axis);
- ``walker.attrs(node)``: the node's attributes, as Python values;
- ``walker.data(inputs, index=0)``: a computed input (Unsupported for a constant);
- ``walker.weight(node, inputs, index, what)``: a constant input counted as a
  source parameter, as float32 (None where omitted);
- ``walker.constant(inputs, index, what)``: a constant input (None where omitted);
- ``walker.dims(inputs, index, what)``: a constant or shape-derived 1-D
  input as a list, None standing for the batch size;
- ``walker.window(node, tensor, rank, kernel=None)``: a Conv's or a pooling's
  kernel, strides, dilations, (before, after) pads per axis and attributes;
- ``walker.only_dense_after(output)``: every consumer of ``output`` is a Dense;
- ``walker.bias_add(node, units)`` / ``walker.fuse(add, value)``: the Add of a
  constant bias that follows a MatMul, and marking a later node computed by ``value``;
- ``walker.consumers`` (tensor name -> the nodes reading it), ``walker.graph_outputs`` and
  ``walker.constant_of(name)`` (a constant's value, also one made later): for patterns of
  several nodes.

No module-level ``onnx`` import: the walker reads the protobufs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from codegen.layers.base import Unsupported


def positive_axes(axes: Sequence[int], rank: int) -> list[int]:
    """Negative axes counted from the end, sorted."""
    return sorted(int(axis) + rank if int(axis) < 0 else int(axis) for axis in axes)


def resolve_target(dims: list, source: tuple) -> list[int]:
    """The batch-less target of a reshape whose first item is the batch (None, -1 or copied)."""
    if not dims:
        raise Unsupported("reshapes to a scalar")
    first, rest = dims[0], list(dims[1:])
    total = math.prod(source)
    if any(dim is None for dim in rest):
        raise Unsupported("the target shape uses the batch size in a non-batch axis")
    if first is not None and first != -1:
        raise Unsupported(f"the target shape {dims} fixes the batch size")
    if first == -1 and -1 in rest:
        raise Unsupported(f"the target shape {dims} has two -1 entries")
    if -1 in rest:
        known = math.prod(dim for dim in rest if dim != -1)
        if known == 0 or total % known:
            raise Unsupported(f"cannot reshape {source} to {dims}")
        rest = [total // known if dim == -1 else dim for dim in rest]
    if math.prod(rest) != total:
        raise Unsupported(f"cannot reshape {source} to {dims} (it would change the batch size)")
    return [int(dim) for dim in rest]
