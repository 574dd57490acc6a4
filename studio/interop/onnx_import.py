"""ONNX models -> projects.

The file is parsed with ``onnx.load`` (no code runs), checked with
``onnx.checker``, and its operators are mapped in graph order: Conv (with
its padding made Keras-exact, see :mod:`studio.interop.channels_first`),
ConvTranspose, Gemm and MatMul(+Add) as Dense, BatchNormalization, the
activations, the poolings, Flatten/Reshape, Add/Sub/Mul/Max/Sum/Mean,
Concat, Transpose, Pad, Gather on a constant table (Embedding), and scalar
Mul/Add/Sub/Div as Rescaling. Dropout and Identity pass their input on.
Shape arithmetic (Shape, Gather, Unsqueeze, Concat of shapes, Constant) is
evaluated while importing, as exporters emit it for ``x.view(x.size(0), -1)``.

Images are channels-first in ONNX and channels-last in the project: the
Input ``(N, C, H, W)`` becomes ``(H, W, C)``, and weights are converted to
Keras layout (Dense rows after a channels-first flatten are reordered).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codegen.layers.base import CF, FLAT_CF, SAME, SQUEEZED, AlreadyReported, Tensor
from codegen.layers.convolution import conv_layer, conv_transpose_layer
from codegen.layers.core import check_softmax_axis, dense_layer
from codegen.layers.normalization import batch_norm_layer
from codegen.layers.pooling import global_pooling_layer, pooling_layer
from codegen.layers.reshaping import crop_layer
from studio.interop.builder import GraphBuilder, ImportedModel, TensorInfo
from studio.interop.channels_first import ChannelsFirstGraph
from studio.interop.errors import ModelFileError, Unsupported
from studio.interop.frameworks import import_onnx


@dataclass(frozen=True)
class ShapeValue:
    """A 1-D integer tensor computed from shapes; None marks the (unknown) batch size."""

    dims: tuple[int | None, ...]


_BROKEN = object()  # the value of a tensor whose producer was unsupported

# Catalog activations for element-wise ONNX operators; True: the output is never negative.
SIMPLE_ACTIVATIONS = {
    "Relu": ("relu", True),
    "Sigmoid": ("sigmoid", True),
    "Tanh": ("tanh", False),
    "Softplus": ("softplus", True),
}
# ONNX element-wise merges of two same-shaped tensors -> catalog kinds.
MERGES = {
    "Add": "Add",
    "Sub": "Subtract",
    "Mul": "Multiply",
    "Max": "Maximum",
    "Sum": "Add",
    "Mean": "Average",
}


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
        onnx.checker.check_model(model)
    except Exception as error:  # protobuf and checker errors have many types
        raise ModelFileError(f"{path}: not a valid ONNX model ({_first_line(error)})") from None
    if not model.graph.node or not model.graph.output:
        raise ModelFileError(f"{path}: not a valid ONNX model (it has no operators or no outputs)")
    if not all(isinstance(text, str) for text in _names(model.graph)):
        # protobuf hands over text that is not valid UTF-8 as bytes
        raise ModelFileError(f"{path}: not a valid ONNX model (a name is not UTF-8 text)")
    return model


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
    | {"Unsqueeze", "Pad", "ReduceMean", "Gather"}
)


def layer_name(node, index: int) -> str:
    """``/layer1/layer1.0/conv1/Conv`` -> ``layer1.0.conv1``: the exporter's module path, readable."""
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


