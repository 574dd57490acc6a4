"""ONNX models -> projects.

The file is parsed with ``onnx.load`` (no code runs), checked with
``onnx.checker``, and its operators are walked in graph order. Each operator
that computes layers is looked up in ``LOWERINGS.onnx_ops``: the families of
:mod:`codegen.layers` map them (Conv, Gemm, the activations, the poolings,
the merges, ...), next to the emission they invert; see
:mod:`codegen.layers.onnx_source` for what a handler may ask of this walker.
Shape arithmetic (Shape, Gather, Unsqueeze, Concat of shapes, Constant) is
evaluated here while importing, as exporters emit it for ``x.view(x.size(0), -1)``.

Images are channels-first in ONNX and channels-last in the project: the
Input ``(N, C, H, W)`` becomes ``(H, W, C)``, and weights are converted to
Keras layout (Dense rows after a channels-first flatten are reordered).
"""

from __future__ import annotations

import ast
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codegen.layers import LOWERINGS
from codegen.layers.base import CF, SAME, Held, Tensor
from codegen.layers.folded import BatchTimes, Folded, batch_times, symbolic, through_view, view_axes
from studio.catalog.base import MAX_ELEMENTS
from studio.interop.builder import GraphBuilder, ImportedModel
from studio.interop.errors import ModelFileError, Unsupported
from studio.interop.frameworks import import_onnx
from studio.interop.source_walker import BROKEN, SourceWalker


@dataclass(frozen=True)
class ShapeValue:
    """A 1-D integer tensor computed from shapes; None marks the (unknown) batch size, and a
    :class:`BatchTimes` a multiple of it."""

    dims: tuple[int | None, ...]

    @property
    def holds_batch(self) -> bool:
        return any(symbolic(dim) for dim in self.dims)


def import_onnx_file(path: str | Path, with_weights: bool = True, name: str | None = None) -> ImportedModel:
    path = Path(path)
    model = load_onnx_model(path)
    return import_onnx_model(model, source=path.name, with_weights=with_weights, name=name)


def load_onnx_model(path: Path):
    onnx = import_onnx()
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(without_large_weights(model))
    except Exception as error:  # protobuf and checker errors have many types
        raise ModelFileError(f"{path}: not a valid ONNX model ({_first_line(error)})") from None
    if not model.graph.node or not model.graph.output:
        raise ModelFileError(f"{path}: not a valid ONNX model (it has no operators or no outputs)")
    if not all(isinstance(text, str) for text in _names(model.graph)):
        # protobuf hands over text that is not valid UTF-8 as bytes
        raise ModelFileError(f"{path}: not a valid ONNX model (a name is not UTF-8 text)")
    return model


LARGE_WEIGHT = 1024  # elements: an initializer this large is a weight, never a shape or an index


def without_large_weights(model):
    """A copy of ``model`` whose large initializers are typed graph inputs instead.

    The checker and shape inference serialise the whole model and parse it back: with its
    weights, a ResNet-50 import peaked at 5x the weights' bytes. Neither needs a weight's
    values, only its type and shape (the small initializers, shapes and indices, stay).
    """
    if not model.graph.initializer:
        return model
    onnx = import_onnx()
    light = onnx.ModelProto()
    for field in ("ir_version", "producer_name", "producer_version", "domain", "model_version", "doc_string"):
        setattr(light, field, getattr(model, field))
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    source, graph = model.graph, light.graph
    graph.name = source.name
    for field in ("node", "input", "output", "value_info", "sparse_initializer"):
        getattr(graph, field).extend(getattr(source, field))
    inputs = {info.name for info in source.input}
    for initializer in source.initializer:
        if math.prod(initializer.dims) <= LARGE_WEIGHT:
            graph.initializer.append(initializer)
        elif initializer.name not in inputs:
            graph.input.append(
                onnx.helper.make_tensor_value_info(initializer.name, initializer.data_type, initializer.dims)
            )
    return light


def _names(graph):
    """Every name and operator type in the graph (not its subgraphs)."""
    yield graph.name
    for node in graph.node:
        yield from (node.name, node.op_type, node.domain, *node.input, *node.output)
        yield from (attribute.name for attribute in node.attribute)
    for info in (*graph.input, *graph.output, *graph.value_info, *graph.initializer):
        yield info.name


