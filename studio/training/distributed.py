"""``studio train --processes N``: rehearse a cluster job on one machine.

The run folder gets the exported PyTorch program and the studio's own prepared
data (``data.npz``, already split, so that every process trains on exactly
what a studio run would); then torchrun starts N local processes of the
program, which share each global batch out among themselves (gloo on the
CPU) and write their checkpoint in the run folder, in the studio's format.
Rank 0 alone prints, and its lines are passed on as they come.

Keras is refused by name: Keras 3 cannot fit under MultiWorkerMirroredStrategy
(keras-team/keras#20585), which is what several Keras workers would need.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TextIO

import numpy as np

from studio.training.config import ConfigError, RunConfig
from studio.training.errors import TrainingError
from studio.training.rundir import prepare_run
from studio.training.session import prepare_session

MAX_PROCESSES = 64


def check_processes(config: RunConfig, processes: int) -> None:
    """Raise ConfigError when ``processes`` local workers cannot train ``config``."""
    if not 1 <= processes <= MAX_PROCESSES:
        raise ConfigError(f"--processes: expected 1 to {MAX_PROCESSES}. Received: {processes}")
    if config.framework != "pytorch":
        raise ConfigError(
            "--processes trains the PyTorch program under torchrun; Keras 3 cannot fit under "
            "MultiWorkerMirroredStrategy yet (keras-team/keras#20585). Use --framework pytorch"
        )
    if config.batch_size < processes:
        raise ConfigError(
            f"--batch-size is the global batch ({config.batch_size}): it needs at least one sample "
            f"for each of the {processes} processes"
        )
    if config.resume_from:
        raise ConfigError("--processes starts a new run; resume it with the exported program's --resume")


def train_processes(config: RunConfig, processes: int, out: TextIO = sys.stdout) -> int:
    """Train with ``processes`` local torchrun workers; returns torchrun's exit code."""
    check_processes(config, processes)
    config, folder = prepare_run(config)
    session = prepare_session(config)
    if len(session.plan.inputs) != 1:
        raise TrainingError("--processes trains models with one input", reason="project")
    code = session.code["pytorch"]
    script = folder.path / code.filename
    script.write_text(code.source, encoding="utf-8")
    data = session.data
    np.savez(
        folder.path / "data.npz",
        x_train=data.x_train,
        y_train=data.y_train,
        x_val=data.x_val,
        y_val=data.y_val,
    )
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={processes}",
        str(script),
        "--data",
        str(folder.path / "data.npz"),
        "--epochs",
        str(config.epochs),
        "--batch-size",
        str(config.batch_size),
        "--lr",
        repr(config.learning_rate),
        "--seed",
        str(config.seed),
        "--patience",
        str(config.early_stopping_patience),
        "--checkpoint-dir",
        str(folder.path),
        "--out",
        str(folder.weights("final", "pytorch")),
        "--device",
        "cpu" if config.device in ("auto", "cpu") else config.device,
    ]
    print(f"training with {processes} processes under torchrun in {folder.path}", file=out, flush=True)
    threads = max(1, (os.cpu_count() or 1) // processes)  # the cores shared out, none oversubscribed
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    with (
        open(folder.log, "a", encoding="utf-8") as log,
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=log, text=True, env=environment, cwd=folder.path
        ) as child,
    ):
        for line in child.stdout:
            out.write(line)
            out.flush()
    if child.returncode != 0:
        print(
            f"error: the torchrun processes ended with exit code {child.returncode}; see {folder.log}",
            file=sys.stderr,
        )
    return child.returncode