class _Converter:
    def __init__(self, model, builder: GraphBuilder, with_weights: bool) -> None:
        onnx = import_onnx()
        self.onnx = onnx
        self.model = model
        self.builder = builder
        self.graph = ChannelsFirstGraph(builder)
        self.with_weights = with_weights
        self.opset = next(
            (entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), 13
        )
        self.values: dict[str, Any] = {}  # name -> Tensor, np.ndarray (constant), ShapeValue or _BROKEN
        self.shapes = self._inferred_shapes()
        self.consumers: dict[str, list] = {}
        for node in model.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.graph_outputs = {output.name for output in model.graph.output}
        self.skip: set[int] = set()
        self.used_weights: dict[str, int] = {}
        self.input_infos: list[TensorInfo] = []
        self.output_infos: list[TensorInfo] = []
        for initializer in model.graph.initializer:
            try:
                self.values[initializer.name] = onnx.numpy_helper.to_array(initializer)
            except Exception as error:  # data that does not fit its dims or type; many error types
                raise ModelFileError(
                    f"{builder.source}: not a valid ONNX model (the initializer {initializer.name!r} "
                    f"cannot be read: {_first_line(error)})"
                ) from None

    def _inferred_shapes(self) -> dict[str, tuple]:
        try:
            inferred = self.onnx.shape_inference.infer_shapes(self.model)
        except Exception:  # inference is a help, not a requirement
            inferred = self.model
        shapes = {}
        graph = inferred.graph
        for info in [*graph.input, *graph.value_info, *graph.output]:
            tensor_type = info.type.tensor_type
            if tensor_type.HasField("shape"):
                shapes[info.name] = tuple(
                    dim.dim_value if dim.HasField("dim_value") else None for dim in tensor_type.shape.dim
                )
        return shapes

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
            self._output(output.name)
        self.builder.check()

    def _node(self, node, index: int) -> None:
        name = layer_name(node, index)
        inputs = [self.values.get(item, _BROKEN) if item else None for item in node.input]
        if any(value is _BROKEN for value in inputs):
            self._mark_broken(node)
            return
        handler = HANDLERS.get(node.op_type)
        try:
            if (
                all(value is None or not isinstance(value, Tensor) for value in inputs)
                and node.op_type in FOLDABLE
            ):
                results = FOLDABLE[node.op_type](self, node, inputs)
            elif handler is None:
                raise Unsupported("this ONNX operator has no catalog equivalent")
            else:
                results = handler(self, node, inputs, name, index)
        except AlreadyReported:
            self._mark_broken(node)
            return
        except Unsupported as error:
            self.builder.unsupported(name, node.op_type, str(error))
            self._mark_broken(node)
            return
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as error:
            # A malformed or unexpected operator: reported like an unsupported one, never a traceback.
            reason = f"its attributes or inputs could not be read ({type(error).__name__}: {error})"
            self.builder.unsupported(name, node.op_type, reason)
            self._mark_broken(node)
            return
        if not isinstance(results, (list, tuple)):
            results = [results]
        for output, value in zip(node.output, results, strict=False):
            self.values[output] = value

    def _mark_broken(self, node) -> None:
        for output in node.output:
            self.values[output] = _BROKEN

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
            self.values[name] = _BROKEN
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
            self.values[name] = _BROKEN
            return
        dtype = "int32" if np.issubdtype(elem, np.integer) else "float32"
        rest = dims[1:]
        form = self._input_form(name, len(dims))
        shape = [*rest[1:], rest[0]] if form == CF else rest
        node = self.builder.add("Input", name, {"shape": shape, "dtype": dtype}, source_kind="input")
        if node is None:
            self.values[name] = _BROKEN
            return
        self.values[name] = Tensor(node, form)
        self.input_infos.append(TensorInfo(name, node, channels_first=form == CF))

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

    def _output(self, name: str) -> None:
        value = self.values.get(name, _BROKEN)
        if value is _BROKEN:
            return
        if not isinstance(value, Tensor):
            self.builder.unsupported(name, "output", "the output is a constant, not computed from the inputs")
            return
        try:
            if value.form == SQUEEZED and value.ones:
                value = self.graph.to_cf(value, name)
            elif value.form == FLAT_CF:
                value = self.graph.to_same(value, name)
        except AlreadyReported:
            return
        except Unsupported as error:
            self.builder.unsupported(name, "output", str(error))
            return
        self.output_infos.append(TensorInfo(name, value.layer, channels_first=value.form == CF))

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
            if any(dim is None for dim in value.dims):
                raise Unsupported(f"its {what} depends on the batch size")
            return np.array(value.dims, dtype=np.int64)
        if not isinstance(value, np.ndarray):
            raise Unsupported(f"its {what} is computed from data; the catalog needs a constant")
        return value

    def data(self, inputs: list, index: int = 0) -> Tensor:
        value = inputs[index]
        if not isinstance(value, Tensor):
            raise Unsupported(f"input {index + 1} is a constant where the catalog needs a computed tensor")
        return value

    def only_dense_after(self, output: str) -> bool:
        """True if every consumer of ``output`` is a Gemm or MatMul with constant weights."""
        if output in self.graph_outputs:
            return False
        consumers = self.consumers.get(output, [])
        return bool(consumers) and all(
            node.op_type in ("Gemm", "MatMul") and node.input[0] == output and node.input[1] in self.values
            for node in consumers
        )

    def _bias_add(self, node, units: int):
        """The Add that adds a constant bias to this MatMul's output, if it is its only consumer."""
        output = node.output[0]
        consumers = self.consumers.get(output, [])
        if len(consumers) != 1 or output in self.graph_outputs or consumers[0].op_type != "Add":
            return None
        add = consumers[0]
        other = 1 if add.input[0] == output else 0
        value = self.values.get(add.input[other])
        if not isinstance(value, np.ndarray) or value.size != units or value.shape[-1:] != (units,):
            return None
        add_index = next(i for i, candidate in enumerate(self.model.graph.node) if candidate is add)
        return add, add_index, other

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