def import_onnx_model(model, source: str = "the model", with_weights: bool = True, name: str | None = None):
    converter = _Converter(model, GraphBuilder(source), with_weights)
    converter.run()
    builder = converter.builder
    outputs = [info.layer for info in converter.output_infos]
    project_name = name or model.graph.name or Path(source).stem
    project, weights = builder.build(
        project_name,
        outputs,
        description=f"Imported from the ONNX model {source}.",
        with_weights=with_weights,
    )
    return ImportedModel(
        project=project,
        weights=weights,
        source_format="onnx",
        source_parameters=converter.weight_count(),
        parameter_rule="keras",
        inputs=converter.input_infos,
        outputs=converter.output_infos,
        notes=builder.notes,
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:300]


# Operators that a module's forward calls on tensors (x + y, torch.flatten...): the
# exporter names them after the module that calls them, so the operator is kept in the
# layer name ("layer1.0.add"), where a module's own operator is not ("layer1.0.conv1").
FUNCTIONAL_OPS = frozenset(
    {"Add", "Sub", "Mul", "Div", "Max", "Sum", "Mean", "Concat", "Flatten", "Reshape", "Transpose", "Squeeze"}
    | {"Unsqueeze", "Pad", "ReduceMean", "ReduceMax", "Gather"}
)


def layer_name(node, index: int) -> str:
    """``/layer1/layer1.0/conv1/Conv`` -> ``layer1.0.conv1``: the exporter's module path, readable."""
    scoped = _torch_export_name(node)
    if scoped:
        return scoped
    parts = [part for part in (node.name or "").split("/") if part]
    op = node.op_type
    if parts and (parts[-1] == op or parts[-1].startswith(op + "_")):
        if len(parts) > 1 and op not in FUNCTIONAL_OPS:
            parts = parts[:-1]
        else:
            parts[-1] = parts[-1].lower()
    following = [*parts[1:], ""] if parts else []  # an unnamed node has no parts
    kept = [part for part, after in zip(parts, following, strict=True) if not after.startswith(part + ".")]
    return ".".join(kept) or f"{op.lower()}_{index}"


NAME_SCOPES = "pkg.torch.onnx.name_scopes"


def _torch_export_name(node) -> str | None:
    """The layer name that torch's dynamo exporter records in a node's metadata: its scopes are the
    module path, then the operator (``['', 'conv2d', 'convolution']`` -> ``conv2d``; a function
    called in forward, ``['', 'add_3']``, keeps its own name)."""
    for prop in node.metadata_props:
        if prop.key != NAME_SCOPES or len(prop.value) > 10_000:
            continue
        try:
            scopes = ast.literal_eval(prop.value)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
        if not isinstance(scopes, list) or not all(isinstance(scope, str) for scope in scopes):
            return None
        scopes = [scope for scope in scopes if scope]
        if len(scopes) > 1 and node.op_type in FUNCTIONAL_OPS:
            return f"{scopes[-2]}.{scopes[-1]}"
        return scopes[-2] if len(scopes) > 1 else (scopes[0] if scopes else None)
    return None


