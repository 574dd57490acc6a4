"""The layer catalog: one spec per layer kind, grouped by family (one file each)."""

from __future__ import annotations

from studio.catalog import attention, convolution, core, merging, normalization, pooling, recurrent, reshaping
from studio.catalog.base import (
    FlopCount,
    LayerSpec,
    ParamCount,
    Registry,
    Shape,
    ShapeError,
    UnknownKindError,
    format_shape,
    format_shape_in_layout,
    to_channels_first,
)
from studio.catalog.params import ParamError

FAMILIES = (core, convolution, pooling, normalization, recurrent, attention, merging, reshaping)


def create_registry() -> Registry:
    """A new registry holding every built-in layer kind."""
    return Registry([spec for family in FAMILIES for spec in family.SPECS])


# The built-in catalog. It is never mutated; code that needs a custom set of
# kinds builds its own Registry and passes it in.
CATALOG = create_registry()

__all__ = [
    "CATALOG",
    "FlopCount",
    "LayerSpec",
    "ParamCount",
    "ParamError",
    "Registry",
    "Shape",
    "ShapeError",
    "UnknownKindError",
    "create_registry",
    "format_shape",
    "format_shape_in_layout",
    "to_channels_first",
]