# ----- operators ------------------------------------------------------------------------


def _pairs(values: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(value) for value in values)


def _conv(self: _Converter, node, inputs, name, index):
    x = self.data(inputs)
    weight = self.weight(node, inputs, 1, "weight")
    bias = self.weight(node, inputs, 2, "bias")
    rank = weight.ndim - 2
    if rank not in (1, 2):
        raise Unsupported(f"a {rank}-D convolution; the catalog has 1-D and 2-D convolutions")
    x = self.graph.to_cf(x, name)
    window = self.window(node, x, rank, kernel=weight.shape[2:])
    groups = int(window["attrs"].get("group", 1))
    return conv_layer(
        self.graph,
        x,
        name,
        node.op_type,
        weight,
        bias,
        window["strides"],
        window["dilations"],
        window["pads"],
        groups,
    )


def _conv_transpose(self: _Converter, node, inputs, name, index):
    x = self.data(inputs)
    weight = self.weight(node, inputs, 1, "weight")
    bias = self.weight(node, inputs, 2, "bias")
    attrs = self.attrs(node)
    if weight.ndim != 4:
        raise Unsupported("only 2-D transposed convolutions are in the catalog")
    if int(attrs.get("group", 1)) != 1:
        raise Unsupported(f"group={attrs['group']}: grouped convolutions have no catalog equivalent")
    if set(attrs.get("dilations", [1, 1])) != {1}:
        raise Unsupported(f"dilations={list(attrs['dilations'])}: the catalog's Conv2DTranspose has none")
    if "output_shape" in attrs or attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        raise Unsupported("output_shape or auto_pad SAME: the importer needs explicit pads")
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    return conv_transpose_layer(
        self.graph,
        x,
        name,
        node.op_type,
        weight,
        bias,
        list(attrs.get("strides", [1, 1])),
        list(zip(pads[:2], pads[2:], strict=True)),
        list(attrs.get("output_padding", [0, 0])),
    )


def _gemm(self: _Converter, node, inputs, name, index):
    x = self.data(inputs)
    matrix = self.weight(node, inputs, 1, "weight")
    bias = self.weight(node, inputs, 2, "bias")
    attrs = self.attrs(node)
    if attrs.get("transA", 0):
        raise Unsupported("transA=1 transposes the batch")
    kernel = (matrix.T if attrs.get("transB", 0) else matrix) * float(attrs.get("alpha", 1.0))
    if bias is not None:
        bias = np.broadcast_to(bias * float(attrs.get("beta", 1.0)), (kernel.shape[1],)).copy()
    return dense_layer(self.graph, x, name, node.op_type, kernel, bias)


