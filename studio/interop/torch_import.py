"""PyTorch modules -> projects, through ``torch.fx.symbolic_trace``.

A PyTorch model is Python code: importing ``model.py:Net`` *executes*
``model.py``, so :func:`import_torch_module` refuses unless ``allow_code`` is
given (the CLI's ``--allow-code``, the GUI's confirmation). Weights in a
separate file load with ``torch.load(weights_only=True)``.

The traced graph is mapped node by node: ``call_module`` (Conv2d, BatchNorm2d,
ReLU, MaxPool2d, AdaptiveAvgPool2d, Linear, Flatten, Dropout, Embedding, LSTM,
GRU, RNN, MultiheadAttention, ...), ``call_function`` (``operator.add``,
``torch.cat``, ``torch.flatten``, ``F.relu``, ...) and ``call_method``
(``x.view``, ``x.flatten``, ``x.mean``, ...). Shapes come from running the
traced model once on a random batch of the given input shapes (channels-first,
as PyTorch has them; the project's Input is channels-last).
"""

from __future__ import annotations

import functools
import importlib.util
import operator
import os
import re
import sys
import uuid
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
from studio.interop.errors import (
    CodeExecutionRefused,
    InteropError,
    ModelFileError,
    Unsupported,
    UnsupportedLayer,
    UnsupportedModelError,
)
from studio.interop.frameworks import import_torch

BATCH = 2  # the batch of the shape-tracing run: 2 tells the batch axis from a unit axis


def refusal_message(path: Path) -> str:
    return (
        f"{path} is Python code: importing it would execute it, with your permissions. "
        "Import it only if you trust it: pass --allow-code (in the app, confirm the prompt)."
    )


def import_torch_module(
    path: str | Path,
    entry: str,
    *,
    input_shapes: Sequence[Sequence[int]] | None,
    allow_code: bool = False,
    with_weights: bool = True,
    name: str | None = None,
    state_dict: str | os.PathLike | None = None,
) -> ImportedModel:
    """Execute ``path`` (only with ``allow_code``), build ``entry()`` and import the module."""
    path = Path(path)
    if not allow_code:
        raise CodeExecutionRefused(refusal_message(path))
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    if not input_shapes:
        raise InteropError(
            "a PyTorch model needs its input shape, channels-first, e.g. --input-shape 3,224,224"
        )
    model = _build_module(path, entry)
    if state_dict is not None:
        _load_state_dict(model, Path(state_dict))
    return import_torch_model(
        model, input_shapes, source=f"{path.name}:{entry}", with_weights=with_weights, name=name or entry
    )


