"""Import torchvision on our CPU-only torch, for the real-architecture tests.

The trick (defining the ``nms``/``qnms`` schemas that torchvision's Python side
expects) lives in production code, :func:`studio.interop.zoo.import_torchvision`,
since the model zoo needs it too; this module keeps the tests' import path.
"""

from __future__ import annotations

from studio.interop.zoo import import_torchvision

__all__ = ["import_torchvision"]
