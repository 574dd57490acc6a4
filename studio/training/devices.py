"""Which devices can train, and which one a run's ``device`` setting means in each framework.

:func:`detect_devices` asks a short-lived subprocess (importing torch and
TensorFlow takes seconds and memory that the GUI should not pay) and caches
the answer; :class:`DeviceProbe` does the same without blocking, for a GUI
that polls. :func:`resolve_device` is pure: the training process calls it
with what its own framework sees.

Device ids: ``cpu``; ``cuda:N`` (PyTorch, NVIDIA/ROCm); ``mps`` (PyTorch,
Apple); ``gpu:N`` (TensorFlow). Settings: ``auto``, ``cpu``, ``gpu`` (the
first GPU), ``cuda``, ``cuda:N``, ``gpu:N``, ``mps``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass

DETECT_TIMEOUT = 120.0  # seconds; importing both frameworks on a cold disk is slow


class DeviceError(ValueError):
    """The requested device is not available; the message says what the framework sees."""


@dataclass(frozen=True)
class Device:
    id: str  # "cpu", "cuda:0", "mps", "gpu:0"
    name: str  # e.g. "NVIDIA H100 80GB HBM3"
    framework: str  # "pytorch", "keras", or "both" (the CPU)

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


CPU = Device("cpu", "CPU", "both")
_cache: list[Device] | None = None


def detect_devices(refresh: bool = False, timeout: float = DETECT_TIMEOUT) -> list[Device]:
    """CPU, each CUDA device (PyTorch), Apple MPS (PyTorch) and each TensorFlow GPU. Blocks; cached."""
    global _cache
    if _cache is None or refresh:
        probe = DeviceProbe()
        _cache = probe.wait(timeout)
    return list(_cache)


class DeviceProbe:
    """Detect devices in a subprocess; ``poll()`` returns None until the answer is there."""

    def __init__(self) -> None:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "studio.training.devices"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self._result: list[Device] | None = None

    def poll(self) -> list[Device] | None:
        if self._result is None and self._process.poll() is not None:
            self._result = _parse(self._process.stdout.read() if self._process.stdout else b"")
            self._close()
        return self._result

    def wait(self, timeout: float = DETECT_TIMEOUT) -> list[Device]:
        try:
            output, _ = self._process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.communicate()
            output = b""
        self._result = _parse(output)
        self._close()
        return self._result

    def _close(self) -> None:
        global _cache
        if self._process.stdout:
            self._process.stdout.close()
        _cache = self._result


def _parse(output: bytes) -> list[Device]:
    """The probe's JSON; just the CPU when the probe failed."""
    try:
        items = json.loads(output.decode("utf-8").strip().splitlines()[-1])
        return [Device(**item) for item in items]
    except (ValueError, IndexError, TypeError):
        return [CPU]


def torch_devices(torch) -> list[Device]:
    devices = [CPU]
    if torch.cuda.is_available():
        devices += [
            Device(f"cuda:{i}", torch.cuda.get_device_name(i), "pytorch")
            for i in range(torch.cuda.device_count())
        ]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append(Device("mps", "Apple GPU (Metal)", "pytorch"))
    return devices


def tensorflow_devices(tf) -> list[Device]:
    devices = [CPU]
    for index, physical in enumerate(tf.config.list_physical_devices("GPU")):
        try:
            name = tf.config.experimental.get_device_details(physical).get("device_name", "GPU")
        except (ValueError, RuntimeError):
            name = "GPU"
        devices.append(Device(f"gpu:{index}", name, "keras"))
    return devices


def resolve_device(requested: str, framework: str, devices: list[Device]) -> str:
    """The device id a framework should use for the ``requested`` setting; DeviceError if absent."""
    if framework == "pytorch":
        return _resolve_torch(requested, devices)
    if framework == "keras":
        return _resolve_tensorflow(requested, devices)
    raise ValueError(f"unknown framework {framework!r}")


def _resolve_torch(requested: str, devices: list[Device]) -> str:
    cuda = [d.id for d in devices if d.id.startswith("cuda:")]
    mps = any(d.id == "mps" for d in devices)
    if requested == "cpu":
        return "cpu"
    if requested == "auto":
        return cuda[0] if cuda else "mps" if mps else "cpu"
    if requested in ("gpu", "cuda", "gpu:0") and (cuda or (requested != "cuda" and mps)):
        return cuda[0] if cuda else "mps"
    if requested == "mps":
        if mps:
            return "mps"
        raise DeviceError("mps is not available: PyTorch sees no Apple GPU (Metal)")
    kind, _, index = requested.partition(":")
    wanted = f"cuda:{index or 0}"
    if wanted in cuda:
        return wanted
    if not cuda:
        raise DeviceError(f"{requested} is not available: PyTorch sees no CUDA device")
    count = len(cuda)
    raise DeviceError(
        f"{requested} is not available: PyTorch sees {count} CUDA device{'s' if count > 1 else ''} "
        f"({', '.join(cuda)})"
    )


def _resolve_tensorflow(requested: str, devices: list[Device]) -> str:
    gpus = [d.id for d in devices if d.id.startswith("gpu:")]
    if requested == "cpu":
        return "cpu"
    if requested == "auto":
        return gpus[0] if gpus else "cpu"
    if not gpus:
        hint = " (mps is PyTorch's name for Apple GPUs)" if requested == "mps" else ""
        raise DeviceError(f"no GPU is visible to TensorFlow{hint}")
    if requested in ("gpu", "cuda", "mps"):
        return gpus[0]
    wanted = f"gpu:{requested.partition(':')[2]}"
    if wanted in gpus:
        return wanted
    count = len(gpus)
    raise DeviceError(
        f"{requested} is not available: TensorFlow sees {count} GPU{'s' if count > 1 else ''} ({', '.join(gpus)})"
    )


def _probe() -> list[Device]:
    devices: dict[str, Device] = {"cpu": CPU}
    try:
        import torch

        devices.update({d.id: d for d in torch_devices(torch)})
    except Exception:  # noqa: BLE001 - a broken install just shows fewer devices
        pass
    try:
        import tensorflow as tf

        devices.update({d.id: d for d in tensorflow_devices(tf)})
    except Exception:  # noqa: BLE001
        pass
    return list(devices.values())


if __name__ == "__main__":
    print(json.dumps([device.to_dict() for device in _probe()]))
    sys.stdout.flush()
