"""The "same start": the weights Keras initialises from a run's seed, converted for PyTorch.

A PyTorch run that should start where the Keras run starts (compare, and
training both side by side) gets them from a short-lived subprocess

    python -m studio.training.initial RUN_DIR/config.json OUT.npz

so that the PyTorch training process never imports TensorFlow (its memory
figures stay its own). The Keras run builds the same weights itself:
``keras.utils.set_random_seed(seed)`` then the generated ``build_model()``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from studio.training.errors import TrainingError
from studio.training.rundir import RunFolder, atomic_target

INITIAL = "initial_weights.npz"
TIMEOUT = 600.0


def keras_initial_state(folder: RunFolder) -> dict[str, np.ndarray]:
    """The converted initial state for the run in ``folder`` (its config.json says project and seed)."""
    path = folder.path / INITIAL
    if not path.exists():
        _make_in_subprocess(folder.config, path)
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def _make_in_subprocess(config_path: Path, out: Path) -> None:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "studio.training.initial", str(config_path), str(out)],
            capture_output=True,
            text=True,
            env=env,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise TrainingError("making the Keras initial weights took too long") from None
    if result.returncode != 0 or not out.exists():
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        raise TrainingError(
            "could not make the Keras initial weights for the same start: "
            + (lines[-1] if lines else "no output")
        )


def make_initial_state(config_path: str | os.PathLike, out: str | os.PathLike) -> None:
    """Build the Keras model from the seed, convert its weights, and save them as a .npz."""
    from codegen.weights import keras_to_torch_state
    from studio.training.config import RunConfig
    from studio.training.keras_engine import build_keras_model, import_keras
    from studio.training.session import generate_code, read_project

    config = RunConfig.from_json(Path(config_path).read_text(encoding="utf-8"))
    project = read_project(config)
    code = generate_code(project)
    keras, _ = import_keras()
    model = build_keras_model(keras, code["keras"], config.seed)
    plan = code["keras"].plan
    weights = {
        layer.ident: model.get_layer(layer.ident).get_weights()
        for layer in plan.layers
        if not layer.spec.is_source
    }
    state = keras_to_torch_state(plan, weights)
    with atomic_target(Path(out)) as temp:
        np.savez(temp, **{key: np.ascontiguousarray(value) for key, value in state.items()})


if __name__ == "__main__":
    make_initial_state(sys.argv[1], sys.argv[2])
