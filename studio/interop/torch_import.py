"""PyTorch modules -> projects, through ``torch.fx.symbolic_trace``.

A PyTorch model is Python code: importing ``model.py:Net`` *executes*
``model.py``, so :func:`import_torch_module` refuses unless ``allow_code`` is
given (the CLI's ``--allow-code``, the GUI's confirmation). Weights in a
separate file load with ``torch.load(weights_only=True)``.

The traced graph is walked node by node: ``call_module`` (``nn.Conv2d``,
``nn.LSTM``, ...), ``call_function`` (``operator.add``, ``torch.cat``,
``F.relu``, ...) and ``call_method`` (``x.view``, ``x.mean``, ...) nodes go to
the handlers the layer families register (``TORCH_MODULES``,
``TORCH_FUNCTIONS``, ``TORCH_METHODS`` in ``codegen.layers``), next to the
PyTorch emission they invert. Shapes come from running the traced model once
on a random batch of the given input shapes (channels-first, as PyTorch has
them; the project's Input is channels-last).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import inspect
import io
import os
import re
import sys
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from codegen.layers import LOWERINGS
from codegen.layers.base import CF, SAME, AlreadyReported, Tensor
from codegen.layers.folded import Folded, through_view, view_axes
from codegen.layers.normalization import is_learned
from codegen.layers.torch_source import Aux, describe, holds_batch, resolve
from studio.interop.builder import GraphBuilder, ImportedModel
from studio.interop.errors import (
    CodeExecutionRefused,
    InteropError,
    ModelFileError,
    Unsupported,
    UnsupportedLayer,
    UnsupportedModelError,
)
from studio.interop.frameworks import import_torch
from studio.interop.source_walker import BROKEN, SourceWalker

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
    fixed = _optional_arguments(model, len(input_shapes))
    try:
        traced = _trace(torch, model, fixed)
    except Exception as error:
        raise UnsupportedModelError(
            [UnsupportedLayer(type(model).__name__, "torch.fx", f"the model cannot be traced ({error})")],
            source,
        ) from None
    shapes = [tuple(int(d) for d in s) for s in input_shapes]
    converter = _Converter(traced, GraphBuilder(source), shapes, len(fixed))
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


def qualified_class(module) -> str:
    """``timm.layers.attention.Attention``: a module's class, as LOWERINGS.torch_leaves names it."""
    return f"{type(module).__module__}.{type(module).__qualname__}"


def _trace(torch, model, fixed: dict[str, object]):
    """``torch.fx.symbolic_trace``, keeping the library modules that have a lowering of their own
    whole (LOWERINGS.torch_leaves), and ``fixed`` arguments traced as those constants."""

    class Tracer(torch.fx.Tracer):
        def is_leaf_module(self, module, qualified_name: str) -> bool:
            return qualified_class(module) in LOWERINGS.torch_leaves or super().is_leaf_module(
                module, qualified_name
            )

    tracer = Tracer()
    graph = tracer.trace(model, concrete_args=fixed or None)
    return torch.fx.GraphModule(tracer.root, graph, type(model).__name__)