def _build_module(path: Path, entry: str):
    torch = import_torch()
    module_name = f"_studio_import_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ModelFileError(f"{path}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)  # the file may import its neighbours
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        raise ModelFileError(f"{path}: running the file failed: {type(error).__name__}: {error}") from None
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    target = getattr(module, entry, None)
    if target is None:
        found = sorted(
            name
            for name, value in vars(module).items()
            if isinstance(value, type)
            and issubclass(value, torch.nn.Module)
            and value.__module__ == module_name
        )
        hint = f" (modules defined there: {', '.join(found)})" if found else ""
        raise ModelFileError(f"{path}: defines no {entry!r}{hint}")
    try:
        model = target()
    except Exception as error:
        raise ModelFileError(f"{path}: {entry}() failed: {type(error).__name__}: {error}") from None
    if not isinstance(model, torch.nn.Module):
        raise ModelFileError(f"{path}: {entry}() returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def _load_state_dict(model, path: Path) -> None:
    torch = import_torch()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    except Exception as error:
        raise ModelFileError(f"{path}: not a PyTorch state_dict loadable without pickle ({error})") from None
    try:
        model.load_state_dict(state, strict=True)
    except Exception as error:
        raise ModelFileError(f"{path}: the state_dict does not fit the model ({error})") from None


def torch_parameter_count(model) -> int:
    """Parameters plus buffers, without ``num_batches_tracked``: the catalog's torch rule."""
    from codegen.weights import torch_counts

    return sum(torch_counts(model))


def import_torch_model(
    model,
    input_shapes: Sequence[Sequence[int]],
    source: str = "the model",
    with_weights: bool = True,
    name: str | None = None,
) -> ImportedModel:
    """Import an ``nn.Module`` already built. ``input_shapes``: channels-first, no batch."""
    torch = import_torch()
    model = model.eval()
    try:
        traced = torch.fx.symbolic_trace(model)
    except Exception as error:
        raise UnsupportedModelError(
            [UnsupportedLayer(type(model).__name__, "torch.fx", f"the model cannot be traced ({error})")],
            source,
        ) from None
    converter = _Converter(traced, GraphBuilder(source), [tuple(int(d) for d in s) for s in input_shapes])
    converter.run()
    builder = converter.builder
    outputs = [info.layer for info in converter.output_infos]
    project, weights = builder.build(
        name or type(model).__name__,
        outputs,
        description=f"Imported from the PyTorch model {source}.",
        with_weights=with_weights,
    )
    return ImportedModel(
        project=project,
        weights=weights,
        source_format="pytorch",
        source_parameters=torch_parameter_count(model),
        parameter_rule="torch",
        inputs=converter.input_infos,
        outputs=converter.output_infos,
        notes=builder.notes,
    )


# ----- values ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Aux:
    """A non-tensor value: a size, a shape, a Python number."""

    value: Any = None


@dataclass(frozen=True)
class Multi:
    """A module output that is a tuple (RNN, attention); ``path`` is the indexing so far."""

    owner: Any  # the _Pending it belongs to
    path: tuple = ()


class _Pending:
    """A layer created when its output is first used: RNNs decide return_sequences then."""

    def __init__(self, create: Callable[[str], Tensor]) -> None:
        self.create = create
        self.mode: str | None = None
        self.tensor: Tensor | None = None

    def get(self, mode: str) -> Tensor:
        if self.tensor is None:
            self.mode, self.tensor = mode, self.create(mode)
        elif mode != self.mode:
            raise Unsupported(
                f"uses both the {self.mode} output and the {mode} output; the catalog's layer gives one of them"
            )
        return self.tensor


_BROKEN = object()


class _Converter:
    def __init__(self, traced, builder: GraphBuilder, input_shapes: list[tuple[int, ...]]) -> None:
        self.torch = import_torch()
        self.traced = traced
        self.builder = builder
        self.graph = ChannelsFirstGraph(builder)
        self.input_shapes = input_shapes
        self.values: dict[Any, Any] = {}
        self.module_calls: dict[str, int] = {}
        self.input_infos: list[TensorInfo] = []
        self.output_infos: list[TensorInfo] = []
        self.meta: dict[Any, tuple] = {}

    # ----- running ------------------------------------------------------------------

    def run(self) -> None:
        placeholders = [node for node in self.traced.graph.nodes if node.op == "placeholder"]
        if len(placeholders) != len(self.input_shapes):
            raise InteropError(
                f"the model takes {len(placeholders)} input(s) ({', '.join(n.target for n in placeholders)}) "
                f"but {len(self.input_shapes)} input shape(s) were given"
            )
        self._propagate_shapes(placeholders)
        for node in self.traced.graph.nodes:
            self._node(node)
        self.builder.check()

    def _propagate_shapes(self, placeholders) -> None:
        torch = self.torch
        from torch.fx.passes.shape_prop import ShapeProp

        examples = []
        for node, shape in zip(placeholders, self.input_shapes, strict=True):
            if self._takes_token_ids(node):
                examples.append(torch.zeros((BATCH, *shape), dtype=torch.long))
            else:
                examples.append(torch.randn((BATCH, *shape)))
        try:
            with torch.no_grad():
                ShapeProp(self.traced).propagate(*examples)
        except Exception as error:
            shapes = ", ".join(str(shape) for shape in self.input_shapes)
            raise InteropError(
                f"the model fails on a batch of input shape(s) {shapes} (channels-first, batch excluded): "
                f"{type(error).__name__}: {error}"
            ) from None
        for node in self.traced.graph.nodes:
            meta = node.meta.get("tensor_meta")
            if meta is not None and hasattr(meta, "shape"):
                self.meta[node] = tuple(meta.shape)

    def _takes_token_ids(self, node) -> bool:
        torch = self.torch
        for user in node.users:
            if user.op == "call_module" and isinstance(self.module(user), torch.nn.Embedding):
                return True
            if user.op == "call_function" and user.target is torch.nn.functional.embedding:
                return True
        return False

    def module(self, node):
        return self.traced.get_submodule(node.target)

    def _node(self, node) -> None:
        if node.op == "placeholder":
            self._input(node)
            return
        if node.op == "output":
            self._outputs(node.args[0])
            return
        name = self._name(node)
        try:
            value = self._dispatch(node, name)
        except AlreadyReported:
            value = _BROKEN
        except _Broken:
            value = _BROKEN
        except Unsupported as error:
            self.builder.unsupported(name, self._kind(node), str(error))
            value = _BROKEN
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as error:
            reason = f"its arguments could not be read ({type(error).__name__}: {error})"
            self.builder.unsupported(name, self._kind(node), reason)
            value = _BROKEN
        self.values[node] = value

    def _name(self, node) -> str:
        """A module's path (``layer1.0.conv1``); a function call inside a module: ``layer1.0.add``."""
        if node.op == "call_module":
            return str(node.target)
        base = re.sub(r"_\d+$", "", node.name)
        stack = node.meta.get("nn_module_stack") or {}
        scope = next(reversed(stack.values()), ("",))[0] if stack else ""
        return f"{scope}.{base}" if scope else base

    def _kind(self, node) -> str:
        if node.op == "call_module":
            return type(self.module(node)).__name__
        if node.op == "call_function":
            module = getattr(node.target, "__module__", None) or ""
            short = {"_operator": "operator", "torch._C._nn": "F", "torch.nn.functional": "F"}.get(
                module, module
            )
            return f"{short}.{getattr(node.target, '__name__', node.target)}".lstrip(".")
        if node.op == "call_method":
            return f"Tensor.{node.target}"
        return node.op

    def _dispatch(self, node, name: str):
        if node.op == "get_attr":
            return self._get_attr(node)
        if node.op == "call_module":
            module = self.module(node)
            handler = MODULES.get(type(module).__name__)
            if handler is None:
                raise Unsupported(f"nn.{type(module).__name__} has no catalog equivalent")
            self._count_call(node, module)
            return handler(self, node, module, name)
        if node.op == "call_function":
            handler = function_handlers().get(node.target)
            if handler is None:
                raise Unsupported("this function has no catalog equivalent")
            return handler(self, node, name)
        if node.op == "call_method":
            handler = METHODS.get(node.target)
            if handler is None:
                raise Unsupported(f"the tensor method .{node.target}() has no catalog equivalent")
            return handler(self, node, name)
        raise Unsupported(f"a {node.op} node")

    def _count_call(self, node, module) -> None:
        count = self.module_calls.get(node.target, 0) + 1
        self.module_calls[node.target] = count
        if count > 1 and any(True for _ in module.parameters()):
            raise Unsupported(
                f"the module is called {count} times and shares its weights; the catalog has no shared layers"
            )

    def _get_attr(self, node):
        value = self.traced
        for part in str(node.target).split("."):
            value = getattr(value, part)
        if isinstance(value, self.torch.Tensor):
            return value.detach().cpu().numpy()
        return Aux(value)

    # ----- inputs and outputs ---------------------------------------------------------

    def _input(self, node) -> None:
        index = len(self.input_infos)
        shape = self.input_shapes[index]
        form = SAME
        if len(shape) == 3 or (len(shape) == 2 and self._feeds_channels_first(node)):
            form = CF
        keras_shape = [*shape[1:], shape[0]] if form == CF else list(shape)
        dtype = "int32" if self._takes_token_ids(node) else "float32"
        layer = self.builder.add(
            "Input", node.target, {"shape": keras_shape, "dtype": dtype}, source_kind="input"
        )
        if layer is None:
            self.values[node] = _BROKEN
            return
        self.values[node] = Tensor(layer, form)
        self.input_infos.append(TensorInfo(node.target, layer, channels_first=form == CF))

    def _feeds_channels_first(self, node) -> bool:
        nn = self.torch.nn
        kinds = (nn.Conv1d, nn.MaxPool1d, nn.AvgPool1d, nn.BatchNorm1d, nn.AdaptiveAvgPool1d)
        return any(user.op == "call_module" and isinstance(self.module(user), kinds) for user in node.users)

    def _outputs(self, value) -> None:
        items = list(value) if isinstance(value, (tuple, list)) else [value]
        for index, item in enumerate(items):
            label = f"output {index + 1}" if len(items) > 1 else "output"
            try:
                tensor = self.tensor(item)
                if tensor.form == SQUEEZED and tensor.ones:
                    tensor = self.graph.to_cf(tensor, f"{label}")
                elif tensor.form == FLAT_CF:
                    tensor = self.graph.to_same(tensor, f"{label}")
            except (_Broken, AlreadyReported):
                continue
            except Unsupported as error:
                self.builder.unsupported(label, "output", str(error))
                continue
            self.output_infos.append(TensorInfo(label, tensor.layer, channels_first=tensor.form == CF))

    # ----- argument access ------------------------------------------------------------

    def value(self, arg):
        """The converted value of an fx argument (nodes resolved, literals kept)."""
        fx = self.torch.fx
        if isinstance(arg, fx.Node):
            value = self.values.get(arg, _BROKEN)
            if value is _BROKEN:
                raise _Broken()
            return value
        if isinstance(arg, (list, tuple)):
            return type(arg)(self.value(item) for item in arg)
        return arg

    def tensor(self, arg) -> Tensor:
        value = self.value(arg)
        if isinstance(value, Multi):
            value = _resolve_multi(self, value)
        if not isinstance(value, Tensor):
            raise Unsupported(f"expects a tensor computed from the inputs, received {_describe(value)}")
        return value

    def argument(self, node, index: int, name: str, default: Any = None) -> Any:
        if index < len(node.args):
            return node.args[index]
        return node.kwargs.get(name, default)

    def literal(self, node, index: int, name: str, default: Any = None) -> Any:
        value = self.value(self.argument(node, index, name, default))
        return value.value if isinstance(value, Aux) else value

    def out_shape(self, node) -> tuple[int, ...]:
        shape = self.meta.get(node)
        if shape is None:
            raise Unsupported("its output shape is unknown (not a tensor)")
        if not shape or shape[0] != BATCH:
            raise Unsupported(f"its output {tuple(shape)} does not keep the batch as the first axis")
        return tuple(int(dim) for dim in shape[1:])

    def only_dense_after(self, node) -> bool:
        nn = self.torch.nn
        users = list(node.users)
        return bool(users) and all(
            user.op == "call_module" and isinstance(self.module(user), nn.Linear) for user in users
        )


class _Broken(Exception):
    """An input of this node was unsupported (already reported)."""


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"a constant of shape {value.shape}"
    if isinstance(value, Aux):
        return f"the value {value.value!r}"
    return repr(value)


def _array(tensor) -> np.ndarray | None:
    return None if tensor is None else tensor.detach().cpu().numpy().astype(np.float32)


def _pair(value, length: int = 2) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * length
    return tuple(int(v) for v in value)


# ----- modules --------------------------------------------------------------------------


def _m_conv(self: _Converter, node, module, name):
    if module.padding_mode != "zeros":
        raise Unsupported(f"padding_mode={module.padding_mode!r}; the catalog pads with zeros")
    rank = len(module.kernel_size)
    x = self.graph.to_cf(self.tensor(node.args[0]), name)
    pads = _torch_pads(module.padding, module.kernel_size, module.dilation)
    return conv_layer(
        self.graph,
        x,
        name,
        type(module).__name__,
        _array(module.weight),
        _array(module.bias),
        _pair(module.stride, rank),
        _pair(module.dilation, rank),
        pads,
        module.groups,
    )


def _torch_pads(padding, kernel, dilation) -> list[tuple[int, int]]:
    """PyTorch's padding argument as (before, after) per axis; 'same' puts any odd unit after."""
    if padding == "valid":
        return [(0, 0)] * len(kernel)
    if padding == "same":
        pairs = []
        for k, d in zip(kernel, dilation, strict=True):
            total = d * (k - 1)
            pairs.append((total // 2, total - total // 2))
        return pairs
    return [(int(p), int(p)) for p in _pair(padding, len(kernel))]


def _m_conv_transpose(self: _Converter, node, module, name):
    if module.groups != 1 or set(module.dilation) != {1}:
        raise Unsupported("groups or dilation; the catalog's Conv2DTranspose has neither")
    if module.padding_mode != "zeros":
        raise Unsupported(f"padding_mode={module.padding_mode!r}; the catalog pads with zeros")
    pads = [(int(p), int(p)) for p in _pair(module.padding)]
    return conv_transpose_layer(
        self.graph,
        self.tensor(node.args[0]),
        name,
        "ConvTranspose2d",
        _array(module.weight),
        _array(module.bias),
        _pair(module.stride),
        pads,
        _pair(module.output_padding),
    )


def _m_linear(self: _Converter, node, module, name):
    kernel = _array(module.weight).T
    return dense_layer(self.graph, self.tensor(node.args[0]), name, "Linear", kernel, _array(module.bias))


def _m_batch_norm(self: _Converter, node, module, name):
    if module.momentum is None:
        raise Unsupported("momentum=None (a cumulative average) has no catalog equivalent")
    if not module.track_running_stats:
        raise Unsupported("track_running_stats=False normalizes with batch statistics at inference too")
    return batch_norm_layer(
        self.graph,
        self.tensor(node.args[0]),
        name,
        type(module).__name__,
        _array(module.weight) if module.affine else None,
        _array(module.bias) if module.affine else None,
        _array(module.running_mean),
        _array(module.running_var),
        float(module.eps),
        round(1.0 - float(module.momentum), 12),
    )


def _m_layer_norm(self: _Converter, node, module, name):
    x = self.graph.to_same(self.tensor(node.args[0]), name)
    if len(module.normalized_shape) != 1 or module.normalized_shape[0] != self.graph.source_shape(x)[-1]:
        raise Unsupported(
            f"normalized_shape={tuple(module.normalized_shape)}: the catalog normalizes the last axis"
        )
    affine = module.elementwise_affine
    has_bias = affine and module.bias is not None
    params = {"epsilon": float(module.eps), "scale": affine, "center": has_bias}
    weights = ([_array(module.weight)] if affine else []) + ([_array(module.bias)] if has_bias else [])
    return self.graph.add("LayerNormalization", name, [x], params, weights, source_kind="LayerNorm")


def _activation(self: _Converter, x, name: str, source_kind: str, activation: str, **extra) -> Tensor:
    nonneg = activation in ("relu", "relu6", "sigmoid", "softmax", "softplus", "hard_sigmoid")
    params = {"activation": activation, **extra}
    return self.graph.add("Activation", name, [x], params, source_kind=source_kind, nonneg=nonneg)


SIMPLE_MODULES = {
    "ReLU": "relu",
    "ReLU6": "relu6",
    "SiLU": "silu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "Hardsigmoid": "hard_sigmoid",
}


def _m_activation(self: _Converter, node, module, name):
    x = self.tensor(node.args[0])
    kind = type(module).__name__
    if kind in SIMPLE_MODULES:
        return _activation(self, x, name, kind, SIMPLE_MODULES[kind])
    if kind == "LeakyReLU":
        return _activation(self, x, name, kind, "leaky_relu", negative_slope=float(module.negative_slope))
    if kind == "ELU":
        return _activation(self, x, name, kind, "elu", alpha=float(module.alpha))
    if kind == "GELU":
        if module.approximate != "none":
            raise Unsupported(f"approximate={module.approximate!r}; the catalog's gelu is the exact form")
        return _activation(self, x, name, kind, "gelu")
    if kind == "Softplus":
        if module.beta != 1:
            raise Unsupported(f"beta={module.beta}; the catalog's softplus has beta 1")
        self.builder.note(
            "Softplus: PyTorch is linear above threshold=20, Keras is exact (differences < 1e-8)"
        )
        return _activation(self, x, name, kind, "softplus")
    if kind == "Hardtanh":
        if (module.min_val, module.max_val) != (0.0, 6.0):
            raise Unsupported(
                f"clips to [{module.min_val}, {module.max_val}]; the catalog has relu6 ([0, 6])"
            )
        return _activation(self, x, name, kind, "relu6")
    if kind == "Softmax":
        dim = module.dim if module.dim is not None else _implicit_softmax_dim(self, x)
        check_softmax_axis(self.graph, x, dim)
        return _activation(self, x, name, kind, "softmax")
    raise Unsupported(f"nn.{kind} has no catalog equivalent")  # pragma: no cover


def _implicit_softmax_dim(self: _Converter, x: Tensor) -> int:
    rank = len(self.graph.source_shape(x)) + 1
    return 0 if rank in (0, 1, 3) else 1


def _m_identity(self: _Converter, node, module, name):
    return self.tensor(node.args[0])


def _m_dropout(self: _Converter, node, module, name):
    x = self.tensor(node.args[0])
    return self.graph.add(
        "Dropout", name, [x], {"rate": float(module.p)}, source_kind="Dropout", nonneg=x.nonneg
    )


def _m_flatten(self: _Converter, node, module, name):
    x = self.tensor(node.args[0])
    rank = len(self.graph.source_shape(x)) + 1
    end = module.end_dim + rank if module.end_dim < 0 else module.end_dim
    if module.start_dim != 1 or end != rank - 1:
        raise Unsupported(
            f"start_dim={module.start_dim}, end_dim={module.end_dim}: the catalog flattens all but the batch"
        )
    return self.graph.flatten(x, name, "Flatten", self.only_dense_after(node))


def _m_pool(self: _Converter, node, module, name):
    kind = type(module).__name__
    rank = 2 if kind.endswith("2d") else 1
    if kind.startswith("Max"):
        if module.return_indices or set(_pair(module.dilation, rank)) != {1}:
            raise Unsupported("return_indices or dilation; the catalog's MaxPooling has neither")
        include = False
    else:
        if getattr(module, "divisor_override", None):
            raise Unsupported("divisor_override has no catalog equivalent")
        include = bool(module.count_include_pad)
    kernel = _pair(module.kernel_size, rank)
    strides = _pair(module.stride if module.stride is not None else module.kernel_size, rank)
    pads = [(p, p) for p in _pair(module.padding, rank)]
    return pooling_layer(
        self.graph,
        self.tensor(node.args[0]),
        name,
        kind,
        kind.startswith("Max"),
        kernel,
        strides,
        pads,
        count_include_pad=include,
        ceil_mode=bool(module.ceil_mode),
    )


def _m_adaptive_pool(self: _Converter, node, module, name):
    return _adaptive_pool(self, node.args[0], name, type(module).__name__, module.output_size)


def _adaptive_pool(self: _Converter, arg, name: str, kind: str, output_size) -> Tensor:
    x = self.graph.to_cf(self.tensor(arg), name)
    spatial = self.graph.keras_shape(x)[:-1]
    rank = len(spatial)
    wanted = tuple(
        spatial[i] if size is None else int(size) for i, size in enumerate(_pair_none(output_size, rank))
    )
    is_max = "Max" in kind
    if all(size == 1 for size in wanted):
        return global_pooling_layer(self.graph, x, name, kind, is_max, keep_dims=True)
    if wanted == tuple(spatial):
        return x
    if any(size % out for size, out in zip(spatial, wanted, strict=True)):
        raise Unsupported(
            f"output size {wanted} does not divide the input {tuple(spatial)}: windows would overlap"
        )
    window = tuple(size // out for size, out in zip(spatial, wanted, strict=True))
    return pooling_layer(self.graph, x, name, kind, is_max, window, window, [(0, 0)] * rank)


def _pair_none(value, rank: int) -> tuple:
    if value is None or isinstance(value, int):
        return (value,) * rank
    return tuple(value)


def _m_zero_pad(self: _Converter, node, module, name):
    left, right, top, bottom = (int(p) for p in module.padding)
    x = self.graph.to_cf(self.tensor(node.args[0]), name)
    params = {"padding": [top, bottom, left, right]}
    return self.graph.add("ZeroPadding2D", name, [x], params, source_kind="ZeroPad2d", nonneg=x.nonneg)


def _m_upsample(self: _Converter, node, module, name):
    return _upsample(
        self, node, name, module.mode, module.scale_factor, getattr(module, "align_corners", None)
    )


def _upsample(self: _Converter, node, name: str, mode: str, scale_factor, align_corners) -> Tensor:
    x = self.graph.to_cf(self.tensor(node.args[0]), name)
    if mode not in ("nearest", "bilinear") or (mode == "bilinear" and align_corners):
        raise Unsupported(
            f"mode={mode!r}, align_corners={align_corners}: the catalog has nearest and bilinear"
        )
    height, width, _ = self.graph.keras_shape(x)
    out = self.out_shape(node)
    factors = (out[1] / height, out[2] / width)
    if not all(factor.is_integer() for factor in factors):
        raise Unsupported(f"scales by {factors}; the catalog's UpSampling2D takes whole factors")
    params = {"size": [int(f) for f in factors], "interpolation": mode}
    return self.graph.add("UpSampling2D", name, [x], params, source_kind="Upsample", nonneg=x.nonneg)


def _m_embedding(self: _Converter, node, module, name):
    x = self.tensor(node.args[0])
    if module.max_norm is not None:
        raise Unsupported("max_norm renormalizes rows at lookup; the catalog's Embedding does not")
    if module.padding_idx is not None:
        self.builder.note(
            f"'{name}': padding_idx={module.padding_idx} is dropped (it only keeps that row's gradient at zero)"
        )
    params = {"input_dim": module.num_embeddings, "output_dim": module.embedding_dim}
    return self.graph.add(
        "Embedding", name, [x], params, [_array(module.weight)], source_kind="Embedding", form=SAME
    )


RNN_KINDS = {"LSTM": "LSTM", "GRU": "GRU", "RNN": "SimpleRNN"}


def _m_recurrent(self: _Converter, node, module, name):
    kind = RNN_KINDS[type(module).__name__]
    if module.num_layers != 1:
        raise Unsupported(f"num_layers={module.num_layers}; stack one-layer {kind}s instead")
    if not module.batch_first:
        raise Unsupported("batch_first=False; the catalog's sequences are (batch, steps, features)")
    if not module.bias:
        raise Unsupported("bias=False; Keras recurrent layers always have a bias")
    if getattr(module, "proj_size", 0):
        raise Unsupported(f"proj_size={module.proj_size} has no catalog equivalent")
    if len(node.args) > 1 and node.args[1] is not None:
        raise Unsupported("is given an initial state; the catalog's layers start from zeros")
    x = self.graph.to_same(self.tensor(node.args[0]), name)
    directions = 2 if module.bidirectional else 1

    def create(mode: str) -> Tensor:
        params = {
            "units": module.hidden_size,
            "return_sequences": mode == "sequences",
            "bidirectional": directions == 2,
        }
        if kind == "SimpleRNN":
            params["activation"] = module.nonlinearity
        weights = []
        for suffix in ("", "_reverse")[:directions]:
            weights += _rnn_weights(module, kind, suffix)
        return self.graph.add(kind, name, [x], params, weights, source_kind=type(module).__name__, form=SAME)

    return Multi(_RnnOutputs(_Pending(create), kind, directions))


@dataclass(frozen=True)
class _RnnOutputs:
    pending: _Pending
    kind: str
    directions: int


def _gates(matrix: np.ndarray) -> np.ndarray:
    """PyTorch GRU gates (r, z, n) <-> Keras (z, r, h): swap the first two blocks of the last axis."""
    first, second, third = np.split(matrix, 3, axis=-1)
    return np.concatenate([second, first, third], axis=-1)


def _rnn_weights(module, kind: str, suffix: str) -> list[np.ndarray]:
    w_ih = _array(getattr(module, f"weight_ih_l0{suffix}")).T
    w_hh = _array(getattr(module, f"weight_hh_l0{suffix}")).T
    b_ih = _array(getattr(module, f"bias_ih_l0{suffix}"))
    b_hh = _array(getattr(module, f"bias_hh_l0{suffix}"))
    if kind == "GRU":
        return [_gates(w_ih), _gates(w_hh), np.stack([_gates(b_ih), _gates(b_hh)])]
    return [w_ih, w_hh, b_ih + b_hh]  # Keras has one bias: the two add up


def _m_attention(self: _Converter, node, module, name):
    if not module.batch_first:
        raise Unsupported("batch_first=False; the catalog's sequences are (batch, steps, features)")
    if not module._qkv_same_embed_dim:
        raise Unsupported(
            "kdim or vdim differ from embed_dim; the catalog's projections have the query's size"
        )
    if module.bias_k is not None or module.add_zero_attn:
        raise Unsupported("add_bias_kv or add_zero_attn have no catalog equivalent")
    for key in ("key_padding_mask", "attn_mask"):
        if node.kwargs.get(key) is not None:
            raise Unsupported(f"is given {key}; the catalog's attention has no masks")
    if node.kwargs.get("is_causal"):
        raise Unsupported("is_causal=True; the catalog's attention has no causal mask")
    query, key, value = (self.graph.to_same(self.tensor(node.args[i]), name) for i in range(3))
    sources = [query, value, key]
    if key == value:
        sources = sources[:2]
        if value == query:
            sources = sources[:1]
    embed, heads = module.embed_dim, module.num_heads
    head_dim = embed // heads
    w_in = _array(module.in_proj_weight)
    b_in = _array(module.in_proj_bias)
    weights = []
    for index in range(3):  # query, key, value, in Keras's weight order
        kernel = w_in[index * embed : (index + 1) * embed].T.reshape(embed, heads, head_dim)
        weights.append(kernel)
        if b_in is not None:
            weights.append(b_in[index * embed : (index + 1) * embed].reshape(heads, head_dim))
    weights.append(_array(module.out_proj.weight).T.reshape(heads, head_dim, embed))
    if module.out_proj.bias is not None:
        weights.append(_array(module.out_proj.bias))
    params = {
        "num_heads": heads,
        "key_dim": head_dim,
        "use_bias": b_in is not None,
        "dropout": float(module.dropout),
    }
    tensor = self.graph.add(
        "MultiHeadAttention", name, sources, params, weights, source_kind="MultiheadAttention", form=SAME
    )
    return Multi(_AttentionOutputs(tensor))


@dataclass(frozen=True)
class _AttentionOutputs:
    tensor: Tensor


def _resolve_multi(self: _Converter, value: Multi) -> Tensor:
    """The layer output that an index path into an RNN's or attention's tuple stands for."""
    owner, path = value.owner, value.path
    if isinstance(owner, _AttentionOutputs):
        if path == (0,):
            return owner.tensor
        raise Unsupported("uses the attention weights; the catalog's attention returns its output only")
    if path == (0,):
        return owner.pending.get("sequences")
    if path == (0, "last") and owner.directions == 1:
        return owner.pending.get("final")
    state = (1, 0) if owner.kind == "LSTM" else (1,)
    if path[: len(state)] == state and len(path) == len(state) + 1 and owner.directions == 1:
        if path[-1] in (-1, 0):
            return owner.pending.get("final")
    if path == (1, 1) and owner.kind == "LSTM":
        raise Unsupported(
            "uses the LSTM cell state; Keras layers in the catalog return the hidden state only"
        )
    raise Unsupported(
        f"uses the {owner.kind} outputs in a way the catalog cannot express (index {path}); use output[:, -1] "
        "(one direction), h_n[-1], or torch.cat([h_n[-2], h_n[-1]], dim=1) for both directions"
    )


def _index(self: _Converter, container: Multi, index) -> Multi | Tensor:
    """``container[index]`` for RNN / attention outputs, as far as the catalog can express."""
    owner, path = container.owner, container.path
    if isinstance(index, tuple) and path == (0,) and _is_last_step(index):
        return Multi(owner, (0, "last"))
    if not isinstance(index, int):
        raise Unsupported(f"indexes a layer's outputs with {index!r}")
    return Multi(owner, (*path, index))


def _is_last_step(index: tuple) -> bool:
    """``[:, -1]`` or ``[:, -1, :]``: the last step of (batch, steps, features)."""
    full = slice(None, None, None)
    return len(index) in (2, 3) and index[0] == full and index[1] == -1 and all(i == full for i in index[2:])


def _concat_final_states(self: _Converter, items: list) -> Tensor | None:
    """``torch.cat([h_n[-2], h_n[-1]], dim=1)`` of a one-layer bidirectional RNN: its final output."""
    if len(items) != 2 or not all(isinstance(item, Multi) for item in items):
        return None
    first, second = items
    owner = first.owner
    if second.owner is not owner or not isinstance(owner, _RnnOutputs) or owner.directions != 2:
        return None
    state = (1, 0) if owner.kind == "LSTM" else (1,)
    ends = (first.path[-1], second.path[-1])
    if first.path[:-1] == state and second.path[:-1] == state and ends in ((-2, -1), (0, 1)):
        return owner.pending.get("final")
    return None


MODULES: dict[str, Callable] = {
    "Conv1d": _m_conv,
    "Conv2d": _m_conv,
    "ConvTranspose2d": _m_conv_transpose,
    "Linear": _m_linear,
    "BatchNorm1d": _m_batch_norm,
    "BatchNorm2d": _m_batch_norm,
    "LayerNorm": _m_layer_norm,
    **{
        kind: _m_activation
        for kind in (*SIMPLE_MODULES, "LeakyReLU", "ELU", "GELU", "Softplus", "Hardtanh", "Softmax")
    },
    "Identity": _m_identity,
    "Dropout": _m_dropout,
    "Flatten": _m_flatten,
    "MaxPool1d": _m_pool,
    "MaxPool2d": _m_pool,
    "AvgPool1d": _m_pool,
    "AvgPool2d": _m_pool,
    "AdaptiveAvgPool1d": _m_adaptive_pool,
    "AdaptiveAvgPool2d": _m_adaptive_pool,
    "AdaptiveMaxPool2d": _m_adaptive_pool,
    "ZeroPad2d": _m_zero_pad,
    "Upsample": _m_upsample,
    "Embedding": _m_embedding,
    "LSTM": _m_recurrent,
    "GRU": _m_recurrent,
    "RNN": _m_recurrent,
    "MultiheadAttention": _m_attention,
}


# ----- functions and methods ------------------------------------------------------------


def _f_getitem(self: _Converter, node, name):
    container = self.value(node.args[0])
    index = self.value(node.args[1])
    if isinstance(container, Multi):
        return _index(self, container, index)
    if isinstance(container, Aux):
        try:
            return Aux(container.value[index])
        except Exception:
            raise Unsupported(f"indexes {container.value!r} with {index!r}") from None
    if isinstance(container, Tensor):
        return _crop(self, container, index, name, self._kind(node))
    raise Unsupported(f"indexes {_describe(container)}")


def _crop(self: _Converter, x: Tensor, index, name: str, kind: str) -> Tensor:
    """``x[:, :, a:b, c:d]``: Cropping2D of a channels-first image."""
    items = index if isinstance(index, tuple) else (index,)
    if not all(isinstance(item, slice) and item.step in (None, 1) for item in items):
        raise Unsupported(f"indexes a tensor with {index!r}; the catalog only crops images (Cropping2D)")
    if items and items[0] != slice(None):
        raise Unsupported("slices the batch axis")
    bounds = {}
    for axis, item in enumerate(items):
        if item != slice(None):
            start = 0 if item.start is None else int(item.start)
            end = 2**62 if item.stop is None else int(item.stop)
            bounds[axis] = (start, end)
    return crop_layer(self.graph, x, name, kind, bounds)


def _f_getattr(self: _Converter, node, name):
    target = self.value(node.args[0])
    attribute = node.args[1]
    if isinstance(target, Tensor) and attribute == "shape":
        shape = self.meta.get(node.args[0])
        return Aux(shape)
    raise Unsupported(f"reads the attribute .{attribute}")


def _binary(kind: str) -> Callable:
    def handler(self: _Converter, node, name):
        left, right = self.value(node.args[0]), self.value(node.args[1])
        if "alpha" in node.kwargs and node.kwargs["alpha"] != 1:
            raise Unsupported(f"alpha={node.kwargs['alpha']} has no catalog equivalent")
        left = _resolve(self, left)
        right = _resolve(self, right)
        if isinstance(left, Tensor) and isinstance(right, Tensor):
            return self.graph.merge(kind, [left, right], name, self._kind(node))
        if isinstance(left, Aux) and isinstance(right, Aux):
            return Aux(_AUX_OPERATIONS[kind](left.value, right.value))
        number = right if isinstance(left, Tensor) else left
        tensor = left if isinstance(left, Tensor) else right
        number = number.value if isinstance(number, Aux) else number
        if not isinstance(tensor, Tensor) or not isinstance(number, (int, float)):
            raise Unsupported(f"combines a tensor with {_describe(number)} (broadcasting)")
        return _rescale(self, node, name, kind, tensor, float(number), tensor_first=tensor is left)

    return handler


_AUX_OPERATIONS = {
    "Add": operator.add,
    "Subtract": operator.sub,
    "Multiply": operator.mul,
    "Divide": operator.truediv,
    "Maximum": max,
}


def _resolve(self: _Converter, value):
    return _resolve_multi(self, value) if isinstance(value, Multi) else value


def _rescale(self: _Converter, node, name, kind: str, x: Tensor, number: float, tensor_first: bool) -> Tensor:
    if kind == "Multiply":
        scale, offset = number, 0.0
    elif kind == "Add":
        scale, offset = 1.0, number
    elif kind == "Subtract":
        scale, offset = (1.0, -number) if tensor_first else (-1.0, number)
    elif kind == "Divide" and tensor_first and number != 0:
        scale, offset = 1.0 / number, 0.0
    else:
        raise Unsupported(f"{kind.lower()} with a number has no catalog equivalent")
    nonneg = x.nonneg and scale >= 0 and offset >= 0
    params = {"scale": scale, "offset": offset}
    return self.graph.add("Rescaling", name, [x], params, source_kind=self._kind(node), nonneg=nonneg)


def _f_maximum(self: _Converter, node, name):
    tensors = [self.tensor(arg) for arg in node.args[:2]]
    return self.graph.merge("Maximum", tensors, name, self._kind(node))


def _f_cat(self: _Converter, node, name):
    items = list(self.value(self.argument(node, 0, "tensors")))
    dim = self.literal(node, 1, "dim", 0)
    final = _concat_final_states(self, items)
    if final is not None and dim in (1, -1):
        return final
    tensors = [_resolve(self, item) for item in items]
    if not all(isinstance(t, Tensor) for t in tensors):
        raise Unsupported("concatenates values that are not computed tensors")
    return self.graph.concatenate(tensors, int(dim), name, self._kind(node))


def _reshape_like(self: _Converter, node, name) -> Tensor:
    x = self.tensor(node.args[0])
    target = self.out_shape(node)
    return self.graph.reshape(x, list(target), name, self._kind(node), self.only_dense_after(node))


def _f_flatten(self: _Converter, node, name):
    x = self.tensor(node.args[0])
    start = self.literal(node, 1, "start_dim", 0)
    end = self.literal(node, 2, "end_dim", -1)
    rank = len(self.graph.source_shape(x)) + 1
    if start == 1 and (end + rank if end < 0 else end) == rank - 1:
        return self.graph.flatten(x, name, self._kind(node), self.only_dense_after(node))
    if start == 0:
        raise Unsupported("flattens the batch axis")
    return self.graph.reshape(x, list(self.out_shape(node)), name, self._kind(node), False)


FUNCTION_ACTIVATIONS = {
    "relu": "relu",
    "relu_": "relu",
    "relu6": "relu6",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "silu": "silu",
    "hardsigmoid": "hard_sigmoid",
    "softplus": "softplus",
}


def _f_activation(self: _Converter, node, name, function: str | None = None):
    x = self.tensor(node.args[0])
    function = function or getattr(node.target, "__name__", str(node.target))
    kind = self._kind(node)
    if function in FUNCTION_ACTIVATIONS:
        if function == "softplus" and (self.literal(node, 1, "beta", 1) != 1):
            raise Unsupported("beta != 1; the catalog's softplus has beta 1")
        return _activation(self, x, name, kind, FUNCTION_ACTIVATIONS[function])
    if function in ("leaky_relu", "leaky_relu_"):
        slope = float(self.literal(node, 1, "negative_slope", 0.01))
        return _activation(self, x, name, kind, "leaky_relu", negative_slope=slope)
    if function == "elu":
        return _activation(self, x, name, kind, "elu", alpha=float(self.literal(node, 1, "alpha", 1.0)))
    if function == "gelu":
        if self.literal(node, 1, "approximate", "none") != "none":
            raise Unsupported("approximate='tanh'; the catalog's gelu is the exact form")
        return _activation(self, x, name, kind, "gelu")
    if function == "softmax":
        dim = self.literal(node, 1, "dim", None)
        if dim is None:
            dim = _implicit_softmax_dim(self, x)
        check_softmax_axis(self.graph, x, int(dim))
        return _activation(self, x, name, kind, "softmax")
    if function == "hardtanh":
        low, high = self.literal(node, 1, "min_val", -1.0), self.literal(node, 2, "max_val", 1.0)
        if (low, high) != (0.0, 6.0):
            raise Unsupported(f"clips to [{low}, {high}]; the catalog has relu6 ([0, 6])")
        return _activation(self, x, name, kind, "relu6")
    raise Unsupported("this activation has no catalog equivalent")


def _f_dropout(self: _Converter, node, name):
    x = self.tensor(node.args[0])
    rate = float(self.literal(node, 1, "p", 0.5))
    return self.graph.add("Dropout", name, [x], {"rate": rate}, source_kind=self._kind(node), nonneg=x.nonneg)


def _f_adaptive_pool(self: _Converter, node, name):
    size = self.literal(node, 1, "output_size")
    kind = "AdaptiveMaxPool2d" if "max" in node.target.__name__ else "AdaptiveAvgPool2d"
    return _adaptive_pool(self, node.args[0], name, kind, size)


def _f_pool(self: _Converter, node, name):
    function = node.target.__name__
    is_max = function.startswith("max")
    rank = 2 if function.endswith("2d") else 1
    kernel = _pair(self.literal(node, 1, "kernel_size"), rank)
    stride = self.literal(node, 2, "stride", None)
    strides = kernel if stride in (None, [], ()) else _pair(stride, rank)
    pads = [(p, p) for p in _pair(self.literal(node, 3, "padding", 0), rank)]
    if is_max:
        if set(_pair(self.literal(node, 4, "dilation", 1), rank)) != {1} or self.literal(
            node, 6, "return_indices", False
        ):
            raise Unsupported("dilation or return_indices; the catalog's MaxPooling has neither")
        ceil, include = self.literal(node, 5, "ceil_mode", False), False
    else:
        ceil, include = (
            self.literal(node, 4, "ceil_mode", False),
            self.literal(node, 5, "count_include_pad", True),
        )
        if self.literal(node, 6, "divisor_override", None):
            raise Unsupported("divisor_override has no catalog equivalent")
    kind = self._kind(node)
    x = self.tensor(node.args[0])
    return pooling_layer(self.graph, x, name, kind, is_max, kernel, strides, pads, bool(include), bool(ceil))


def _mean(self: _Converter, node, name):
    x = self.tensor(node.args[0])
    dims = self.literal(node, 1, "dim", None)
    keep = bool(self.literal(node, 2, "keepdim", False))
    rank = len(self.graph.source_shape(x)) + 1
    dims = [dims] if isinstance(dims, int) else list(dims or [])
    dims = sorted(d + rank if d < 0 else d for d in dims)
    if x.form != CF or dims != list(range(2, rank)):
        raise Unsupported(
            f"a mean over dims {dims}; the catalog has the mean over all spatial axes (global pooling)"
        )
    return global_pooling_layer(self.graph, x, name, self._kind(node), False, keep_dims=keep)


def _f_pad(self: _Converter, node, name):
    x = self.graph.to_cf(self.tensor(node.args[0]), name)
    pads = list(self.literal(node, 1, "pad"))
    mode = self.literal(node, 2, "mode", "constant")
    value = self.literal(node, 3, "value", None)
    if mode != "constant" or value not in (None, 0, 0.0):
        raise Unsupported(f"mode={mode!r}, value={value!r}: the catalog pads with zeros only")
    if len(self.graph.keras_shape(x)) != 3 or len(pads) not in (2, 4) or min(pads) < 0:
        raise Unsupported(f"pads {pads}: the catalog pads the height and width of an image only")
    left, right, top, bottom = [*pads, 0, 0][:4]
    params = {"padding": [top, bottom, left, right]}
    return self.graph.add("ZeroPadding2D", name, [x], params, source_kind="F.pad", nonneg=x.nonneg)


def _f_interpolate(self: _Converter, node, name):
    mode = self.literal(node, 3, "mode", "nearest")
    return _upsample(
        self, node, name, mode, self.literal(node, 2, "scale_factor"), self.literal(node, 4, "align_corners")
    )


def _f_transpose_like(self: _Converter, node, name):
    x = self.tensor(node.args[0])
    rank = len(self.graph.source_shape(x)) + 1
    method = node.target if isinstance(node.target, str) else node.target.__name__
    if method == "permute":
        dims = node.args[1:] if len(node.args) > 2 else self.literal(node, 1, "dims")
        perm = [int(self.value(d)) % rank for d in (dims if isinstance(dims, (list, tuple)) else [dims])]
    else:
        first, second = (int(self.literal(node, i, key)) % rank for i, key in ((1, "dim0"), (2, "dim1")))
        perm = list(range(rank))
        perm[first], perm[second] = perm[second], perm[first]
    return self.graph.transpose(x, perm, name, self._kind(node))


def _m_size(self: _Converter, node, name):
    shape = self.meta.get(node.args[0])
    if shape is None:
        raise Unsupported("the size of a value that is not a tensor")
    dim = self.literal(node, 1, "dim", None)
    return Aux(shape if dim is None else shape[dim])


def _m_passthrough(self: _Converter, node, name):
    return self.tensor(node.args[0])


def _method_activation(function: str) -> Callable:
    """``x.relu()`` is ``F.relu(x)``."""

    def handler(self: _Converter, node, name):
        return _f_activation(self, node, name, function)

    return handler


@functools.cache
def function_handlers() -> dict[Callable, Callable]:
    """Handlers of ``call_function`` nodes, keyed by the function object fx recorded."""
    torch = import_torch()
    functional = torch.nn.functional
    table: dict[Callable, Callable] = {
        operator.getitem: _f_getitem,
        getattr: _f_getattr,
        operator.add: _binary("Add"),
        operator.iadd: _binary("Add"),
        operator.sub: _binary("Subtract"),
        operator.mul: _binary("Multiply"),
        operator.truediv: _binary("Divide"),
        torch.add: _binary("Add"),
        torch.sub: _binary("Subtract"),
        torch.mul: _binary("Multiply"),
        torch.maximum: _f_maximum,
        torch.cat: _f_cat,
        torch.concat: _f_cat,
        torch.flatten: _f_flatten,
        torch.mean: _mean,
        functional.dropout: _f_dropout,
        functional.adaptive_avg_pool2d: _f_adaptive_pool,
        functional.adaptive_max_pool2d: _f_adaptive_pool,
        functional.max_pool1d: _f_pool,
        functional.max_pool2d: _f_pool,
        functional.avg_pool1d: _f_pool,
        functional.avg_pool2d: _f_pool,
        functional.pad: _f_pad,
        functional.interpolate: _f_interpolate,
    }
    for name in (*FUNCTION_ACTIVATIONS, "leaky_relu", "leaky_relu_", "elu", "gelu", "softmax", "hardtanh"):
        for namespace in (torch, functional):
            function = getattr(namespace, name, None)
            if function is not None:
                table[function] = _f_activation
    return table


METHODS: dict[str, Callable] = {
    "view": _reshape_like,
    "reshape": _reshape_like,
    "squeeze": _reshape_like,
    "unsqueeze": _reshape_like,
    "flatten": _f_flatten,
    "size": _m_size,
    "contiguous": _m_passthrough,
    "mean": _mean,
    "permute": _f_transpose_like,
    "transpose": _f_transpose_like,
    "add": _binary("Add"),
    "sub": _binary("Subtract"),
    "mul": _binary("Multiply"),
    **{method: _method_activation(method) for method in ("relu", "sigmoid", "tanh", "softmax")},
}