class _Converter(SourceWalker):
    """Walks an ONNX graph; the families' ONNX_OPS convert its operators (see codegen.layers.onnx_source)."""

    unreadable = "its attributes or inputs could not be read"

    def __init__(self, model, builder: GraphBuilder, with_weights: bool) -> None:
        super().__init__(builder)
        onnx = import_onnx()
        self.onnx = onnx
        self.model = model
        self.with_weights = with_weights
        self.opset = next(
            (entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), 13
        )
        # self.values: tensor name -> Tensor, np.ndarray (constant), ShapeValue or BROKEN
        self._infer_shapes()  # self.shapes: tensor name -> inferred shape, None for an unknown size
        self.consumers: dict[str, list] = {}
        self.constant_nodes: dict[str, Any] = {}  # output -> its Constant node
        for node in model.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
            if node.op_type == "Constant" and node.output:
                self.constant_nodes[node.output[0]] = node
        self.graph_outputs = {output.name for output in model.graph.output}
        self.skip: set[int] = set()
        self.used_weights: dict[str, int] = {}
        # The batch size the file fixes in its inputs (exported without a dynamic batch axis), if any.
        self.batch_size: int | None = None
        for initializer in model.graph.initializer:
            try:
                self.values[initializer.name] = onnx.numpy_helper.to_array(initializer)
            except Exception as error:  # data that does not fit its dims or type; many error types
                raise ModelFileError(
                    f"{builder.source}: not a valid ONNX model (the initializer {initializer.name!r} "
                    f"cannot be read: {_first_line(error)})"
                ) from None

    def _infer_shapes(self) -> None:
        try:
            inferred = self.onnx.shape_inference.infer_shapes(without_large_weights(self.model))
        except Exception:  # inference is a help, not a requirement
            inferred = self.model
        graph = inferred.graph
        for info in [*graph.input, *graph.value_info, *graph.output]:
            tensor_type = info.type.tensor_type
            if tensor_type.HasField("shape"):
                self.shapes[info.name] = tuple(
                    dim.dim_value if dim.HasField("dim_value") else None for dim in tensor_type.shape.dim
                )

    # ----- walking ------------------------------------------------------------------

    def run(self) -> None:
        for graph_input in self.model.graph.input:
            if graph_input.name not in self.values:
                self._input(graph_input)
        for index, node in enumerate(self.model.graph.node):
            if index in self.skip:
                continue
            self._node(node, index)
        for output in self.model.graph.output:
            self.add_output(output.name, output.name)
        self.builder.check()

    def _node(self, node, index: int) -> None:
        name = layer_name(node, index)
        results = self.convert_node(node, name, lambda: self._dispatch(node, name, index))
        if results is BROKEN:
            self._mark_broken(node)
            return
        if not isinstance(results, (list, tuple)):
            results = [results]
        for output, value in zip(node.output, results, strict=False):
            self.values[output] = value

    def source_kind(self, node) -> str:
        return node.op_type

    def kind_problem(self, node) -> str | None:
        if node.op_type in HANDLERS or node.op_type in FOLDABLE:
            return None
        return "this ONNX operator has no catalog equivalent"

    def _dispatch(self, node, name: str, index: int):
        inputs = [self.value(item) if item else None for item in node.input]  # Broken: skipped
        if (
            all(value is None or not isinstance(value, (Tensor, Held)) for value in inputs)
            and node.op_type in FOLDABLE
        ):
            return FOLDABLE[node.op_type](self, node, inputs)
        handler = HANDLERS.get(node.op_type)
        if handler is None:
            raise Unsupported("this ONNX operator has no catalog equivalent")
        count = view_axes(handler, self, node, inputs) if any(isinstance(v, Folded) for v in inputs) else None
        if count is None:
            return handler(self, node, inputs, name, index)
        # An operation on the last axes of a tensor whose batch is folded: run on a view of it.
        result, folded = through_view(
            self.graph,
            inputs,
            count,
            lambda views: handler(self, node, views, name, index),
            name,
            node.op_type,
            getattr(handler, "view_channels", False),
        )
        for key, value in self.values.items():  # nodes the handler fused into it (a bias Add)
            if value is result:
                self.values[key] = folded
        return folded

    def _mark_broken(self, node) -> None:
        for output in node.output:
            self.values[output] = BROKEN

    def _input(self, graph_input) -> None:
        onnx = self.onnx
        name = graph_input.name
        tensor_type = graph_input.type.tensor_type
        dims = [dim.dim_value if dim.HasField("dim_value") else None for dim in tensor_type.shape.dim]
        if len(dims) < 2 or any(dim is None or dim <= 0 for dim in dims[1:]):
            self.builder.unsupported(
                name,
                "input",
                f"shape {dims} has an unknown size; the catalog needs fixed sizes besides the batch",
            )
            self.values[name] = BROKEN
            return
        try:
            elem = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))
        except (KeyError, TypeError, ValueError):  # an undefined or unknown element type
            elem = None
        if elem is None or elem.kind in "bcOSU":
            found = tensor_type.elem_type if elem is None else elem
            self.builder.unsupported(
                name, "input", f"element type {found}; the catalog takes float or integer inputs"
            )
            self.values[name] = BROKEN
            return
        dtype = "int32" if np.issubdtype(elem, np.integer) else "float32"
        if dims[0] is not None and dims[0] > 0:
            self.batch_size = dims[0]
        rest = dims[1:]
        form = self._input_form(name, len(dims))
        self.add_input(name, name, [*rest[1:], rest[0]] if form == CF else rest, dtype, form)

    def _input_form(self, name: str, rank: int) -> str:
        consumers = self.consumers.get(name, [])
        if rank == 4:
            transposes = [
                node
                for node in consumers
                if node.op_type == "Transpose" and list(self.attrs(node).get("perm", [])) == [0, 3, 1, 2]
            ]
            return SAME if consumers and len(transposes) == len(consumers) else CF
        if rank == 3 and any(
            node.op_type in ("Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool")
            for node in consumers
        ):
            return CF
        return SAME

    # ----- helpers --------------------------------------------------------------------

    def attrs(self, node) -> dict[str, Any]:
        result = {}
        for attribute in node.attribute:
            value = self.onnx.helper.get_attribute_value(attribute)
            result[attribute.name] = value.decode() if isinstance(value, bytes) else value
        return result

    def weight(self, node, inputs: list, index: int, what: str) -> np.ndarray | None:
        """A constant input (a weight), counted as a parameter of the source."""
        if index >= len(inputs) or inputs[index] is None:
            return None
        value = inputs[index]
        if not isinstance(value, np.ndarray):
            raise Unsupported(f"its {what} is computed, not a constant; the catalog needs constant weights")
        self.used_weights[node.input[index]] = int(value.size)
        return value.astype(np.float32)

    def constant(self, inputs: list, index: int, what: str) -> np.ndarray | None:
        if index >= len(inputs) or inputs[index] is None:
            return None
        value = inputs[index]
        if isinstance(value, ShapeValue):
            if value.holds_batch:
                raise Unsupported(f"its {what} depends on the batch size")
            return np.array(value.dims, dtype=np.int64)
        if not isinstance(value, np.ndarray):
            raise Unsupported(f"its {what} is computed from data; the catalog needs a constant")
        return value

    def dims(self, inputs: list, index: int, what: str) -> list | None:
        """A constant or shape-derived 1-D input as a list; None stands for the batch size."""
        value = inputs[index] if index < len(inputs) else None
        if isinstance(value, ShapeValue):
            return list(value.dims)
        constant = self.constant(inputs, index, what)
        return None if constant is None else constant.tolist()

    def data(self, inputs: list, index: int = 0) -> Tensor:
        value = inputs[index]
        if isinstance(value, Held):
            raise Unsupported(f"input {index + 1} is {value!r}")
        if not isinstance(value, Tensor):
            raise Unsupported(f"input {index + 1} is a constant where the catalog needs a computed tensor")
        return value

    def constant_of(self, tensor: str) -> np.ndarray | None:
        """The value of a constant tensor: an initializer, a value folded so far, or a Constant
        node's, also one later in the graph (patterns look ahead); None for a computed tensor."""
        value = self.values.get(tensor)
        if isinstance(value, np.ndarray):
            return value
        node = self.constant_nodes.get(tensor)
        if node is None:
            return None
        try:
            return _fold_constant_node(self, node, [])
        except Unsupported:
            return None

    def only_dense_after(self, output: str) -> bool:
        """True if every consumer of ``output`` is a Gemm or MatMul with constant weights."""
        if output in self.graph_outputs:
            return False
        consumers = self.consumers.get(output, [])
        return bool(consumers) and all(
            node.op_type in ("Gemm", "MatMul") and node.input[0] == output and node.input[1] in self.values
            for node in consumers
        )

    def bias_add(self, node, units: int) -> tuple[Any, np.ndarray] | None:
        """The Add of a constant bias to this MatMul's output, if it is its only consumer: (Add, bias)."""
        output = node.output[0]
        consumers = self.consumers.get(output, [])
        if len(consumers) != 1 or output in self.graph_outputs or consumers[0].op_type != "Add":
            return None
        add = consumers[0]
        other = 1 if add.input[0] == output else 0
        value = self.values.get(add.input[other])
        if not isinstance(value, np.ndarray) or value.size != units or value.shape[-1:] != (units,):
            return None
        bias_inputs = [self.values.get(item) for item in add.input]
        return add, self.weight(add, bias_inputs, other, "bias")

    def fuse(self, node, value) -> None:
        """``node`` (later in the graph) is computed by the layer giving ``value``: skip it."""
        self.skip.add(next(i for i, candidate in enumerate(self.model.graph.node) if candidate is node))
        self.values[node.output[0]] = value

    def weight_count(self) -> int:
        return int(sum(self.used_weights.values()))

    def window(self, node, tensor: Tensor, rank: int, kernel: Sequence[int] | None = None) -> dict[str, Any]:
        """kernel, strides, dilations and per-axis (before, after) pads of a Conv or a pooling."""
        attrs = self.attrs(node)
        kernel = [int(k) for k in attrs.get("kernel_shape", kernel or [])]
        strides = list(attrs.get("strides", [1] * rank))
        dilations = list(attrs.get("dilations", [1] * rank))
        pads = list(attrs.get("pads", [0] * (2 * rank)))
        auto_pad = attrs.get("auto_pad", "NOTSET")
        spatial = self.graph.keras_shape(tensor)[:-1]
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            pairs = []
            for size, k, s, d in zip(spatial, kernel, strides, dilations, strict=True):
                out = math.ceil(size / s)
                total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
                small, large = total // 2, total - total // 2
                pairs.append((small, large) if auto_pad == "SAME_UPPER" else (large, small))
        elif auto_pad == "VALID":
            pairs = [(0, 0)] * rank
        else:
            pairs = list(zip(pads[:rank], pads[rank:], strict=True))
        return {"kernel": kernel, "strides": strides, "dilations": dilations, "pads": pairs, "attrs": attrs}