def _matmul(self: _Converter, node, inputs, name, index):
    x = self.data(inputs)
    if isinstance(inputs[1], Tensor):
        raise Unsupported("multiplies two computed tensors; the catalog's Dense needs a constant weight")
    kernel = self.weight(node, inputs, 1, "weight")
    if kernel.ndim != 2:
        raise Unsupported(f"a weight of shape {kernel.shape}; Dense needs a matrix")
    bias = None
    bias_add = self._bias_add(node, kernel.shape[1])
    if bias_add is not None:
        add_node, add_index, bias_index = bias_add
        bias_inputs = [self.values.get(item) for item in add_node.input]
        bias = self.weight(add_node, bias_inputs, bias_index, "bias")
    result = dense_layer(self.graph, x, name, node.op_type, kernel, bias)
    if bias_add is not None:
        self.skip.add(bias_add[1])
        self.values[bias_add[0].output[0]] = result
    return result


def _batch_norm(self: _Converter, node, inputs, name, index):
    x = self.data(inputs)
    attrs = self.attrs(node)
    if attrs.get("training_mode", 0) or len([o for o in node.output if o]) > 1:
        raise Unsupported("training-mode batch normalization (it also outputs running statistics)")
    arrays = [
        self.weight(node, inputs, i, what)
        for i, what in ((1, "scale"), (2, "bias"), (3, "mean"), (4, "variance"))
    ]
    epsilon, momentum = float(attrs.get("epsilon", 1e-5)), float(attrs.get("momentum", 0.9))
    return batch_norm_layer(self.graph, x, name, node.op_type, *arrays, epsilon, momentum)


def _activation(self: _Converter, node, inputs, name, index):
    x = self.data(inputs)
    op = node.op_type
    attrs = self.attrs(node)
    params: dict[str, Any]
    nonneg = False
    if op in SIMPLE_ACTIVATIONS:
        activation, nonneg = SIMPLE_ACTIVATIONS[op]
        params = {"activation": activation}
    elif op == "LeakyRelu":
        params = {"activation": "leaky_relu", "negative_slope": float(attrs.get("alpha", 0.01))}
    elif op == "Elu":
        params = {"activation": "elu", "alpha": float(attrs.get("alpha", 1.0))}
    elif op == "Gelu":
        if attrs.get("approximate", "none") != "none":
            raise Unsupported("approximate='tanh': the catalog's gelu is the exact form")
        params = {"activation": "gelu"}
    elif op == "HardSigmoid":
        alpha, beta = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
        if not (math.isclose(alpha, 1 / 6, rel_tol=1e-6) and math.isclose(beta, 0.5)):
            raise Unsupported(f"alpha={alpha}, beta={beta}: the catalog's hard_sigmoid is relu6(x + 3) / 6")
        params, nonneg = {"activation": "hard_sigmoid"}, True
    elif op == "Clip":
        params, nonneg = _clip(self, node, inputs, attrs), True
    elif op == "Softmax":
        _softmax_axis(self, x, attrs)
        params, nonneg = {"activation": "softmax"}, True
    else:  # pragma: no cover - the table and this function list the same operators
        raise Unsupported("this activation has no catalog equivalent")
    return self.graph.add("Activation", name, [x], params, source_kind=op, nonneg=nonneg)


def _clip(self: _Converter, node, inputs, attrs) -> dict[str, Any]:
    if self.opset >= 11:
        low = self.constant(inputs, 1, "minimum")
        high = self.constant(inputs, 2, "maximum")
        low = None if low is None else float(low)
        high = None if high is None else float(high)
    else:
        low, high = attrs.get("min"), attrs.get("max")
    if low == 0.0 and high == 6.0:
        return {"activation": "relu6"}
    if low == 0.0 and (high is None or math.isinf(high)):
        return {"activation": "relu"}
    raise Unsupported(f"clips to [{low}, {high}]; the catalog has relu ([0, inf)) and relu6 ([0, 6])")


