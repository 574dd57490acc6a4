"""Peak memory of the training process (psutil is not a dependency: the resource module suffices)."""

from __future__ import annotations

import sys


def peak_rss_mb() -> float | None:
    """The process's peak resident memory in MiB (None where the resource module is missing)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return round(peak / scale, 1)


def torch_gpu_peak_mb(torch, device: str) -> float | None:
    if device.startswith("cuda"):
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    if device == "mps" and hasattr(torch, "mps"):
        return round(torch.mps.driver_allocated_memory() / 2**20, 1)
    return None


def tensorflow_gpu_peak_mb(tf, device: str) -> float | None:
    if not device.startswith("gpu"):
        return None
    try:
        info = tf.config.experimental.get_memory_info(device.upper())
    except (ValueError, RuntimeError):
        return None
    return round(info["peak"] / 2**20, 1)