# ----- shape tracking -------------------------------------------------------------------
# The operators that compute layers are the families' ONNX_OPS (codegen.layers); the
# walker itself only evaluates shape arithmetic.


def _shape_of(self: _Converter, node, inputs, name, index):
    if isinstance(inputs[0], Folded):
        dims = tuple(inputs[0].source_dims())
    else:
        dims = (None, *self.graph.source_shape(self.data(inputs)))
    attrs = self.attrs(node)
    start, end = int(attrs.get("start", 0)), attrs.get("end")
    dims = dims[start : None if end is None else int(end)]
    return ShapeValue(tuple(dims))


# The walker's own operators, then every family's (see codegen.layers.onnx_source).
HANDLERS: dict[str, Callable] = {"Shape": _shape_of, **LOWERINGS.onnx_ops}


# ----- constant folding (shape arithmetic) ----------------------------------------------


def _fold_constant_node(self: _Converter, node, inputs):
    attrs = self.attrs(node)
    for key in ("value_int", "value_float"):
        if key in attrs:
            return np.array(attrs[key])
    for key in ("value_ints", "value_floats"):
        if key in attrs:
            return np.array(list(attrs[key]))
    if "value" in attrs:
        return self.onnx.numpy_helper.to_array(attrs["value"])
    raise Unsupported("a Constant of a kind the importer does not read (sparse or string)")


