"""What a lowering is: everything the studio knows about one layer kind beyond its catalog spec.

A :class:`Lowering` owns, for one kind, its Keras emission, its PyTorch
emission, the PyTorch layout it runs in, and the conversion of its Keras
weights to the PyTorch ``state_dict``. Each family module (``core``,
``convolution``, ...) also owns the import mappings that invert them: Keras
class + config -> params, PyTorch module / function / tensor method -> layers,
ONNX op -> layers, written next to the emission they invert.

The plan, both emitters, the weight converter and the importers are generic
walkers that ask the :class:`Lowerings` registry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from codegen.writer import py

if TYPE_CHECKING:
    from codegen.plan import LayerPlan, ModelPlan

# ----- PyTorch layouts --------------------------------------------------------------------
# Keras is channels-last throughout. In the PyTorch program a tensor is:
CL = "cl"  # channels-last: vectors (N, F), sequences (N, L, F) as RNNs, attention, Dense take them
CF = "cf"  # channels-first: images (N, C, H, W), sequences (N, C, L) for Conv1D and pooling
FLAT_CF = "flat_cf"  # torch.flatten of a channels-first tensor: features in (c, h, w) order
KEEP = "keep"  # a lowering's layout: element-wise, it runs in whatever layout its inputs share


@dataclass
class Layout:
    """How PyTorch holds one tensor. ``source`` is the pre-flatten shape of a ``flat_cf`` vector."""

    kind: str
    source: tuple[int, ...] | None = None


Arrays = list[np.ndarray]
State = dict[str, np.ndarray]


@dataclass
class KerasLayer:
    """One layer's Keras code: ``func(*args, name=...)(call)``; ``call`` None means the first input."""

    func: str  # "layers.Dense"
    args: list[str] = field(default_factory=list)
    call: str | None = None  # "([a, b])", "(query, value)"


@dataclass
class TorchCode:
    """One layer's PyTorch code: an optional module for ``__init__`` and ``forward`` steps.

    Each step is an expression assigned to the layer's variable in turn, or a
    ``(target, expression)`` pair for tuple unpacking; ``{ident}`` stands for
    the layer's variable. A step starting with ``#`` is a comment line.
    """

    module: tuple[str, list[str]] | None = None  # ("nn.Linear", ["64", "10"])
    steps: list[str | tuple[str, str]] = field(default_factory=list)
    init: list[str] = field(default_factory=list)  # statements after the module, in ``__init__``


KerasEmit = Callable[["LayerPlan", list[str]], KerasLayer]
TorchEmit = Callable[["LayerPlan", list[str]], TorchCode]
WeightConverter = Callable[["LayerPlan", Arrays, "ModelPlan"], State]
LayoutRule = Callable[["ModelPlan", "LayerPlan", set[str]], None]


@dataclass(frozen=True)
class Lowering:
    """One kind's code generation.

    ``layout`` is the PyTorch layout the kind needs its inputs in: ``CF``,
    ``CL`` or ``KEEP``. ``flat`` says how it treats a ``flat_cf`` vector:
    "pass" (element-wise, passes it on) or "consume" (Dense: the weight
    converter permutes its input columns). ``assign_layout`` overrides the
    rule altogether (Flatten).
    """

    kind: str
    keras: KerasEmit
    torch: TorchEmit
    layout: str = CL
    flat: str | None = None
    weights: WeightConverter | None = None
    assign_layout: LayoutRule | None = None
    # ``training.init = "matched"``: statements that initialise the PyTorch module as Keras does.
    keras_init: Callable[[LayerPlan], list[str]] | None = None
    # A documented reason why training curves differ between the frameworks (``studio compare``).
    training_note: str | None = None
    # A Keras layer class the program defines, where Keras has none for the kind: its source lines.
    keras_class: tuple[str, ...] = ()


@dataclass
class Mapped:
    """A Keras layer's config mapped onto the catalog: ``kind`` None is an identity."""

    kind: str | None
    params: dict[str, Any] = field(default_factory=dict)
    # Weights the config itself holds (Rescaling's per-channel lists): they replace the layer's own.
    weights: list[np.ndarray] | None = None
    # Layers that follow it, each on the one before (weightless): ``x[:, 0]`` is a Slice, then a
    # Reshape that drops the axis. The last one takes the Keras layer's name.
    then: tuple[Mapped, ...] = ()


