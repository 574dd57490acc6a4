"""One lowering per layer family: all that code generation and import know about a kind.

See :mod:`codegen.layers.base` for what a lowering is. ``LOWERINGS`` is the
built-in registry; it is never mutated.
"""

from __future__ import annotations

from codegen.layers import attention, convolution, core, merging, normalization, pooling, recurrent, reshaping
from codegen.layers.base import Lowering, Lowerings

FAMILIES = (core, convolution, pooling, normalization, recurrent, attention, merging, reshaping)

LOWERINGS = Lowerings(FAMILIES)

__all__ = ["FAMILIES", "LOWERINGS", "Lowering", "Lowerings"]