def _as_list(value) -> list:
    if isinstance(value, ShapeValue):
        return list(value.dims)
    return np.asarray(value).reshape(-1).tolist()


def _fold_gather(self: _Converter, node, inputs):
    data, indices = inputs
    if isinstance(data, ShapeValue):
        picked = np.asarray(indices).reshape(-1).tolist()
        dims = [data.dims[int(i)] for i in picked]
        return ShapeValue(tuple(dims)) if np.asarray(indices).ndim else _scalar_shape(dims[0])
    return np.take(data, np.asarray(indices), axis=int(self.attrs(node).get("axis", 0)))


def _scalar_shape(dim):
    return ShapeValue((dim,)) if symbolic(dim) else np.array(dim, dtype=np.int64)


def _fold_unsqueeze(self: _Converter, node, inputs):
    value = inputs[0]
    if isinstance(value, ShapeValue):
        return value
    axes = self.attrs(node).get("axes")
    if axes is None:
        axes = np.asarray(inputs[1]).reshape(-1).tolist()
    result = np.asarray(value)
    for axis in sorted(int(a) for a in axes):
        result = np.expand_dims(result, axis)
    return result


def _fold_concat(self: _Converter, node, inputs):
    if any(isinstance(value, ShapeValue) for value in inputs):
        dims: list = []
        for value in inputs:
            dims += _as_list(value)
        return ShapeValue(tuple(dims))
    return np.concatenate([np.asarray(v) for v in inputs], axis=int(self.attrs(node).get("axis", 0)))


def _fold_cast(self: _Converter, node, inputs):
    value = inputs[0]
    if isinstance(value, ShapeValue):
        return value
    target = self.onnx.helper.tensor_dtype_to_np_dtype(int(self.attrs(node)["to"]))
    return np.asarray(value).astype(target)


def _fold_identity(self: _Converter, node, inputs):
    return inputs[0]