@dataclass
class KerasContext:
    """What a Keras import mapping may need besides the config: the input shapes (batch included)."""

    shapes: list[tuple | None]
    # The call's arguments after the first tensor, as serialized (an operation's key: ``x[:, 0:4]``).
    arguments: list = field(default_factory=list)
    # The call's arguments that set parameters (``KerasCall.options``), and "padding_mask": True
    # when the call passes its mask tensor (``KerasCall.mask``), the last input.
    call: Mapping[str, Any] = field(default_factory=dict)

    @property
    def rank(self) -> int | None:
        shape = self.shapes[0] if self.shapes else None
        return None if shape is None else len(shape)


KerasMapping = Callable[[Mapping[str, Any], KerasContext], Mapped]


@dataclass(frozen=True)
class KerasPart:
    """One sublayer of a Keras composite layer (keras-hub's TransformerEncoder, say), written as
    Keras would serialize it: the importer maps it as any other layer of that class.

    ``name`` is the sublayer's own name (its weights are the composite's sublayer of that name);
    ``inputs`` names earlier parts, ``""`` being the composite's (first) input, ``"padding_mask"``
    its mask, when the call passes one, and ``"input_1"``... the further tensors of a list input.
    """

    name: str
    class_name: str
    config: dict[str, Any]
    inputs: tuple[str, ...] = ("",)
    call: dict[str, Any] = field(default_factory=dict)  # as ``KerasContext.call``


# A composite's expansion: its config and input shapes -> its sublayers in call order, the last
# one its output.
KerasComposite = Callable[[Mapping[str, Any], KerasContext], list[KerasPart]]


class Unsupported(Exception):
    """Raised inside an importer by a layer mapping: why one layer has no catalog equivalent.

    The importer catches it and records the layer as unsupported; it never escapes an import.
    """


# ----- channels-first sources (PyTorch, ONNX) ------------------------------------------------
# A source tensor is the project layer that computes it and its *form*: how the
# source's axes relate to the Keras tensor's (see ``studio.interop.channels_first``).
SAME = "same"  # the same axes in the same order (vectors, sequences)
SQUEEZED = "squeezed"  # a global pooling that kept its unit axes in the source, (N, C, 1, 1)
# CF: the Keras tensor with its channels moved to axis 1; FLAT_CF: flattened channels-first.


@dataclass(frozen=True)
class Tensor:
    layer: str
    form: str = SAME
    nonneg: bool = False  # every value >= 0 (after a ReLU): zero padding then equals -inf padding for max
    ones: int = 0  # SQUEEZED: how many unit axes the source keeps after the channels
    flat_source: tuple[int, ...] | None = None  # FLAT_CF: the Keras shape that was flattened


class Held:
    """A computed value an importer holds back until its use decides its layers (a permutation that
    moved the batch axis): never constant-folded, never a layer input as it stands."""


# The channels-first graph an importer builds into (``studio.interop.channels_first.ChannelsFirstGraph``):
# ``add(kind, name, inputs, params, weights, source_kind, form, nonneg)``, ``to_cf``, ``to_same``,
# ``as_vector``, ``keras_shape``, ``source_shape``, ``window_padding``, ``dense_kernel``.
SourceGraph = Any


class AlreadyReported(Unsupported):
    """The builder already recorded this layer's problem (invalid parameters): record nothing more."""


class Lowerings:
    """The registry: lowerings by kind, and the import mappings by what they convert.

    - ``keras_classes``: Keras class name -> mapping of its config;
    - ``keras_calls``: Keras class name -> how it takes its inputs by keyword (``keras_config.KerasCall``);
    - ``keras_composites``: Keras class name -> the expansion of a layer made of sublayers (``KerasPart``);
    - ``torch_modules``: ``nn.Module`` class name -> handler ``(walker, node, module, name)``;
    - ``torch_leaves``: a library's module, by qualified class name, that torch.fx keeps whole
      instead of tracing into -> handler ``(walker, node, module, name)``;
    - ``torch_functions``: qualified function name -> handler ``(walker, node, name)``;
    - ``torch_methods``: tensor method name -> handler ``(walker, node, name)``;
    - ``onnx_ops``: ONNX op type -> handler ``(walker, node, inputs, name, index)``.

    Duplicate keys are refused: one kind, one class, one op has one lowering.
    """

    def __init__(self, families: Iterable[Any]) -> None:
        self.kinds: dict[str, Lowering] = {}
        self.keras_classes: dict[str, KerasMapping] = {}
        self.torch_modules: dict[str, Callable] = {}
        self.torch_leaves: dict[str, Callable] = {}
        self.torch_functions: dict[str, Callable] = {}
        self.torch_methods: dict[str, Callable] = {}
        self.onnx_ops: dict[str, Callable] = {}
        self.keras_calls: dict[str, Any] = {}
        self.keras_composites: dict[str, KerasComposite] = {}
        for family in families:
            self._add(family)

    def _add(self, family: Any) -> None:
        name = family.__name__
        _merge(self.kinds, {lowering.kind: lowering for lowering in family.LOWERINGS}, name)
        tables = (
            "keras_classes",
            "keras_calls",
            "keras_composites",
            "torch_modules",
            "torch_leaves",
            "torch_functions",
            "torch_methods",
            "onnx_ops",
        )
        for table in tables:
            _merge(getattr(self, table), getattr(family, table.upper(), {}), name)

    def __getitem__(self, kind: str) -> Lowering:
        try:
            return self.kinds[kind]
        except KeyError:
            raise KeyError(f"no lowering for the layer kind {kind!r}") from None

    def __contains__(self, kind: object) -> bool:
        return kind in self.kinds


