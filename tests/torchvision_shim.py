"""Import torchvision on our CPU-only torch, for the real-architecture tests.

The registry's torchvision wheel links a CUDA build of libtorch, so its compiled
extension (``torchvision::nms`` and the other detection ops) cannot load next to
the CPU torch that we pin. Python-side, torchvision then still registers fake
(meta) kernels for ``nms`` and ``qnms`` unconditionally, and that fails because
the ops were never defined. Classification models never call these ops, so
defining their schemas (with no kernel) before the first ``import torchvision``
is enough; calling one of them still fails loudly.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# The schemas that torchvision/_meta_registrations.py attaches fake kernels to
# without checking whether its extension loaded.
_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_library = None


def import_torchvision() -> ModuleType:
    """Return the torchvision module, defining the missing op schemas first if needed."""
    global _library
    import torch

    if _library is None and not hasattr(torch.ops.torchvision, "nms"):
        _library = torch.library.Library("torchvision", "DEF")
        for schema in _SCHEMAS:
            _library.define(schema)
    return importlib.import_module("torchvision")