def _check_constant_size(shape) -> None:
    """A constant the importer would compute must be a valid shape of at most MAX_ELEMENTS values."""
    if any(dim < 0 for dim in shape):
        raise Unsupported(f"a constant of negative shape {list(shape)}")
    if math.prod(shape) > MAX_ELEMENTS:
        raise Unsupported(
            f"a constant of shape {list(shape)} ({math.prod(shape):,} values) is larger than the "
            f"{MAX_ELEMENTS:,} values a tensor may hold"
        )


def _fold_constant_of_shape(self: _Converter, node, inputs):
    dims = _as_list(inputs[0])
    if any(symbolic(dim) for dim in dims):
        raise Unsupported("a constant whose shape depends on the batch size (such as an RNN's initial state)")
    shape = [int(dim) for dim in dims]
    _check_constant_size(shape)  # the file declares the shape: check it before allocating
    value = self.attrs(node).get("value")
    fill = (
        self.onnx.numpy_helper.to_array(value).reshape(-1) if value is not None else np.zeros(1, np.float32)
    )
    return np.full(shape, fill[0], dtype=fill.dtype)


def _fold_reshape(self: _Converter, node, inputs):
    if _is_one_dim(inputs[0]):  # the batch size as a scalar or a 1-vector (torch.export's sym_size)
        return inputs[0]
    if isinstance(inputs[0], ShapeValue):  # a shape kept 1-D (expand's sizes flattened with [-1])
        if [int(dim) for dim in _as_list(inputs[1])] not in ([-1], [len(inputs[0].dims)]):
            raise Unsupported("reshapes a shape that holds the batch size to more than one axis")
        return inputs[0]
    data = np.asarray(inputs[0])
    dims = [int(dim) for dim in _as_list(inputs[1])]
    if not int(self.attrs(node).get("allowzero", 0)):
        dims = [data.shape[i] if dim == 0 else dim for i, dim in enumerate(dims)]
    return data.reshape(dims)


def _fold_slice(self: _Converter, node, inputs):
    data = inputs[0] if isinstance(inputs[0], ShapeValue) else np.asarray(inputs[0])
    if self.opset >= 10:
        starts, ends = _as_list(inputs[1]), _as_list(inputs[2])
        axes = _as_list(inputs[3]) if len(inputs) > 3 and inputs[3] is not None else list(range(len(starts)))
        steps = _as_list(inputs[4]) if len(inputs) > 4 and inputs[4] is not None else [1] * len(starts)
    else:
        attrs = self.attrs(node)
        starts, ends = list(attrs["starts"]), list(attrs["ends"])
        axes, steps = list(attrs.get("axes", range(len(starts)))), [1] * len(starts)
    if isinstance(inputs[0], ShapeValue):
        (start,), (end,), (step,) = starts, ends, steps
        return ShapeValue(inputs[0].dims[int(start) : int(end) : int(step)])
    index = [slice(None)] * data.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        index[int(axis)] = slice(int(start), int(end), int(step))
    return data[tuple(index)]


def _fold_flatten(self: _Converter, node, inputs):
    data = np.asarray(_known(inputs[0]))
    axis = int(self.attrs(node).get("axis", 1)) % (data.ndim + 1)
    return data.reshape(math.prod(data.shape[:axis]), -1)


def _fold_transpose(self: _Converter, node, inputs):
    data = np.asarray(inputs[0])
    perm = self.attrs(node).get("perm")
    return data.transpose(list(perm) if perm is not None else None)


def _is_one_dim(value) -> bool:
    return isinstance(value, ShapeValue) and len(value.dims) == 1


def _fold_squeeze(self: _Converter, node, inputs):
    if _is_one_dim(inputs[0]):
        return inputs[0]
    data = np.asarray(inputs[0])
    axes = self.attrs(node).get("axes")
    if axes is None and len(inputs) > 1 and inputs[1] is not None:
        axes = _as_list(inputs[1])
    return np.squeeze(data, axis=None if axes is None else tuple(int(a) for a in axes))


def _fold_shape(self: _Converter, node, inputs):
    if isinstance(inputs[0], ShapeValue):
        return np.array([len(inputs[0].dims)], dtype=np.int64)
    return np.array(np.asarray(inputs[0]).shape, dtype=np.int64)