def _softmax_axis(self: _Converter, x: Tensor, attrs: dict) -> None:
    shape = self.graph.source_shape(x)
    rank = len(shape) + 1
    axis = int(attrs.get("axis", -1 if self.opset >= 13 else 1))
    axis = axis + rank if axis < 0 else axis
    if self.opset < 13 and 0 < axis < rank - 1 and math.prod(shape[axis - 1 :]) != shape[axis - 1]:
        # Before opset 13, softmax ran over every axis from `axis` on, flattened together.
        raise Unsupported(f"softmax over the flattened axes {axis} and after; the catalog's is over one axis")
    check_softmax_axis(self.graph, x, axis)


def _pooling(self: _Converter, node, inputs, name, index):
    x = self.graph.to_cf(self.data(inputs), name)
    if len([output for output in node.output if output]) > 1:
        raise Unsupported("returns the indices of the maxima too")
    rank = len(self.graph.keras_shape(x)) - 1
    window = self.window(node, x, rank)
    attrs = window["attrs"]
    if set(window["dilations"]) != {1}:
        raise Unsupported(f"dilations={window['dilations']}: the catalog's poolings have none")
    return pooling_layer(
        self.graph,
        x,
        name,
        node.op_type,
        node.op_type == "MaxPool",
        window["kernel"],
        window["strides"],
        window["pads"],
        count_include_pad=bool(attrs.get("count_include_pad", 0)),
        ceil_mode=bool(attrs.get("ceil_mode", 0)),
    )


def _global_pooling(self: _Converter, node, inputs, name, index):
    is_max = node.op_type == "GlobalMaxPool"
    return global_pooling_layer(self.graph, self.data(inputs), name, node.op_type, is_max, keep_dims=True)


def _reduce_mean(self: _Converter, node, inputs, name, index):
    x = self.data(inputs)
    attrs = self.attrs(node)
    axes = attrs.get("axes")
    if axes is None and len(inputs) > 1 and inputs[1] is not None:
        axes = self.constant(inputs, 1, "axes").tolist()
    rank = len(self.graph.source_shape(x)) + 1
    axes = sorted(int(a) + rank if int(a) < 0 else int(a) for a in (axes or []))
    if x.form != CF or axes != list(range(2, rank)):
        raise Unsupported(
            f"a mean over axes {axes}; the catalog has the mean over all spatial axes (global pooling)"
        )
    keep = bool(attrs.get("keepdims", 1))
    return global_pooling_layer(self.graph, x, name, node.op_type, False, keep_dims=keep)


def _flatten(self: _Converter, node, inputs, name, index):
    x = self.data(inputs)
    axis = int(self.attrs(node).get("axis", 1))
    rank = len(self.graph.source_shape(x)) + 1
    if (axis + rank if axis < 0 else axis) != 1:
        raise Unsupported(f"axis={axis}: the catalog flattens everything but the batch")
    return self.graph.flatten(x, name, node.op_type, self.only_dense_after(node.output[0]))


def _reshape(self: _Converter, node, inputs, name, index):
    x = self.data(inputs)
    source = self.graph.source_shape(x)
    value = inputs[1]
    dims = list(value.dims) if isinstance(value, ShapeValue) else self.constant(inputs, 1, "shape").tolist()
    allow_zero = int(self.attrs(node).get("allowzero", 0))
    full = (None, *source)
    resolved = []
    for position, dim in enumerate(dims):
        if dim == 0 and not allow_zero:
            dim = full[position] if position < len(full) else 0
        resolved.append(dim)
    target = _resolve_target(resolved, source)
    return self.graph.reshape(x, target, name, node.op_type, self.only_dense_after(node.output[0]))


def _resolve_target(dims: list, source: tuple) -> list[int]:
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


