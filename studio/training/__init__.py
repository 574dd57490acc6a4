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

import importlib

# Each public name and the module that defines it: loaded on first use (PEP 562), so that
# importing one submodule (the GUI's run_metrics) does not load the code generators.
_HOMES = {
    "CompareReport": "compare",
    "compare_frameworks": "compare",
    "FRAMEWORKS": "config",
    "ConfigError": "config",
    "RunConfig": "config",
    "Device": "devices",
    "DeviceError": "devices",
    "DeviceProbe": "devices",
    "detect_devices": "devices",
    "resolve_device": "devices",
    "TERMINAL": "messages",
    "format_message": "messages",
    "BothRun": "run",
    "TrainingRun": "run",
    "RunFolder": "rundir",
}


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"studio.training.{_HOMES[name]}"), name)


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