def _merge(target: dict, entries: Mapping, family: str) -> None:
    for key, value in entries.items():
        if key in target:
            raise ValueError(f"{family}: {key!r} is registered twice")
        target[key] = value


# ----- helpers shared by the family modules ---------------------------------------------------


def as_tuple(value) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def compact(value) -> str:
    """``(3, 3)`` -> ``3``, ``(3,)`` -> ``3``, ``(3, 5)`` -> ``(3, 5)``: one integer for a square window."""
    values = as_tuple(value)
    return py(values[0]) if len(set(values)) == 1 else py(values)


def torch_axis(keras_axis: int, rank: int, layout: str) -> int:
    """The torch dim of a Keras axis (batch included) for a tensor of ``rank`` non-batch axes."""
    index = keras_axis - 1 if keras_axis > 0 else rank + keras_axis  # 0-based, batch excluded
    if layout == CF and rank >= 2:
        index = 0 if index == rank - 1 else index + 1
    dim = index + 1
    return -1 if dim == rank else dim


def module_call(layer: LayerPlan, x: str) -> str:
    return f"self.{layer.ident}({x})"


def keras_activation(name: str) -> str:
    """The Keras ``activation`` value: the name as a string, or the program's own gelu_tanh
    (codegen.layers.activations.GELU_TANH_KERAS), for which Keras has no name."""
    return "gelu_tanh" if name == "gelu_tanh" else py(name)


def activation_arg(layer: LayerPlan) -> list[str]:
    """The Keras ``activation=`` argument of a layer with a fused activation."""
    name = layer.params.get("activation", "linear")
    return [] if name == "linear" else [f"activation={keras_activation(name)}"]


def use_bias_arg(layer: LayerPlan) -> list[str]:
    return [] if layer.params.get("use_bias", True) else ["use_bias=False"]


def kernel_and_bias(state_kernel: np.ndarray, weights: Arrays, bias_key: str = "bias") -> State:
    """``{"weight": kernel}`` plus the bias, when the layer has one (it is always the second array)."""
    state = {"weight": state_kernel}
    if len(weights) > 1:
        state[bias_key] = weights[1]
    return state


def glorot_uniform(target: str, kernel_shape: tuple[int, ...]) -> str:
    """``nn.init.uniform_`` with Keras's glorot_uniform limit for a Keras kernel of ``kernel_shape``.

    Keras's fans: the last two axes times the product of the others (the receptive field); the
    limit is sqrt(6 / (fan_in + fan_out)). Computed here from the Keras shape, so that it is
    Keras's limit whatever layout PyTorch keeps the weight in.
    """
    receptive = math.prod(kernel_shape[:-2]) if len(kernel_shape) > 2 else 1
    fans = (kernel_shape[-2] + kernel_shape[-1]) * receptive
    limit = f"{math.sqrt(6 / fans):.9g}"  # float32 holds no more
    return f"nn.init.uniform_({target}, -{limit}, {limit})"


def zeros(target: str) -> str:
    return f"nn.init.zeros_({target})"


def scale_literal(scale: float) -> str:
    """``1 / 255`` reads better than ``0.00392156862745098``."""
    for divisor in (255, 127.5, 256):
        if scale == 1 / divisor:
            return f"1 / {py(divisor)}"
    return py(scale)