def _squeeze(self: _Converter, node, inputs, name, index):
    x = self.data(inputs)
    source = list(self.graph.source_shape(x))
    rank = len(source) + 1
    attrs = self.attrs(node)
    axes = attrs.get("axes")
    if axes is None and len(inputs) > 1 and inputs[1] is not None:
        axes = self.constant(inputs, 1, "axes").tolist()
    full: list[int | None] = [None, *source]
    if node.op_type == "Squeeze":
        axes = [
            a + rank if a < 0 else a
            for a in (axes if axes is not None else [i for i, d in enumerate(full) if d == 1])
        ]
        if 0 in axes:
            raise Unsupported("squeezes the batch axis")
        target = [dim for position, dim in enumerate(full) if position not in axes][1:]
    else:
        out_rank = rank + len(axes or [])
        axes = sorted(a + out_rank if a < 0 else a for a in (axes or []))
        if 0 in axes:
            raise Unsupported("adds an axis before the batch")
        target = list(full)
        for axis in axes:
            target.insert(axis, 1)
        target = target[1:]
    return self.graph.reshape(x, target, name, node.op_type, self.only_dense_after(node.output[0]))


def _merge(self: _Converter, node, inputs, name, index):
    op = node.op_type
    tensors = [value for value in inputs if isinstance(value, Tensor)]
    constants = [value for value in inputs if isinstance(value, np.ndarray)]
    if len(tensors) == len(inputs):
        if op not in MERGES:
            raise Unsupported("an element-wise operation the catalog has no merge for")
        if op in ("Sub",) and len(tensors) != 2:
            raise Unsupported("Sub takes two inputs")
        return self.graph.merge(MERGES[op], tensors, name, op)
    if len(tensors) == 1 and len(constants) == 1 and len(inputs) == 2 and constants[0].size == 1:
        return _rescaling(self, node, inputs, name, float(constants[0].reshape(())))
    shapes = [tuple(value.shape) for value in constants]
    raise Unsupported(
        f"combines a tensor with a constant of shape {shapes[0] if shapes else '?'} (broadcasting)"
    )


def _rescaling(self: _Converter, node, inputs, name: str, constant: float):
    op = node.op_type
    x = inputs[0] if isinstance(inputs[0], Tensor) else inputs[1]
    tensor_first = isinstance(inputs[0], Tensor)
    if op == "Mul":
        scale, offset = constant, 0.0
    elif op == "Add":
        scale, offset = 1.0, constant
    elif op == "Sub":
        scale, offset = (1.0, -constant) if tensor_first else (-1.0, constant)
    elif op == "Div" and tensor_first and constant != 0:
        scale, offset = 1.0 / constant, 0.0
    else:
        raise Unsupported(f"{op} with a constant has no catalog equivalent")
    nonneg = x.nonneg and scale >= 0 and offset >= 0
    return self.graph.add(
        "Rescaling", name, [x], {"scale": scale, "offset": offset}, source_kind=op, nonneg=nonneg
    )


def _concat(self: _Converter, node, inputs, name, index):
    if not all(isinstance(value, Tensor) for value in inputs):
        raise Unsupported("concatenates a constant with computed tensors")
    axis = int(self.attrs(node).get("axis", 1))
    return self.graph.concatenate(inputs, axis, name, node.op_type)


def _transpose(self: _Converter, node, inputs, name, index):
    x = self.data(inputs)
    rank = len(self.graph.source_shape(x)) + 1
    perm = list(self.attrs(node).get("perm", list(reversed(range(rank)))))
    return self.graph.transpose(x, perm, name, node.op_type)


def _identity(self: _Converter, node, inputs, name, index):
    return inputs[0]


def _pad(self: _Converter, node, inputs, name, index):
    x = self.data(inputs)
    attrs = self.attrs(node)
    if attrs.get("mode", "constant") != "constant":
        raise Unsupported(f"mode={attrs['mode']!r}; the catalog pads with zeros only")
    if self.opset >= 11:
        pads = self.constant(inputs, 1, "pads").tolist()
        value = self.constant(inputs, 2, "constant value")
        if len(inputs) > 3 and inputs[3] is not None:
            raise Unsupported("pads selected axes only (the axes input)")
        value = 0.0 if value is None else float(np.asarray(value).reshape(()))
    else:
        pads, value = list(attrs.get("pads", [])), float(attrs.get("value", 0.0))
    if value != 0.0:
        raise Unsupported(f"pads with {value}; the catalog pads with zeros only")
    x = self.graph.to_cf(x, name)
    rank = len(pads) // 2
    begins, ends = pads[:rank], pads[rank:]
    if rank != 4 or begins[:2] != [0, 0] or ends[:2] != [0, 0]:
        raise Unsupported(f"pads {pads}: the catalog pads the height and width of an image only")
    if min(pads) < 0:
        raise Unsupported(f"negative pads {pads} (cropping)")
    padding = [begins[2], ends[2], begins[3], ends[3]]
    return self.graph.add(
        "ZeroPadding2D", name, [x], {"padding": padding}, source_kind="Pad", nonneg=x.nonneg
    )


