"""Learning-rate schedules: one formula per schedule, written once as source text.

:func:`factor_lines` is ``learning_rate_factor(step, base_lr, steps_per_epoch,
total_steps)``: the learning rate of optimizer step ``step`` (counted from 0
over the whole run) as a fraction of the base rate. The same text goes into
the Keras program (a callback sets ``base_lr * factor`` before every batch)
and the PyTorch program (a ``LambdaLR`` over it, stepped once per batch, which
computes ``base_lr * factor`` too), and :func:`factor_function` compiles it for
the studio's checks, so the per-step sequence is the same number on both
sides (codegen/DIFFERENCES.md, learning-rate schedules).

Every program carries every schedule, so that a script's ``--lr-schedule``
flags can pick any; the project's is the default.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from codegen.runtime import load_module
from codegen.writer import py
from studio.project import TrainingSettings

ONECYCLE_RISE = 0.3  # torch.optim.lr_scheduler.OneCycleLR's pct_start
ONECYCLE_START = 25.0  # OneCycleLR's div_factor: the first rate is lr / 25

# Cosine annealing from 1 down to ``floor`` as ``progress`` goes from 0 to 1.
_COSINE = "floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))"


def is_scheduled(settings: TrainingSettings) -> bool:
    return settings.lr_schedule != "constant"


def describe(settings: TrainingSettings) -> str:
    """One line for a docstring, a help text or a run's summary."""
    name = settings.lr_schedule
    if name == "step":
        return f"step: times {settings.lr_gamma:g} every {settings.lr_step_epochs} epochs"
    floor = f"{settings.lr_min:g}"  # below the learning rate (checked) for the schedules that use it
    if name == "cosine":
        return f"cosine: from lr down to {floor} over the run"
    if name == "warmup-cosine":
        return f"warmup-cosine: linear warm-up over {settings.lr_warmup_epochs:g} epoch(s), then cosine to {floor}"
    if name == "onecycle":
        return (
            f"onecycle: from lr/{ONECYCLE_START:g} up to lr over the first {ONECYCLE_RISE:.0%} of the steps, "
            f"then down to {floor} (cosine both ways)"
        )
    return "constant"


def float_literal(value: float) -> str:
    """A float literal; a number beyond floats (valid where its schedule never reads it) is inf."""
    try:
        return py(float(value))
    except OverflowError:
        return py(math.inf)


def factor_lines(settings: TrainingSettings) -> list[str]:
    """``learning_rate_factor(...)``, the same text in both programs (needs ``import math``). Every
    schedule is there, so that a script's ``--lr-schedule`` can pick any; the keyword defaults
    are the project's."""
    defaults = {
        "schedule": py(settings.lr_schedule),
        "step_epochs": py(int(settings.lr_step_epochs)),
        "gamma": float_literal(settings.lr_gamma),
        "warmup_epochs": float_literal(settings.lr_warmup_epochs),
        "lr_min": float_literal(settings.lr_min),
    }
    return [
        "def learning_rate_factor(",
        "    step,",
        "    base_lr,",
        "    steps_per_epoch,",
        "    total_steps,",
        *(f"    {name}={value}," for name, value in defaults.items()),
        "):",
        '    """The learning rate of optimizer step `step` (from 0) as a fraction of base_lr.',
        "",
        f"    The project's schedule, the keywords' defaults: {describe(settings)}.",
        '    The Keras and the PyTorch program share this function."""',
        '    if schedule == "constant":',
        "        return 1.0",
        '    if schedule == "step":  # times gamma every step_epochs epochs',
        "        return gamma ** (step // (step_epochs * steps_per_epoch))",
        "    rise = 0  # the steps before the cosine falls",
        '    if schedule == "warmup-cosine":  # a linear warm-up',
        "        rise = min(max(round(warmup_epochs * steps_per_epoch), 0), total_steps)",
        "        if step < rise:",
        "            return (step + 1) / rise",
        '    if schedule == "onecycle":  # up from 1/25 along a half cosine, as OneCycleLR',
        f"        rise = max(round({ONECYCLE_RISE} * total_steps), 1)",
        "        if step < rise:",
        f"            start = 1 / {ONECYCLE_START:g}",
        "            return start + (1 - start) * 0.5 * (1 - math.cos(math.pi * step / rise))",
        "    # cosine annealing down to lr_min",
        "    floor = lr_min / base_lr",
        "    progress = min((step - rise) / max(total_steps - rise, 1), 1.0)",
        f"    return {_COSINE}",
    ]


