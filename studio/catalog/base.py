"""The layer spec: what one layer kind is, independent of any framework.

Shapes here never include the batch dimension and are channels-last, as
Keras writes them: an image is ``(height, width, channels)`` and a sequence
is ``(steps, features)``. :func:`format_shape` adds the symbolic batch
dimension for display, and :func:`to_channels_first` gives the PyTorch view.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from studio.catalog.params import MAX_INT, MAX_RANK, BoolParam, ChoiceParam, Param, ParamError

Shape = tuple[int, ...]

# The largest tensor analysis accepts: per axis, and per sample (batch excluded): 2**28
# float32 values are 1 GiB, so that `verify` and training can still hold a small batch.
MAX_AXIS = MAX_INT
MAX_ELEMENTS = 2**28
# The most weights one layer may have (1 GiB of float32): an allocation bound for
# verify, training and weight export, far above any layer designed here.
MAX_LAYER_PARAMS = 2**28
# The whole model (2 GiB of float32): room for the largest keras.applications model, ConvNeXtXLarge
# (348M weights), while verify, training and export can still hold it.
MAX_MODEL_PARAMS = 2**29


class ShapeError(ValueError):
    """The layer cannot accept its inputs. The message names the dimensions."""


@dataclass(frozen=True)
class ParamCount:
    """Weights of one layer, split as Keras `model.summary()` splits them."""

    trainable: int = 0
    non_trainable: int = 0

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable

    def __add__(self, other: ParamCount) -> ParamCount:
        return ParamCount(self.trainable + other.trainable, self.non_trainable + other.non_trainable)


@dataclass(frozen=True)
class FlopCount:
    """The work of one layer on one sample (the batch multiplies it), from the shape rules.

    ``macs`` are the multiply-accumulates of matrix products and convolutions (dense,
    convolution, attention and recurrent kernels); ``elementwise`` counts one operation per
    element for the rest: a bias add, an activation (softmax three: exp, sum, divide), a
    merge of n inputs (n - 1, plus a divide for Average), normalisation (inference form),
    a pooling window's comparisons or additions. Copies, lookups and reshapes cost nothing.
    One MAC is two FLOPs (a multiply and an add), so ``flops = 2 * macs + elementwise``.
    """

    macs: int = 0
    elementwise: int = 0

    @property
    def flops(self) -> int:
        return 2 * self.macs + self.elementwise

    def __add__(self, other: FlopCount) -> FlopCount:
        return FlopCount(self.macs + other.macs, self.elementwise + other.elementwise)


def format_shape(shape: Sequence[int] | None) -> str:
    """``(8, 8, 1)`` -> ``"(None, 8, 8, 1)"``: the batch dimension is symbolic."""
    if shape is None:
        return "?"
    return "(" + ", ".join(["None", *(str(dim) for dim in shape)]) + ")"


def to_channels_first(shape: Shape) -> Shape:
    """The PyTorch layout of a channels-last shape: channels move to axis 1.

    Vectors keep their shape; ``(steps, features)`` becomes ``(features, steps)``
    and ``(h, w, c)`` becomes ``(c, h, w)``.
    """
    if len(shape) < 2:
        return shape
    return (shape[-1], *shape[:-1])


def format_shape_in_layout(shape: Shape | None, layout: str = "channels_last") -> str:
    """A shape with its layout stated, e.g. ``(None, 1, 8, 8) channels-first``."""
    if shape is None:
        return "?"
    if layout == "channels_first":
        return f"{format_shape(to_channels_first(shape))} channels-first"
    if layout == "channels_last":
        return f"{format_shape(shape)} channels-last"
    raise ValueError(f"unknown layout {layout!r}; expected 'channels_last' or 'channels_first'")


def element_count(shape: Shape) -> int:
    return math.prod(shape)


def check_size(shape: Shape) -> None:
    """Raise ShapeError for a tensor too large for any framework (and for exact, printable sizes)."""
    if len(shape) > MAX_RANK:
        raise ShapeError(
            f"would produce {len(shape)} axes besides the batch; at most {MAX_RANK} are supported"
        )
    if any(dim > MAX_AXIS for dim in shape):
        longest = max(shape)
        raise ShapeError(
            f"would produce an axis of length {longest:,}; the longest supported is {MAX_AXIS:,}"
        )
    if element_count(shape) > MAX_ELEMENTS:
        raise ShapeError(
            f"would produce samples of more than {MAX_ELEMENTS:,} elements each "
            f"({len(shape)} axes of up to {max(shape):,}); the limit keeps a batch within memory"
        )


def check_param_count(count: ParamCount) -> None:
    """Raise ShapeError for a layer with more weights than MAX_LAYER_PARAMS."""
    if count.total > MAX_LAYER_PARAMS:
        raise ShapeError(
            f"would have {count.total:,} weights; one layer may have at most {MAX_LAYER_PARAMS:,}"
        )


def conv_output_length(length: int, kernel: int, stride: int, padding: str, dilation: int = 1) -> int:
    """Keras's output length of a convolution or pooling window along one axis."""
    if padding in ("same", "causal"):
        return -(-length // stride)  # ceil(length / stride) in integers: exact for any size
    effective = (kernel - 1) * dilation + 1
    return (length - effective) // stride + 1


# Activation functions shared by Activation and the fused `activation` parameter
# of Dense, Conv and friends. Each has the same meaning in both frameworks; the
# ones with differing defaults (leaky_relu slope, gelu approximation) are fixed
# in the spec so that Keras and PyTorch compute the same function.
ACTIVATIONS = (
    "linear",
    "relu",
    "relu6",
    "leaky_relu",
    "elu",
    "gelu",
    "gelu_tanh",  # GELU's tanh approximation (torch approximate="tanh", Keras approximate=True)
    "silu",
    "sigmoid",
    "tanh",
    "softmax",
    "softplus",
    "hard_sigmoid",
    # Added for real models (issue 13): each is one formula in both frameworks.
    "hard_silu",
    "selu",
    "celu",
    "mish",
    "softsign",
    "log_sigmoid",
    "hard_tanh",
    "tanh_shrink",
    "hard_shrink",
    "soft_shrink",
    "log_softmax",
)


def activation_param(default: str = "linear") -> ChoiceParam:
    return ChoiceParam(
        "activation",
        default,
        "Activation applied to the output ('linear' is none; leaky_relu uses slope 0.2, gelu is exact, "
        "gelu_tanh its tanh approximation).",
        choices=ACTIVATIONS,
    )


def activation_flops(activation: str, elements: int) -> int:
    """Element-wise operations of an activation over ``elements`` values (see FlopCount)."""
    if activation == "linear":
        return 0
    return 3 * elements if activation == "softmax" else elements


def affine_flops(params: Mapping[str, Any], output: Shape) -> int:
    """The bias add and the fused activation of a Dense or convolution layer's output."""
    elements = element_count(output)
    return (elements if params["use_bias"] else 0) + activation_flops(params["activation"], elements)


def use_bias_param() -> BoolParam:
    return BoolParam("use_bias", True, "Whether the layer adds a learned bias.")


class LayerSpec:
    """One layer kind. Subclasses set the class attributes and the two rules.

    ``output_shape``, ``count_params`` and ``count_flops`` are pure: they take the layer's
    validated parameters and its input shapes (channels-last, without the
    batch dimension) and return a value, or raise :class:`ShapeError`.
    """

    key: ClassVar[str]
    category: ClassVar[str]
    doc: ClassVar[str]
    params: ClassVar[tuple[Param, ...]] = ()
    min_inputs: ClassVar[int] = 1
    max_inputs: ClassVar[int | None] = 1  # None: any number (merges)
    # Names used for the ports in the UI, e.g. ("query", "value", "key").
    input_names: ClassVar[tuple[str, ...]] = ()
    # True for kinds that take integer token ids (int32) rather than float values.
    takes_token_ids: ClassVar[bool] = False

    @property
    def is_source(self) -> bool:
        """True for kinds that take no input (the model's Input)."""
        return self.max_inputs == 0

    @property
    def default_name(self) -> str:
        """Keras-style snake-case base name: ``Conv2D`` -> ``conv2d``."""
        return _snake_case(self.key)

    def param(self, name: str) -> Param:
        for param in self.params:
            if param.name == name:
                return param
        raise KeyError(f"{self.key} has no parameter {name!r}")

    def defaults(self) -> dict[str, Any]:
        return {param.name: param.validate(param.default) for param in self.params}

    def validate_params(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Validate a (possibly partial) parameter dict, filling in defaults.

        Raises ParamError for an unknown name or a bad value, then calls
        :meth:`check_params` for rules that involve several parameters.
        """
        known = {param.name for param in self.params}
        unknown = sorted(set(values) - known)
        if unknown:
            allowed = ", ".join(sorted(known)) or "none"
            raise ParamError(f"{self.key} has no parameter {unknown[0]!r} (its parameters: {allowed})")
        clean = {}
        for param in self.params:
            raw = values.get(param.name, param.default)
            clean[param.name] = param.validate(raw)
        self.check_params(clean)
        return clean

    def params_to_json(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {param.name: param.to_json(values[param.name]) for param in self.params}

    def check_params(self, values: Mapping[str, Any]) -> None:
        """Rules across parameters; raise ParamError. Default: none."""

    def input_ports(self, params: Mapping[str, Any]) -> int | None:
        """The ports the canvas shows for these parameters; None: as many as connected, plus one."""
        return self.max_inputs

    def mask_input(self, params: Mapping[str, Any], count: int) -> int | None:
        """The index of an input that takes a mask (int32 or float32, nonzero means keep), if any."""
        return None

    def accepts_input_count(self, count: int) -> bool:
        return count >= self.min_inputs and (self.max_inputs is None or count <= self.max_inputs)

    def output_shape(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> Shape:
        raise NotImplementedError

    def count_params(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> ParamCount:
        """The Keras count: trainable weights, and non-trainable ones (BN statistics)."""
        return ParamCount()

    def count_torch_params(self, params: Mapping[str, Any], inputs: Sequence[Shape]) -> ParamCount:
        """The PyTorch count: ``parameters()``, and buffers other than ``num_batches_tracked``.

        Equal to the Keras count except where the frameworks differ by design
        (the second RNN bias of torch); such kinds override this and explain why.
        """
        return self.count_params(params, inputs)

    def count_flops(self, params: Mapping[str, Any], inputs: Sequence[Shape], output: Shape) -> FlopCount:
        """The work of one sample's forward pass (see FlopCount). Default: none (data movement)."""
        return FlopCount()

    def summary(self) -> str:
        """The doc and the defaults, for tooltips and `--help`."""
        lines = [f"{self.key}: {self.doc}"]
        for param in self.params:
            lines.append(f"  {param.name} = {param.default!r}: {param.doc}")
        return "\n".join(lines)


def _snake_case(key: str) -> str:
    """Keras's naming rule: ``Conv2DTranspose`` -> ``conv2d_transpose``, ``SimpleRNN`` -> ``simple_rnn``."""
    words = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", key)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", words).lower()


def expect_rank(inputs: Sequence[Shape], rank: int, what: str) -> Shape:
    """The single input, checked to have ``rank`` axes besides the batch."""
    shape = inputs[0]
    if len(shape) != rank:
        raise ShapeError(
            f"expects a {what} input of rank {rank + 1} (batch included) but received {format_shape(shape)}"
        )
    return shape


class Registry:
    """Maps stable string keys to layer specs, refusing duplicates.

    Pass it around (the graph, the project loader and the emitters take one)
    rather than reaching for hidden global state.
    """

    def __init__(self, specs: Sequence[LayerSpec] = ()) -> None:
        self._specs: dict[str, LayerSpec] = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec: LayerSpec) -> None:
        if spec.key in self._specs:
            raise ValueError(f"layer kind {spec.key!r} is already registered")
        self._specs[spec.key] = spec

    def get(self, key: str) -> LayerSpec:
        try:
            return self._specs[key]
        except KeyError:
            raise UnknownKindError(key, list(self._specs)) from None

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._specs  # an unhashable key is simply not a kind

    def __iter__(self):
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def keys(self) -> list[str]:
        return list(self._specs)

    def by_category(self) -> dict[str, list[LayerSpec]]:
        groups: dict[str, list[LayerSpec]] = {}
        for spec in self._specs.values():
            groups.setdefault(spec.category, []).append(spec)
        return groups


class UnknownKindError(KeyError):
    """A layer kind that the registry does not know, with close matches."""

    def __init__(self, key: str, known: list[str]) -> None:
        import difflib

        self.key = key
        close = difflib.get_close_matches(str(key), known, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        self.message = f"unknown layer kind {key!r}.{hint}"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message