def _gather(self: _Converter, node, inputs, name, index):
    table, indices = inputs[0], inputs[1]
    if not (isinstance(table, np.ndarray) and isinstance(indices, Tensor)):
        raise Unsupported("gathers from a computed tensor; only an embedding table lookup is in the catalog")
    if int(self.attrs(node).get("axis", 0)) != 0 or table.ndim != 2:
        raise Unsupported("a gather that is not a lookup in a 2-D embedding table")
    table = self.weight(node, inputs, 0, "table")
    params = {"input_dim": table.shape[0], "output_dim": table.shape[1]}
    return self.graph.add("Embedding", name, [indices], params, [table], source_kind="Gather", form=SAME)


def _slice(self: _Converter, node, inputs, name, index):
    x = self.data(inputs)
    rank = len(self.graph.source_shape(x)) + 1
    if self.opset >= 10:
        starts = self.constant(inputs, 1, "starts").tolist()
        ends = self.constant(inputs, 2, "ends").tolist()
        axes = self.constant(inputs, 3, "axes")
        steps = self.constant(inputs, 4, "steps")
        axes = list(range(len(starts))) if axes is None else axes.tolist()
        steps = [1] * len(starts) if steps is None else steps.tolist()
    else:
        attrs = self.attrs(node)
        starts, ends = list(attrs["starts"]), list(attrs["ends"])
        axes, steps = list(attrs.get("axes", range(len(starts)))), [1] * len(starts)
    if any(step != 1 for step in steps):
        raise Unsupported(f"slices with steps {steps}; the catalog crops contiguous ranges only")
    bounds = {
        (a + rank if a < 0 else a): (int(start), int(end))
        for a, start, end in zip(axes, starts, ends, strict=True)
    }
    return crop_layer(self.graph, x, name, node.op_type, bounds)


def _resize(self: _Converter, node, inputs, name, index):
    x = self.graph.to_cf(self.data(inputs), name)
    attrs = self.attrs(node)
    mode = attrs.get("mode", "nearest")
    transform = attrs.get("coordinate_transformation_mode", "half_pixel")
    if (
        mode == "nearest"
        and transform == "asymmetric"
        and attrs.get("nearest_mode", "round_prefer_floor") == "floor"
    ):
        interpolation = "nearest"
    elif mode == "linear" and transform in ("half_pixel", "pytorch_half_pixel"):
        interpolation = "bilinear"
    else:
        raise Unsupported(
            f"mode={mode!r}, coordinate_transformation_mode={transform!r}: the catalog's UpSampling2D is nearest "
            "(asymmetric, floor) or bilinear (half-pixel)"
        )
    height, width, channels = self.graph.keras_shape(x)
    scales = self.constant(inputs, 2, "scales") if len(inputs) > 2 else None
    sizes = self.constant(inputs, 3, "sizes") if len(inputs) > 3 else None
    if scales is not None and scales.size:
        factors = [float(f) for f in scales.reshape(-1)]
    elif sizes is not None and sizes.size:
        factors = [1.0, 1.0, sizes.reshape(-1)[2] / height, sizes.reshape(-1)[3] / width]
    else:
        raise Unsupported("neither scales nor sizes are constants")
    if factors[:2] != [1.0, 1.0] or not all(f.is_integer() and f >= 1 for f in factors[2:]):
        raise Unsupported(
            f"scales {factors}; the catalog's UpSampling2D scales height and width by whole factors"
        )
    params = {"size": [int(factors[2]), int(factors[3])], "interpolation": interpolation}
    return self.graph.add("UpSampling2D", name, [x], params, source_kind="Resize", nonneg=x.nonneg)


