"""The training engine: train a project's generated model in Keras or PyTorch, in a child process.

    from studio.training import RunConfig, TrainingRun
    config = RunConfig.from_project("mlp.layers.json", "pytorch", epochs=5)
    run = TrainingRun(config)
    run.start()
    ...  # run.poll() -> new messages (see studio.training.messages), run.stop()

What is trained is exactly what is exported: the training process builds the
model from the generated source (codegen.generate). Importing this package
is cheap: torch, TensorFlow and Keras are imported only in the training
process (and by the device probe's subprocess).
"""

from studio.training.compare import CompareReport, compare_frameworks
from studio.training.config import FRAMEWORKS, ConfigError, RunConfig
from studio.training.devices import Device, DeviceError, DeviceProbe, detect_devices, resolve_device
from studio.training.messages import TERMINAL, format_message
from studio.training.run import BothRun, TrainingRun
from studio.training.rundir import RunFolder

__all__ = [
    "FRAMEWORKS",
    "TERMINAL",
    "BothRun",
    "CompareReport",
    "ConfigError",
    "Device",
    "DeviceError",
    "DeviceProbe",
    "RunConfig",
    "RunFolder",
    "TrainingRun",
    "compare_frameworks",
    "detect_devices",
    "format_message",
    "resolve_device",
]