def schedule_option_lines() -> list[str]:
    """``schedule_options(args)``: the schedule flags as learning_rate_factor's keywords."""
    return [
        "def schedule_options(args):",
        '    """The --lr-schedule flags, as learning_rate_factor\'s keywords."""',
        "    return {",
        '        "schedule": args.lr_schedule,',
        '        "step_epochs": args.lr_step_epochs,',
        '        "gamma": args.lr_gamma,',
        '        "warmup_epochs": args.lr_warmup_epochs,',
        '        "lr_min": args.lr_min,',
        "    }",
    ]


def keras_callback_lines() -> list[str]:
    """``PerBatchLearningRate``: sets the optimizer's learning rate before every batch."""
    return [
        "class PerBatchLearningRate(keras.callbacks.Callback):",
        '    """Sets the learning rate before every batch to base_lr * learning_rate_factor(step),',
        "    the value the PyTorch program's LambdaLR gives the same step. ``schedule``:",
        '    learning_rate_factor\'s keywords (none: the project\'s schedule)."""',
        "",
        "    def __init__(self, base_lr, steps_per_epoch, total_steps, **schedule):",
        "        super().__init__()",
        "        self.base_lr, self.total_steps = base_lr, total_steps",
        "        self.steps_per_epoch, self.schedule = steps_per_epoch, schedule",
        "        self.epoch = 0",
        "",
        "    def on_epoch_begin(self, epoch, logs=None):",
        "        self.epoch = epoch",
        "",
        "    def on_train_batch_begin(self, batch, logs=None):",
        "        step = self.epoch * self.steps_per_epoch + batch",
        "        factor = learning_rate_factor(",
        "            step, self.base_lr, self.steps_per_epoch, self.total_steps, **self.schedule",
        "        )",
        "        self.model.optimizer.learning_rate = self.base_lr * factor",
    ]


def torch_scheduler_lines() -> list[str]:
    """``make_scheduler(...)``: a LambdaLR over learning_rate_factor, stepped once per batch."""
    return [
        "def make_scheduler(",
        "    optimizer, base_lr, steps_per_epoch, total_steps, first_step=0, **schedule",
        "):",
        '    """A LambdaLR over learning_rate_factor, stepped after every batch (the Keras program sets',
        "    the same rate before every batch). first_step: the steps a resumed run has already taken;",
        '    ``schedule``: learning_rate_factor\'s keywords (none: the project\'s schedule)."""',
        "",
        "    def factor(step):",
        "        step += first_step",
        "        per_epoch, total = steps_per_epoch, total_steps",
        "        return learning_rate_factor(step, base_lr, per_epoch, total, **schedule)",
        "",
        "    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)",
    ]


def factor_function(settings: TrainingSettings) -> Callable[[int, float, int, int], float]:
    """The emitted ``learning_rate_factor`` as a function, with the project's schedule."""
    source = "\n".join(["import math", "", "", *factor_lines(settings)])
    return load_module(source, "learning_rate_schedule").learning_rate_factor


def learning_rates(
    settings: TrainingSettings, steps_per_epoch: int, epochs: int | None = None
) -> list[float]:
    """The learning rate of every step of a run with ``settings``, as both programs compute it."""
    factor = factor_function(settings)
    total = steps_per_epoch * (settings.epochs if epochs is None else epochs)
    base = settings.learning_rate
    return [base * factor(step, base, steps_per_epoch, total) for step in range(total)]
