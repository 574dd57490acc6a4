"""What the families' PyTorch import handlers share: values that are not tensors, and small readers.

The handlers in each family's ``TORCH_MODULES`` / ``TORCH_FUNCTIONS`` /
``TORCH_METHODS`` take the walker (``studio.interop.torch_import``) as their
first argument and use it by duck typing:

- ``walker.torch``: the torch module (for ``isinstance`` checks);
- ``walker.graph``: the channels-first graph to add layers to (see ``SourceGraph``);
- ``walker.builder``: the project builder (``note(...)``);
- ``walker.shapes``: fx node -> its traced shape, batch included;
- ``walker.value(arg)``: an fx argument converted (a :class:`Tensor`, an
  :class:`Aux`, a :class:`Multi`, a :class:`Padded`, a literal);
  ``walker.tensor(arg)``: the same, resolved to a :class:`Tensor` or refused;
- ``walker.argument(node, index, name, default)``, ``walker.literal(...)``:
  a call's argument by position or keyword, as an fx argument or as a value;
- ``walker.out_shape(node)``: the node's output shape, batch excluded;
- ``walker.only_dense_after(node)``: every user of the node is an ``nn.Linear``;
- ``walker.source_kind(node)``: how the node is named in messages (``Conv2d``, ``F.relu``).

Handlers are ``(walker, node, module, name)`` for modules and
``(walker, node, name)`` for functions and methods; they return the node's
value or raise ``Unsupported``. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from codegen.layers.base import Tensor, Unsupported


@dataclass(frozen=True)
class Aux:
    """A non-tensor value: a size, a shape, a Python number."""

    value: Any = None


class TracedBatch(int):
    """The batch size of the tracing run, read from a shape (``x.shape[0]``), and sizes computed
    from it: a value made from it holds the batch, and is never evaluated into a constant."""


def traced_shape(shape) -> tuple:
    """A traced shape, its batch size marked."""
    return (TracedBatch(shape[0]), *shape[1:]) if shape else tuple(shape)


def holds_batch(value) -> bool:
    """True where ``value`` (also inside an Aux, a list or a tuple) holds the traced batch size."""
    if isinstance(value, Aux):
        return holds_batch(value.value)
    if isinstance(value, (list, tuple)):
        return any(holds_batch(item) for item in value)
    return isinstance(value, TracedBatch)


@dataclass(frozen=True)
class Multi:
    """A module output that is a tuple (RNN, attention); ``path`` is the indexing so far.

    The owner (each family's outputs object) has ``resolve(path) -> Tensor``,
    and may have ``concatenate(paths) -> Tensor | None`` for ``torch.cat`` of
    its parts.
    """

    owner: Any
    path: tuple = ()

    def index(self, index) -> Multi:
        """``value[index]``, as far as the catalog can express it."""
        if isinstance(index, tuple) and self.path == (0,) and _is_last_step(index):
            return Multi(self.owner, (0, "last"))
        if not isinstance(index, int):
            raise Unsupported(f"indexes a layer's outputs with {index!r}")
        return Multi(self.owner, (*self.path, index))

    def resolve(self) -> Tensor:
        """The layer output this index path stands for."""
        return self.owner.resolve(self.path)


def _is_last_step(index: tuple) -> bool:
    """``[:, -1]`` or ``[:, -1, :]``: the last step of (batch, steps, features)."""
    full = slice(None, None, None)
    return len(index) in (2, 3) and index[0] == full and index[1] == -1 and all(i == full for i in index[2:])


class Padded:
    """``F.pad(x, ...)`` with a constant, kept until its use is known.

    A convolution (zeros) or a max pooling (``-inf``) that follows folds ``pads``
    into its own padding; any other use gets the layer ``create()`` makes
    (ZeroPadding2D, made once) or its refusal.
    """

    def __init__(
        self,
        tensor: Tensor,
        pads: tuple[tuple[int, int], ...] | None,
        value: float,
        create: Callable[[], Tensor],
    ) -> None:
        self.tensor = tensor
        self.pads = pads  # (before, after) per spatial axis in the source's order; None: not all of them
        self.value = value
        self.create = create
        self._layer: Tensor | None = None

    def folds_into(self, value: float, rank: int) -> bool:
        """A window operation of ``rank`` spatial axes that pads with ``value`` can take the padding."""
        return self.value == value and self.pads is not None and len(self.pads) == rank

    def resolve(self) -> Tensor:
        if self._layer is None:
            self._layer = self.create()
        return self._layer

    def __repr__(self) -> str:
        return f"a tensor padded with {self.value}"


def fold_padding(value, pads: list[tuple[int, int]], pad_value: float) -> tuple[Tensor | None, list]:
    """A window operation's input, when it is a :class:`Padded` it can take: the unpadded tensor and
    its own ``pads`` with that padding added; else ``(None, pads)``."""
    if isinstance(value, Padded) and value.folds_into(pad_value, len(pads)):
        return value.tensor, [(a + c, b + d) for (a, b), (c, d) in zip(pads, value.pads, strict=True)]
    return None, pads


def resolve(value):
    """A :class:`Multi` or a :class:`Padded` resolved to its tensor; any other value unchanged."""
    return value.resolve() if isinstance(value, (Multi, Padded)) else value


class Pending:
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


def describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"a constant of shape {value.shape}"
    if isinstance(value, Aux):
        return f"the value {value.value!r}"
    return repr(value)


def array(tensor) -> np.ndarray | None:
    """A torch tensor (parameter, buffer) as a float32 array; None stays None."""
    return None if tensor is None else tensor.detach().cpu().numpy().astype(np.float32)


def pair(value, length: int = 2) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * length
    return tuple(int(v) for v in value)


def pair_none(value, rank: int) -> tuple:
    if value is None or isinstance(value, int):
        return (value,) * rank
    return tuple(value)


def torch_pads(padding, kernel, dilation) -> list[tuple[int, int]]:
    """PyTorch's padding argument as (before, after) per axis; 'same' puts any odd unit after."""
    if padding == "valid":
        return [(0, 0)] * len(kernel)
    if padding == "same":
        pairs = []
        for k, d in zip(kernel, dilation, strict=True):
            total = d * (k - 1)
            pairs.append((total // 2, total - total // 2))
        return pairs
    return [(int(p), int(p)) for p in pair(padding, len(kernel))]