def _shape_of(self: _Converter, node, inputs, name, index):
    x = self.data(inputs)
    dims = (None, *self.graph.source_shape(x))
    attrs = self.attrs(node)
    start, end = int(attrs.get("start", 0)), attrs.get("end")
    dims = dims[start : None if end is None else int(end)]
    return ShapeValue(tuple(dims))


HANDLERS: dict[str, Callable] = {
    "Shape": _shape_of,
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "BatchNormalization": _batch_norm,
    **{
        op: _activation
        for op in (*SIMPLE_ACTIVATIONS, "LeakyRelu", "Elu", "Gelu", "HardSigmoid", "Clip", "Softmax")
    },
    "MaxPool": _pooling,
    "AveragePool": _pooling,
    "GlobalAveragePool": _global_pooling,
    "GlobalMaxPool": _global_pooling,
    "ReduceMean": _reduce_mean,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Squeeze": _squeeze,
    "Unsqueeze": _squeeze,
    "Add": _merge,
    "Sub": _merge,
    "Mul": _merge,
    "Div": _merge,
    "Max": _merge,
    "Sum": _merge,
    "Mean": _merge,
    "Concat": _concat,
    "Transpose": _transpose,
    "Identity": _identity,
    "Dropout": _identity,
    "Pad": _pad,
    "Gather": _gather,
    "Slice": _slice,
    "Resize": _resize,
}


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
    return ShapeValue((dim,)) if dim is None else np.array(dim, dtype=np.int64)


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


def _fold_arithmetic(self: _Converter, node, inputs):
    if any(isinstance(value, ShapeValue) for value in inputs):
        raise Unsupported("arithmetic on the batch size")
    operations = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}
    if node.op_type not in operations:
        raise Unsupported("this operator on constants is not evaluated by the importer")
    result = operations[node.op_type](*[np.asarray(v) for v in inputs])
    return result.astype(np.asarray(inputs[0]).dtype) if node.op_type == "Div" else result


def _fold_constant_of_shape(self: _Converter, node, inputs):
    dims = _as_list(inputs[0])
    if any(dim is None for dim in dims):
        raise Unsupported("a constant whose shape depends on the batch size (such as an RNN's initial state)")
    shape = [int(dim) for dim in dims]
    value = self.attrs(node).get("value")
    fill = (
        self.onnx.numpy_helper.to_array(value).reshape(-1) if value is not None else np.zeros(1, np.float32)
    )
    return np.full(shape, fill[0], dtype=fill.dtype)


def _fold_reshape(self: _Converter, node, inputs):
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


def _fold_transpose(self: _Converter, node, inputs):
    data = np.asarray(inputs[0])
    perm = self.attrs(node).get("perm")
    return data.transpose(list(perm) if perm is not None else None)


def _fold_squeeze(self: _Converter, node, inputs):
    data = np.asarray(inputs[0])
    axes = self.attrs(node).get("axes")
    if axes is None and len(inputs) > 1 and inputs[1] is not None:
        axes = _as_list(inputs[1])
    return np.squeeze(data, axis=None if axes is None else tuple(int(a) for a in axes))


FOLDABLE: dict[str, Callable] = {
    "Constant": _fold_constant_node,
    "Gather": _fold_gather,
    "Unsqueeze": _fold_unsqueeze,
    "Concat": _fold_concat,
    "Cast": _fold_cast,
    "Identity": _fold_identity,
    "Add": _fold_arithmetic,
    "Sub": _fold_arithmetic,
    "Mul": _fold_arithmetic,
    "Div": _fold_arithmetic,
    "ConstantOfShape": _fold_constant_of_shape,
    "Reshape": _fold_reshape,
    "Slice": _fold_slice,
    "Transpose": _fold_transpose,
    "Squeeze": _fold_squeeze,
    "Shape": lambda self, node, inputs: np.array(np.asarray(inputs[0]).shape, dtype=np.int64),
}