def _optional_arguments(model, inputs: int) -> dict[str, object]:
    """The forward's arguments after the first ``inputs`` that have defaults (timm's ViT takes
    ``attn_mask=None, is_causal=False``): traced as those constants, so that the model's inputs are
    the tensors it was given shapes for."""
    try:
        parameters = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return {}
    named = [p for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if len(named) != len(parameters):  # *args or **kwargs: leave the tracing as it is
        return {}
    return {p.name: p.default for p in named[inputs:] if p.default is not p.empty}


@functools.cache
def function_handlers() -> dict[Callable, Callable]:
    """Handlers of ``call_function`` nodes, keyed by the function object fx recorded.

    The families key them by dotted path (``torch.nn.functional.relu``); the
    paths resolve here, once torch is imported. A path this torch lacks is
    skipped; two paths for one function (``torch.relu_`` is
    ``torch.nn.functional.relu_``) must agree on the handler.
    """
    import_torch()
    table: dict[Callable, Callable] = {}
    for path, handler in LOWERINGS.torch_functions.items():
        function = resolve_path(path)
        if function is None:
            continue
        if table.get(function, handler) is not handler:
            raise ValueError(f"{path} is {function!r}, which already has another handler")
        table[function] = handler
    return table


def function_handler(function) -> Callable | None:
    """The handler of a ``call_function`` target: by the function object, else by its own module and
    name (a library other than torch, such as torchvision, that the model's code imported itself)."""
    handler = function_handlers().get(function)
    if handler is None:
        qualified = f"{getattr(function, '__module__', '')}.{getattr(function, '__qualname__', '')}"
        handler = LOWERINGS.torch_functions.get(qualified)
    return handler


def resolve_path(path: str) -> Any:
    """``torch.nn.functional.relu`` -> the function: the longest importable module, then attributes.

    Packages other than torch are looked up only once imported (by the model's code): importing
    one here could fail, or load more than the import needs.
    """
    parts = path.split(".")
    if parts[0] != "torch" and parts[0] not in sys.modules:
        return None
    for split in range(len(parts) - 1, 0, -1):
        try:
            value = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for part in parts[split:]:
            value = getattr(value, part, None)
            if value is None:
                return None
        return value
    return None


class _Converter(SourceWalker):
    """The walker: runs the traced graph node by node, dispatching to the families' handlers.

    Its public methods and attributes are what the handlers use (see ``codegen.layers.torch_source``).
    """

    unreadable = "its arguments could not be read"
    batch_size = BATCH  # the traced shapes' batch: a reshape that folds it is read at this size

    def __init__(
        self, traced, builder: GraphBuilder, input_shapes: list[tuple[int, ...]], fixed: int = 0
    ) -> None:
        super().__init__(builder)
        self.torch = import_torch()
        self.traced = traced
        self.input_shapes = input_shapes
        self.fixed = fixed  # the last placeholders: arguments traced as their defaults (constants)
        # self.values: fx node -> Tensor, numpy array (a constant), Aux, Multi, Padded or BROKEN
        # self.shapes: fx node -> its traced shape (ShapeProp), batch included
        self.module_calls: dict[str, int] = {}

    # ----- running ------------------------------------------------------------------

    def run(self) -> None:
        placeholders = [node for node in self.traced.graph.nodes if node.op == "placeholder"]
        placeholders, fixed = (
            placeholders[: len(placeholders) - self.fixed],
            placeholders[len(placeholders) - self.fixed :],
        )
        for node in fixed:  # the default fx recorded for it
            self.values[node] = node.args[0] if node.args else None
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
                _propagate(ShapeProp, self.traced, examples)
        except Exception as error:
            shapes = ", ".join(str(shape) for shape in self.input_shapes)
            raise InteropError(
                f"the model fails on a batch of input shape(s) {shapes} (channels-first, batch excluded): "
                f"{type(error).__name__}: {error}"
            ) from None
        for node in self.traced.graph.nodes:
            meta = node.meta.get("tensor_meta")
            if meta is not None and hasattr(meta, "shape"):
                self.shapes[node] = tuple(meta.shape)

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
        if node in self.values:  # an argument traced as a constant
            return
        if node.op == "placeholder":
            self._input(node)
            return
        if node.op == "output":
            self._outputs(node.args[0])
            return
        name = self._name(node)
        if self._computes_a_constant(node):
            self.values[node] = self.convert(name, self.source_kind(node), lambda: self._constant(node, name))
            return
        self.values[node] = self.convert_node(node, name, lambda: self._dispatch(node, name))

    # ----- constants the model computes -------------------------------------------------

    def _computes_a_constant(self, node) -> bool:
        """A call on constants only (a position embedding computed from ``torch.arange``, a mask
        from ``torch.zeros``), none made from the batch size: evaluated at import, as the ONNX
        importer folds them, where no handler takes it."""
        if node.op not in ("call_function", "call_method", "call_module") or not node.all_input_nodes:
            return False
        if node.op == "call_module":
            target = type(self.module(node)).__name__.lower()
        else:
            target = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")
        if any(word in target for word in _NOT_FOLDED):
            return False
        values = [self.values.get(arg, BROKEN) for arg in node.all_input_nodes]
        return all(value is not BROKEN and _is_constant(value) for value in values)

    def _constant(self, node, name: str):
        """The handler's value where one takes these constants (a parameter reshaped, a table read
        at indices, sizes); else the call evaluated."""
        if self.kind_problem(node) is None:
            try:
                return self._dispatch(node, name)
            except AlreadyReported:
                raise
            except Unsupported:
                if self._from_batch(node):
                    raise
        return self._fold(node)

    def _from_batch(self, node) -> bool:
        return any(holds_batch(self.values[arg]) for arg in node.all_input_nodes)

    def _fold(self, node):
        if self._from_batch(node):
            raise Unsupported(
                "computes a constant from the batch size (x.shape[0]); the catalog's constants are the "
                "same for every batch size"
            )
        torch = self.torch

        def real(value):
            if isinstance(value, Aux):
                return value.value
            if isinstance(value, np.ndarray):
                return torch.from_numpy(value.copy())
            if isinstance(value, (list, tuple)):
                return type(value)(real(item) for item in value)
            return value

        args = real(self.value(node.args))
        kwargs = {key: real(self.value(item)) for key, item in node.kwargs.items()}
        try:
            with torch.no_grad():
                if node.op == "call_method":
                    result = getattr(args[0], node.target)(*args[1:], **kwargs)
                elif node.op == "call_module":
                    result = self.module(node)(*args, **kwargs)
                else:
                    result = node.target(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - the model's own code, on its own constants
            raise Unsupported(
                f"computing it from its constants failed: {type(error).__name__}: {error}"
            ) from None
        module = self.module(node) if node.op == "call_module" else None
        if any(is_learned(self, arg) for arg in node.all_input_nodes) or (
            module is not None and any(p.requires_grad for p in module.parameters())
        ):
            self.builder.note(FOLDED_PARAMETER_NOTE)
        return _plain_result(torch, result)

    def _name(self, node) -> str:
        """A module's path (``layer1.0.conv1``); a function call inside a module: ``layer1.0.add``."""
        if node.op == "call_module":
            return str(node.target)
        base = re.sub(r"_\d+$", "", node.name)
        stack = node.meta.get("nn_module_stack") or {}
        scope = next(reversed(stack.values()), ("",))[0] if stack else ""
        return f"{scope}.{base}" if scope else base

    def source_kind(self, node) -> str:
        """How the node is named in messages and as a layer's source: ``Conv2d``, ``F.relu``, ``Tensor.view``."""
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

    def kind_problem(self, node) -> str | None:
        """A module class, function or tensor method no family handles (known before any argument)."""
        if node.op == "get_attr":
            return None
        if node.op == "call_module":
            module = self.module(node)
            kind = type(module).__name__
            if kind in LOWERINGS.torch_modules or qualified_class(module) in LOWERINGS.torch_leaves:
                return None
            return f"nn.{kind} has no catalog equivalent"
        if node.op == "call_function":
            return None if function_handler(node.target) else "this function has no catalog equivalent"
        if node.op == "call_method":
            if node.target in LOWERINGS.torch_methods:
                return None
            return f"the tensor method .{node.target}() has no catalog equivalent"
        return f"a {node.op} node"

    def _dispatch(self, node, name: str):
        """The node's value, by its handler (``kind_problem`` found one); Broken if an argument is."""
        if node.op == "get_attr":
            return self._get_attr(node)
        if node.op == "call_module":
            module = self.module(node)
            self._count_call(node, module)
            handler = (
                LOWERINGS.torch_leaves.get(qualified_class(module))
                or LOWERINGS.torch_modules[type(module).__name__]
            )
            call = functools.partial(handler, self, node, module, name)
        elif node.op == "call_function":
            handler = function_handler(node.target)
            call = functools.partial(handler, self, node, name)
        else:
            handler = LOWERINGS.torch_methods[node.target]
            call = functools.partial(handler, self, node, name)
        folded = [arg for arg in node.all_input_nodes if isinstance(self.values.get(arg), Folded)]
        count = (
            view_axes(handler, self, node, [resolve(self.value(a)) for a in node.args]) if folded else None
        )
        if count is None:
            return call()
        return self._on_views(node, folded, count, call, name, getattr(handler, "view_channels", False))

    def _on_views(self, node, folded: list, count: int, call, name: str, channels: bool):
        """Runs ``call`` with its tensors whose batch is folded replaced by views of their last
        ``count`` axes (``codegen.layers.folded``), and folds its result as they were."""
        held = {arg: self.values[arg] for arg in folded}

        def on(views):
            self.values.update(zip(folded, views, strict=True))
            try:
                return call()
            finally:
                self.values.update(held)

        _, result = through_view(
            self.graph, list(held.values()), count, on, name, self.source_kind(node), channels
        )
        return result

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
        self.add_input(node, node.target, keras_shape, dtype, form)

    def _feeds_channels_first(self, node) -> bool:
        nn = self.torch.nn
        kinds = (nn.Conv1d, nn.MaxPool1d, nn.AvgPool1d, nn.BatchNorm1d, nn.AdaptiveAvgPool1d, nn.ZeroPad1d)
        return any(user.op == "call_module" and isinstance(self.module(user), kinds) for user in node.users)

    def _outputs(self, value) -> None:
        items = list(value) if isinstance(value, (tuple, list)) else [value]
        for index, item in enumerate(items):
            self.add_output(f"output {index + 1}" if len(items) > 1 else "output", item)

    def output_tensor(self, key) -> Tensor:
        return self.tensor(key)

    # ----- argument access ------------------------------------------------------------

    def value(self, arg):
        """The converted value of an fx argument (nodes resolved, literals kept)."""
        fx = self.torch.fx
        if isinstance(arg, fx.Node):
            return super().value(arg)  # Broken where its producer failed
        if isinstance(arg, (list, tuple)):
            return type(arg)(self.value(item) for item in arg)
        if isinstance(arg, slice):  # x[:, :h] with h a traced size
            return slice(*(_plain(self.value(part)) for part in (arg.start, arg.stop, arg.step)))
        return arg

    def tensor(self, arg) -> Tensor:
        value = self.value(arg)
        value = resolve(value)  # a part of a layer's outputs, a padding not taken by a window
        if not isinstance(value, Tensor):
            raise Unsupported(f"expects a tensor computed from the inputs, received {describe(value)}")
        return value

    def argument(self, node, index: int, name: str, default: Any = None) -> Any:
        if index < len(node.args):
            return node.args[index]
        return node.kwargs.get(name, default)

    def literal(self, node, index: int, name: str, default: Any = None) -> Any:
        return _plain(self.value(self.argument(node, index, name, default)))

    def out_shape(self, node) -> tuple[int, ...]:
        shape = self.shapes.get(node)
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


# Calls never evaluated at import: random or uninitialised values.
_NOT_FOLDED = ("rand", "normal", "bernoulli", "dropout", "multinomial", "empty", "poisson", "uniform")

FOLDED_PARAMETER_NOTE = (
    "A value the model computes from its parameters alone is evaluated at import and becomes a "
    "weight of its own: inference is unchanged, but in training it learns apart from them."
)


def _is_constant(value) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_is_constant(item) for item in value)
    return value is None or isinstance(value, (np.ndarray, Aux, int, float, bool, str))


def _plain_result(torch, result):
    """A call's result on constants: arrays for tensors (a tuple of them stays a tuple), sizes and
    other values as :class:`Aux`."""
    if isinstance(result, torch.Tensor):
        return result.detach().cpu().numpy()
    if isinstance(result, (tuple, list)) and any(isinstance(item, torch.Tensor) for item in result):
        return tuple(_plain_result(torch, item) for item in result)
    return Aux(result)


def _plain(value):
    """Sizes read from traced shapes (:class:`Aux`) as plain values, also inside lists and tuples."""
    if isinstance(value, Aux):
        return value.value
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    return value


FAKE_SHAPES_FROM = 1_000_000  # parameters: from here, shapes are found on fake tensors


def _propagate(shape_prop, traced, examples) -> None:
    """Record every node's shape by running the model on ``examples``.

    A large model runs on fake tensors (shapes only, no arithmetic, the parameters described,
    not copied): a ResNet-50 at 224 x 224 takes 0.6 s of CPU instead of 2.7 s, and no memory for
    activations. Fake tensors cost about 0.85 s of CPU to load once per process, more than a
    small model's real run; a model that fake tensors cannot run falls back to the real run.
    """
    if sum(parameter.numel() for parameter in traced.parameters()) < FAKE_SHAPES_FROM:
        shape_prop(traced).propagate(*examples)
        return
    from torch._subclasses.fake_tensor import FakeTensorMode

    try:
        mode = FakeTensorMode(allow_non_fake_inputs=True)
        fakes = [mode.from_tensor(example) for example in examples]
        propagation = shape_prop(traced)  # made outside the mode, or it copies the whole model to fake
        with mode, contextlib.redirect_stderr(io.StringIO()):  # ShapeProp prints a failure's traceback
            propagation.propagate(*fakes)
    except Exception:  # noqa: BLE001 - the real run below reports what is wrong
        shape_prop(traced).propagate(*examples)