# Element-wise operators on constants, evaluated as numpy does: a chunk's channels, the scale
# 1/sqrt(head_dim) that scaled_dot_product_attention computes from a shape, the sizes of an expand.
_NUMPY_UNARY = {
    "Sqrt": np.sqrt,
    "Reciprocal": np.reciprocal,
    "Neg": np.negative,
    "Abs": np.abs,
    "Floor": np.floor,
    "Ceil": np.ceil,
    "Not": np.logical_not,
    # a sinusoidal position table computed from a Range
    "Sin": np.sin,
    "Cos": np.cos,
    "Exp": np.exp,
    "Log": np.log,
    "Tanh": np.tanh,
    "Sigmoid": lambda value: 1 / (1 + np.exp(-value)),  # a gate's parameter (ConViT)
    "Relu": lambda value: np.maximum(value, 0),
}
_NUMPY_BINARY = {  # the variadic ones (Max, Min) taken two at a time
    "Add": np.add,
    "Sub": np.subtract,
    "Mul": np.multiply,
    "Div": np.divide,
    "Pow": np.power,
    "Less": np.less,
    "Greater": np.greater,
    "LessOrEqual": np.less_equal,
    "GreaterOrEqual": np.greater_equal,
    "And": np.logical_and,
    "Or": np.logical_or,
    "Max": np.maximum,
    "Min": np.minimum,
}


def _known(value) -> np.ndarray:
    """A constant, or a shape whose sizes are all known, as an array; the batch size is refused."""
    if isinstance(value, ShapeValue):
        if value.holds_batch:
            raise Unsupported("arithmetic on the batch size other than multiplying or dividing it by a size")
        return np.array(value.dims, dtype=np.int64)
    return np.asarray(value)


def _fold_numpy(self: _Converter, node, inputs):
    op = node.op_type
    if op in ("Mul", "Div") and any(_holds_batch(value) for value in inputs):
        return _fold_batch_multiple(op, inputs)
    arrays = [_known(value) for value in inputs]
    if op in _NUMPY_UNARY:
        result = np.asarray(_NUMPY_UNARY[op](arrays[0]))
    else:
        try:
            _check_constant_size(np.broadcast_shapes(*(array.shape for array in arrays)))
        except ValueError:
            raise Unsupported(f"operands of shapes {[a.shape for a in arrays]} do not broadcast") from None
        if op == "Mod":
            function = np.fmod if int(self.attrs(node).get("fmod", 0)) else np.mod
        else:
            function = _NUMPY_BINARY[op]
        result = np.asarray(functools.reduce(function, arrays))
    # Integer operands give integers, as ONNX computes them (a size halved stays a size).
    return result.astype(arrays[0].dtype) if op in ("Div", "Pow") else result


def _holds_batch(value) -> bool:
    return isinstance(value, ShapeValue) and value.holds_batch


