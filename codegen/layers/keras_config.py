"""Reading Keras layer configs: the helpers the families' Keras import mappings share.

A mapping (``KERAS_CLASSES`` of each family) turns one Keras class + config
into catalog params; a value it cannot reproduce exactly raises
:class:`~codegen.layers.base.Unsupported` naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from codegen.layers.activations import KERAS_NAMES
from codegen.layers.base import KerasContext, Unsupported


@dataclass(frozen=True)
class KerasCall:
    """How Keras calls a layer that may take its input tensors by keyword (``query=``, ``value=``, ...).

    ``inputs`` names the call's tensor arguments in the catalog's input order;
    a trailing input equal to the one before it is the Keras default (``key``
    defaults to ``value``) and is left out. ``flags`` are call arguments that
    the catalog's kind lacks when they are true. ``options`` are call arguments
    that are the catalog's parameters of the same name (``use_causal_mask``);
    ``mask`` a keyword tensor that is the catalog's mask input, taken last
    (keras-hub's ``padding_mask``). The mapping reads both in ``context.call``.
    """

    inputs: tuple[str, ...]
    flags: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    mask: str | None = None


def activation_name(value: Any) -> str:
    """A Keras activation (a name, or its serialized form) as a catalog activation name."""
    # Serialized: Keras's own functions (module keras...), or a registered one such as keras-hub's
    # gelu_approximate (module builtins, config "keras_hub>gelu_approximate").
    if isinstance(value, Mapping) and (
        str(value.get("module", "")).startswith("keras") or value.get("registered_name") == "function"
    ):
        value = value.get("config")
    if value is None:
        return "linear"
    if not isinstance(value, str) or value not in KERAS_NAMES:
        supported = ", ".join(sorted(KERAS_NAMES))
        raise Unsupported(f"activation {value!r} has no catalog equivalent (supported: {supported})")
    return KERAS_NAMES[value]


def channels_last(cfg: Mapping[str, Any]) -> None:
    if cfg.get("data_format") not in (None, "channels_last"):
        raise Unsupported(
            f"data_format={cfg.get('data_format')!r}; the catalog is channels-last (the Keras default)"
        )


def ints(value: Any, length: int) -> tuple[int, ...]:
    """``3`` or ``[3, 3]`` -> ``(3, 3)``."""
    if isinstance(value, int):
        return (value,) * length
    return tuple(int(item) for item in value)


def one(value: Any) -> int:
    """``3`` or ``[3]`` -> ``3``."""
    return int(value[0]) if isinstance(value, (list, tuple)) else int(value)


def require(cfg: Mapping[str, Any], key: str, expected: Any, why: str) -> None:
    value = cfg.get(key, expected)
    if value != expected:
        raise Unsupported(f"{key}={value!r}: {why}")


def last_axis(axis: Any, context: KerasContext, what: str) -> None:
    """Normalization and softmax over the last axis only, as the catalog defines them."""
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    rank = context.rank
    if len(axes) == 1 and (axes[0] == -1 or (rank is not None and axes[0] == rank - 1)):
        return
    raise Unsupported(f"axis={axis!r}: the catalog's {what} works on the last (channel) axis only")


def four_sides(value: Any) -> tuple[int, int, int, int]:
    """Keras's ZeroPadding2D / Cropping2D forms -> (top, bottom, left, right)."""
    if isinstance(value, int):
        return (value,) * 4
    first, second = value
    if isinstance(first, int) and isinstance(second, int):
        return first, first, second, second
    (top, bottom), (left, right) = first, second
    return int(top), int(bottom), int(left), int(right)