def _fold_batch_multiple(op: str, inputs):
    """Sizes that hold the dynamic batch size, times or divided by constants: the ``N * heads``
    that folds the heads into the batch stays symbolic."""
    shape, other = (inputs[0], inputs[-1]) if _holds_batch(inputs[0]) else (inputs[-1], inputs[0])
    if len(inputs) != 2 or isinstance(other, ShapeValue):
        raise Unsupported("arithmetic on the batch size other than multiplying or dividing it by a size")
    if op == "Div" and shape is inputs[1]:
        raise Unsupported("divides by the batch size")
    values = np.broadcast_to(np.asarray(other).reshape(-1), (len(shape.dims),)).tolist()
    dims = []
    for dim, value in zip(shape.dims, values, strict=True):
        if not np.isfinite(value) or value != int(value) or value < 1:
            raise Unsupported(f"multiplies or divides sizes by {value}")
        value = int(value)
        if not symbolic(dim):
            dims.append(dim * value if op == "Mul" else dim // value)
            continue
        factor = 1 if dim is None else dim.factor
        if op == "Div" and factor % value:
            raise Unsupported(f"divides the batch size by {value}")
        dims.append(batch_times(factor * value if op == "Mul" else factor // value))
    return ShapeValue(tuple(dims))


def _fold_matmul(self: _Converter, node, inputs):
    """MatMul of constants (a projection of a constant table: ConViT's relative positions)."""
    left, right = (np.asarray(_known(value)) for value in inputs)
    if left.ndim < 2 or right.ndim < 2:
        raise Unsupported(f"a MatMul of constants of shapes {left.shape} and {right.shape}")
    try:
        shape = (*np.broadcast_shapes(left.shape[:-2], right.shape[:-2]), left.shape[-2], right.shape[-1])
    except ValueError:
        raise Unsupported(f"a MatMul of constants of shapes {left.shape} and {right.shape}") from None
    _check_constant_size(shape)
    try:
        return np.matmul(left, right)
    except ValueError:
        raise Unsupported(f"a MatMul of constants of shapes {left.shape} and {right.shape}") from None


def _fold_equal(self: _Converter, node, inputs):
    """Equal of constants. The batch size is never below 1, so it equals no such constant (the
    ``expand(n, -1, -1)`` sizes compared with -1 on their way to an Expand)."""
    left, right = inputs
    if isinstance(left, ShapeValue) != isinstance(right, ShapeValue):
        shape, other = (left, right) if isinstance(left, ShapeValue) else (right, left)
        other = np.broadcast_to(np.asarray(other).reshape(-1), (len(shape.dims),))
        result = []
        for dim, value in zip(shape.dims, other.tolist(), strict=True):
            factor = 1 if dim is None else dim.factor if isinstance(dim, BatchTimes) else None
            if factor is not None and value >= factor and value % factor == 0:
                raise Unsupported("compares the batch size with a size")
            result.append(factor is None and dim == value)
        return np.array(result)
    return np.equal(_known(left), _known(right))


def _fold_where(self: _Converter, node, inputs):
    """Where of constants; sizes picked from a shape that holds the batch size stay a shape."""
    condition = np.asarray(_known(inputs[0]), dtype=bool)
    if not any(isinstance(value, ShapeValue) for value in inputs[1:]):
        return np.where(condition, *(np.asarray(value) for value in inputs[1:]))
    if condition.ndim != 1:
        raise Unsupported("picks from a shape with a condition that is not 1-D")
    length = condition.shape[0]
    chosen, other = (
        _as_list(value) if isinstance(value, ShapeValue) else np.broadcast_to(value, (length,)).tolist()
        for value in inputs[1:]
    )
    return ShapeValue(tuple(a if pick else b for pick, a, b in zip(condition, chosen, other, strict=True)))


def _fold_range(self: _Converter, node, inputs):
    start, limit, delta = (_known(value).reshape(()) for value in inputs)
    if delta == 0:
        raise Unsupported("a Range with a step of 0")
    _check_constant_size((max(0, math.ceil((limit - start) / delta)),))
    return np.arange(start, limit, delta, dtype=np.asarray(start).dtype)


def _fold_scatter_nd(self: _Converter, node, inputs):
    """ScatterND of constants (Swin's shifted-window mask, written region by region)."""
    data, indices, updates = (np.asarray(_known(value)) for value in inputs)
    reduction = self.attrs(node).get("reduction", "none")
    combine = {"none": None, "add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}
    if reduction not in combine or indices.ndim < 1 or indices.shape[-1] > data.ndim:
        raise Unsupported(f"a ScatterND with reduction={reduction!r} and indices of shape {indices.shape}")
    rows = indices.reshape(-1, indices.shape[-1])
    try:
        values = updates.reshape(len(rows), *data.shape[indices.shape[-1] :])
        result = data.copy()
        for row, value in zip(rows.tolist(), values, strict=True):
            at = tuple(row)
            result[at] = value if combine[reduction] is None else combine[reduction](result[at], value)
    except (IndexError, ValueError):
        raise Unsupported(
            f"a ScatterND of {updates.shape} at indices {indices.shape} into {data.shape}"
        ) from None
    return result


FOLDABLE: dict[str, Callable] = {
    "Constant": _fold_constant_node,
    "Gather": _fold_gather,
    "Unsqueeze": _fold_unsqueeze,
    "Concat": _fold_concat,
    "Cast": _fold_cast,
    "Identity": _fold_identity,
    "ConstantOfShape": _fold_constant_of_shape,
    "Reshape": _fold_reshape,
    "Slice": _fold_slice,
    "Transpose": _fold_transpose,
    "Flatten": _fold_flatten,
    "MatMul": _fold_matmul,
    "Squeeze": _fold_squeeze,
    "Shape": _fold_shape,
    **{op: _fold_numpy for op in (*_NUMPY_UNARY, *_NUMPY_BINARY, "Mod")},
    "Equal": _fold_equal,
    "Where": _fold_where,
    "Range": _fold_range,
    "ScatterND": _fold_scatter_nd,
}
