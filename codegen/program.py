"""Whole generated programs: header, imports, the model, data loading and a training entry point.

Each file runs on its own: ``python model_keras.py --epochs 5`` trains with
Keras ``fit``; ``python model_torch.py --epochs 5`` trains with a plain
PyTorch loop over a DataLoader. ``--data FILE.npz`` (arrays ``x`` and ``y``)
replaces the project's built-in dataset.
"""

from __future__ import annotations

import math

from codegen.keras_emitter import emit_build_model, emit_layer_classes
from codegen.plan import CF, ModelPlan
from codegen.recipes import (
    SCHEDULED_OPTIMIZERS,
    keras_loss_source,
    keras_optimizer_lines,
    torch_loss_source,
    torch_optimizer_lines,
)
from codegen.schedules import (
    factor_lines,
    float_literal,
    is_scheduled,
    keras_callback_lines,
    schedule_option_lines,
    torch_scheduler_lines,
)
from codegen.script_parts import (
    EPOCH_ORDER,
    EPOCH_REPORT,
    PROGRESS,
    READ_DATA,
    TENSORBOARD_SCALARS,
    TORCH_PRECISION,
    block,
)
from codegen.torch_emitter import emit_module
from codegen.writer import LINE_LENGTH, Block, docstring_text, py
from studio.project import ANNEALING, LR_SCHEDULES, TrainingSettings
from studio.text import terminal_safe

# How each built-in dataset is loaded with scikit-learn inside a generated script:
# the call returning (x, y), and whether its features are standardized.
SKLEARN_DATASETS = {
    "digits": ("load_digits", "datasets.load_digits(return_X_y=True)", False),
    "iris": ("load_iris", "datasets.load_iris(return_X_y=True)", True),
    "wine": ("load_wine", "datasets.load_wine(return_X_y=True)", True),
    "breast_cancer": ("load_breast_cancer", "datasets.load_breast_cancer(return_X_y=True)", True),
    "moons": ("make_moons", "datasets.make_moons(1000, noise=0.2, random_state=0)", True),
    "circles": ("make_circles", "datasets.make_circles(1000, noise=0.1, factor=0.5, random_state=0)", True),
    "regression": ("make_regression", "datasets.make_regression(1000, 8, noise=5.0, random_state=0)", True),
}


def _ends_in_logits(plan: ModelPlan) -> bool:
    """False when the model already ends in the loss's own squashing (softmax or sigmoid)."""
    loss = plan.project.training.loss
    if loss not in ("cross_entropy", "binary_cross_entropy"):
        return True
    return not _ends_with(plan, "softmax" if loss == "cross_entropy" else "sigmoid")


def _torch_loss(plan: ModelPlan) -> list[str]:
    """``make_loss()``: on logits as torch expects, or on probabilities when the model ends in them."""
    loss = plan.project.training.loss
    if _ends_in_logits(plan):
        expression = torch_loss_source(loss)
    elif loss == "binary_cross_entropy":
        expression = "nn.BCELoss()"
    else:  # the model ends in softmax: cross-entropy on probabilities, clipped as Keras clips them
        expression = "ProbabilityCrossEntropy()"
    return [
        "def make_loss():",
        '    """The Keras program\'s loss, computed the same way."""',
        f"    return {expression}",
    ]


def _train_step(plan: ModelPlan) -> list[str]:
    """``train_step(...)``: one optimizer step on one batch, as main() and `studio verify` run it."""
    several = _is_multi(plan)
    batch = "inputs, targets" if several else "x, y"
    arguments = f"model, optimizer, loss_fn, {batch}, share=1.0, clip_norm=None, precision=FP32"
    if len(arguments) + 4 <= LINE_LENGTH:
        head = ["def train_step(", f"    {arguments}", "):"]
    else:  # as ruff format explodes it: one argument a line
        head = ["def train_step(", *(f"    {name}," for name in arguments.split(", ")), "):"]
    if several:
        forward = [
            "    outputs = model_outputs(model, inputs)",
            "    loss = sum(loss_fn(o, t) for o, t in zip(outputs, targets, strict=True))",
        ]
    else:
        note = (
            ["    # The model gives (N, L, classes); the loss wants the classes on axis 1: movedim(-1, 1)."]
            if _classes_last(plan, plan.outputs[0])
            else []
        )
        forward = [*note, f"    outputs = {_single_output(plan)}", "    loss = loss_fn(outputs, y)"]
    return [
        *head,
        '    """One optimizer step on one batch; returns the loss and the model\'s outputs.',
        "",
        "    ``share`` weights this process's part of a global batch under torchrun (see train_epoch);",
        "    ``clip_norm`` caps the gradients' global norm as Keras's global_clipnorm does;",
        "    ``precision`` is --precision's autocast and loss scaling.",
        '    """',
        "    optimizer.zero_grad()",
        "    with precision.autocast():",
        *(f"    {line}" for line in forward),
        "    precision.step(loss * share, optimizer, model.parameters(), clip_norm)",
        "    return loss, outputs",
    ]


CLIP_GRADIENTS = [
    "def clip_gradients(parameters, max_norm):",
    '    """Scale the gradients so that their global norm is at most max_norm.',
    "",
    "    Keras's global_clipnorm formula, g * max_norm / max(norm, max_norm): torch's",
    "    clip_grad_norm_ divides by norm + 1e-6 instead, which would drift from the Keras program.",
    '    """',
    "    gradients = [p.grad for p in parameters if p.grad is not None]",
    "    norm = torch.sqrt(sum((g.double() ** 2).sum() for g in gradients))",
    "    factor = max_norm / torch.clamp(norm, min=max_norm)",
    "    for gradient in gradients:",
    "        gradient.mul_(factor.to(gradient.dtype))",
]

GLOBAL_BATCHES = [
    "class GlobalBatches:",
    '    """Batches of --batch-size samples in the studio\'s epoch order.',
    "",
    "    Under torchrun each global batch is shared out among the processes, this one taking",
    "    every world-th sample of it, so that N processes take the same steps as one.",
    '    """',
    "",
    "    def __init__(self, n, batch_size, seed, rank=0, world=1):",
    "        self.n, self.batch_size, self.seed = n, batch_size, seed",
    "        self.rank, self.world, self.epoch = rank, world, 0",
    "",
    "    def set_epoch(self, epoch):",
    "        self.epoch = epoch",
    "",
    "    def __len__(self):",
    "        return math.ceil(self.n / self.batch_size)",
    "",
    "    def __iter__(self):",
    "        order = epoch_order(self.n, self.seed, self.epoch)",
    "        for start in range(0, self.n, self.batch_size):",
    "            batch = order[start : start + self.batch_size]",
    "            yield batch[self.rank :: self.world].tolist()",
    "",
    "    def global_size(self, step):",
    '        """How many samples the step-th global batch holds, over every process."""',
    "        return min(self.batch_size, self.n - step * self.batch_size)",
]


def _probability_loss_class(plan: ModelPlan) -> list[str]:
    if _ends_in_logits(plan) or plan.project.training.loss != "cross_entropy":
        return []
    return [
        "class ProbabilityCrossEntropy(nn.Module):",
        '    """Cross-entropy of softmax outputs, clipped to [1e-7, 1 - 1e-7] as Keras does."""',
        "",
        "    def forward(self, probabilities, target):",
        "        return F.nll_loss(torch.log(probabilities.clamp(1e-7, 1 - 1e-7)), target)",
        "",
        "",
    ]


def _is_classification(training: TrainingSettings) -> bool:
    return training.loss in ("cross_entropy", "binary_cross_entropy") and training.target == "labels"


def _ends_with(plan: ModelPlan, activation: str) -> bool:
    layer = plan.outputs[0]
    return layer.params.get("activation") == activation


def _header(plan: ModelPlan, framework: str) -> list[str]:
    title = "Keras 3" if framework == "keras" else "PyTorch"
    layout = "channels-last" if framework == "keras" else "channels-first images"
    script = f"{plan.model_name}_{framework}.py"
    return [
        f'"""{docstring_text(plan.name)}: a {title} model generated by Layer Studio ({layout}).',
        "",
        "Train it with the project's dataset, or your own arrays (an .npz file with x and y):",
        f"    python {script} --epochs 5 [--data data.npz]",
        "Each epoch prints its losses, accuracies, learning rate and time. --checkpoint-dir DIR",
        "keeps checkpoint and best weights in the studio's formats: --resume DIR goes on from them,",
        "or from a studio run folder. --batch-size is the global batch, however many processes.",
        *(
            [
                "On several processes or GPUs (DistributedDataParallel; rank 0 prints and saves):",
                f"    torchrun --nproc-per-node 2 {script} [--sync-bn]",
            ]
            if framework == "pytorch"
            else ["On several GPUs of one machine: --strategy mirrored."]
        ),
        '"""',
        "",
    ]


def _load_data(plan: ModelPlan, framework: str) -> list[str]:
    """``load_data(path)``: (x_train, y_train), (x_val, y_val), shaped for the model's input."""
    if _is_multi(plan):
        return _load_data_multi(plan, framework)
    training = plan.project.training
    layer = plan.inputs[0]
    shape = tuple(layer.shape)
    dtype = "int64" if layer.params["dtype"] == "int32" else "float32"
    known = SKLEARN_DATASETS.get(training.dataset) if _uses_sklearn(plan) else None
    lines = [
        *block(READ_DATA),
        "",
        "",
        *_load_split(plan, framework, dtype),
        "",
        "",
        "def load_data(path=None):",
        '    """Return (x_train, y_train), (x_val, y_val), shuffled with a fixed seed."""',
        "    if path and is_split(path):",
        "        return load_split(path)",
    ]
    targets = "_" if training.target == "inputs" else "y"
    if known:
        _, loader, standardize = known
        lines += [
            "    if path:",
            f"        x, {targets}, standardize = read_data(path)",
            "    else:",
            f"        x, {targets} = {loader}",
            f"        standardize = {standardize}",
        ]
        if training.dataset == "digits":
            lines.append("        x = x / 16.0")
    else:
        lines += [
            "    if not path:",
            *_raise_missing_data(plan),
            f"    x, {targets}, standardize = read_data(path)",
        ]
    wrong_shape = Block(2)
    wrong_shape.statement(
        "raise SystemExit", [f'f"--data: samples {{x.shape[1:]}}; the model takes {py(shape)}"']
    )
    lines += [f"    if x[0].size != {math.prod(shape)}:", *wrong_shape.lines]
    if len(shape) == 3 and shape[-1] != 1 and (shape[-1], *shape[:-1]) != shape:
        channels_first = (shape[-1], *shape[:-1])
        lines += [
            f"    if x.shape[1:] == {py(channels_first)}:  # channels-first images: the model takes channels-last",
            "        x = x.transpose(0, 2, 3, 1)",
        ]
    lines += [
        f'    x = x.astype("{dtype}").reshape((-1, {", ".join(map(str, shape))}))',
    ]
    lines += _targets(plan)
    lines += [
        *_split(training, "len(x)"),
        "    x_train, x_val = x[train], x[val]",
    ]
    if dtype == "float32":  # token ids are never standardised
        lines += [
            "    if standardize:  # with the training split's statistics, as the studio does",
            '        statistics = x_train.astype("float64")',
            "        mean, std = statistics.mean(axis=0), statistics.std(axis=0)",
            "        std[std < 1e-12] = 1.0  # a constant feature stays at zero",
            '        x_train = ((x_train - mean) / std).astype("float32")',
            '        x_val = ((x_val - mean) / std).astype("float32")',
        ]
    if framework == "pytorch" and layer.layout.kind == CF and len(shape) == 3:
        lines.append("    # PyTorch convolutions take channels-first images: (N, C, H, W).")
        lines.append("    x_train, x_val = x_train.transpose(0, 3, 1, 2), x_val.transpose(0, 3, 1, 2)")
    y_train, y_val = ("x_train", "x_val") if training.target == "inputs" else ("y[train]", "y[val]")
    lines.append(f"    return (x_train, {y_train}), (x_val, {y_val})")
    return lines


def _load_split(plan: ModelPlan, framework: str, dtype: str) -> list[str]:
    """``is_split`` and ``load_split``: an .npz already split into training and validation sets."""
    training = plan.project.training
    layer = plan.inputs[0]
    target = (
        "x_train, x_val"
        if training.target == "inputs"
        else 'y_train.astype("int64"), y_val.astype("int64")'
        if training.loss == "cross_entropy"
        else 'y_train.astype("float32"), y_val.astype("float32")'
    )
    lines = [
        "def is_split(path):",
        '    """Whether the file is an .npz of x_train, y_train, x_val and y_val (already split)."""',
        '    if Path(path).suffix.lower() != ".npz" or not Path(path).is_file():',
        "        return False",
        "    with np.load(path) as data:",
        '        return {"x_train", "y_train", "x_val", "y_val"} <= set(data.files)',
        "",
        "",
        "def load_split(path):",
        '    """The sets of an .npz split already, channels-last: `studio train --processes` passes',
        '    the studio\'s own prepared data this way, so every process trains on exactly it."""',
        "    with np.load(path) as data:",
        '        x_train, y_train = data["x_train"], data["y_train"]',
        '        x_val, y_val = data["x_val"], data["y_val"]',
        f'    x_train, x_val = x_train.astype("{dtype}"), x_val.astype("{dtype}")',
        f"    y_train, y_val = {target}",
    ]
    if framework == "pytorch" and layer.layout.kind == CF and len(layer.shape) == 3:
        lines += [
            "    # PyTorch convolutions take channels-first images: (N, C, H, W).",
            "    x_train, x_val = x_train.transpose(0, 3, 1, 2), x_val.transpose(0, 3, 1, 2)",
        ]
    return [*lines, "    return (x_train, y_train), (x_val, y_val)"]


def _split(training: TrainingSettings, count: str) -> list[str]:
    """``train`` and ``val`` indices: the studio's rule (studio.datasets.core.split_indices), so that
    the studio and both scripts validate on the very same samples."""
    lines = [f"    order = np.random.default_rng({training.seed}).permutation({count})"]
    if training.validation_split == 0:
        return [*lines, "    train, val = order, order[:0]"]
    return [
        *lines,
        "    # The first round(n * validation_split) shuffled samples validate (at least one, never all).",
        f"    n_val = min(max(round(len(order) * {py(training.validation_split)}), 1), len(order) - 1)",
        "    train, val = order[n_val:], order[:n_val]",
    ]


def _reader_imports(plan: ModelPlan, modules: list[str]) -> list[str]:
    """The standard modules that read_data needs (one-input models read every data format)."""
    return [] if _is_multi(plan) else [f"import {module}" for module in modules]


def _uses_sklearn(plan: ModelPlan) -> bool:
    """The script loads the project's built-in dataset (one input and one output only); the
    scikit-learn sets hold measurements, never the token ids that an integer input reads."""
    if _is_multi(plan) or plan.inputs[0].params["dtype"] == "int32":
        return False
    return plan.project.training.dataset in SKLEARN_DATASETS


def _is_multi(plan: ModelPlan) -> bool:
    """Several inputs or outputs: the scripts then work on lists of arrays, one per input and output."""
    return len(plan.inputs) > 1 or len(plan.outputs) > 1


def _array_names(plan: ModelPlan) -> list[str]:
    """The .npz arrays a several-input or several-output model trains on."""
    return [f"x_{layer.ident}" for layer in plan.inputs] + [f"y_{layer.ident}" for layer in plan.outputs]


def _load_data_multi(plan: ModelPlan, framework: str) -> list[str]:
    training = plan.project.training
    missing = Block(2)
    missing.statement(
        "raise SystemExit", [py(f"pass --data FILE.npz with arrays {', '.join(_array_names(plan))}")]
    )
    inputs, to_channels_first = [], []
    for index, layer in enumerate(plan.inputs):
        dtype = "int64" if layer.params["dtype"] == "int32" else "float32"
        inputs.append(
            f'            data["x_{layer.ident}"].astype("{dtype}").reshape({_batch_shape(layer)}),'
        )
        if framework == "pytorch" and layer.layout.kind == CF and len(layer.shape) == 3:
            to_channels_first.append(f"    x[{index}] = x[{index}].transpose(0, 3, 1, 2)")
    if to_channels_first:
        to_channels_first.insert(0, "    # PyTorch convolutions take channels-first images: (N, C, H, W).")
    targets = [
        f'            data["y_{layer.ident}"].astype("int64"),'
        if training.loss == "cross_entropy"
        else f'            data["y_{layer.ident}"].astype("float32").reshape({_batch_shape(layer)}),'
        for layer in plan.outputs
    ]
    return [
        "def load_data(path=None):",
        '    """Return (x_train, y_train), (x_val, y_val): lists with one array per input and output."""',
        "    if not path:",
        *missing.lines,
        "    with np.load(path) as data:",
        "        x = [",
        *inputs,
        "        ]",
        "        y = [",
        *targets,
        "        ]",
        *to_channels_first,
        *_split(training, "len(x[0])"),
        "    x_train, x_val = [a[train] for a in x], [a[val] for a in x]",
        "    y_train, y_val = [a[train] for a in y], [a[val] for a in y]",
        "    return (x_train, y_train), (x_val, y_val)",
    ]


def _batch_shape(layer) -> str:
    return f"(-1, {', '.join(map(str, layer.shape))})"


def _as_tensors(plan: ModelPlan) -> list[str]:
    """The arrays as tensors: the whole dataset stays in memory and batches are index lookups."""
    # Contiguous: a transposed (channels-first) array would give channels-last strides to the
    # weights' gradients, which DDP then copies into its buckets at every step.
    convert = (
        "[torch.from_numpy(np.ascontiguousarray(a)) for a in {}]"
        if _is_multi(plan)
        else "torch.from_numpy(np.ascontiguousarray({}))"
    )
    names = ("x_train", "y_train", "x_val", "y_val")
    return [
        f"    {', '.join(names)} = (",
        *(f"        {convert.format(name)}," for name in names),
        "    )",
    ]


def _classes_last(plan: ModelPlan, layer) -> bool:
    """A cross-entropy output whose class scores PyTorch holds on the last axis of a sequence,
    ``(N, L, classes)``: nn.CrossEntropyLoss wants them on axis 1."""
    return plan.project.training.loss == "cross_entropy" and len(layer.shape) >= 2 and layer.layout.kind != CF


def _single_output(plan: ModelPlan) -> str:
    """The model's output on ``x``, with the class axis where the loss expects it."""
    return "model(x).movedim(-1, 1)" if _classes_last(plan, plan.outputs[0]) else "model(x)"


def _batch_helpers(plan: ModelPlan) -> list[str]:
    """take_batch (and model_outputs for several outputs): one batch of the in-memory tensors."""
    if not _is_multi(plan):
        return [
            "def take_batch(x, y, index, device):",
            '    """The samples at ``index`` as (inputs, targets) on the device."""',
            "    return x[index].to(device), y[index].to(device)",
            "",
            "",
        ]
    moves = [
        f"    outputs[{index}] = outputs[{index}].movedim(-1, 1)  # classes on axis 1, as the loss expects"
        for index, layer in enumerate(plan.outputs)
        if _classes_last(plan, layer)
    ]
    return [
        "def take_batch(x, y, index, device):",
        '    """The samples at ``index`` as (inputs, targets): lists of tensors, on the device."""',
        "    return [a[index].to(device) for a in x], [a[index].to(device) for a in y]",
        "",
        "",
        "def model_outputs(model, inputs):",
        '    """The model\'s outputs as a list (a one-output model returns a tensor)."""',
        "    outputs = model(*inputs)",
        *(
            [
                "    outputs = list(outputs) if isinstance(outputs, tuple) else [outputs]",
                *moves,
                "    return outputs",
            ]
            if moves
            else ["    return list(outputs) if isinstance(outputs, tuple) else [outputs]"]
        ),
        "",
        "",
    ]


def _right_predictions(plan: ModelPlan) -> list[str]:
    """``right_predictions(output, target)``: how many samples a classification output gets right."""
    if plan.project.training.loss == "cross_entropy":
        hits = "output.argmax(dim=1) == target"
    else:
        threshold = "0.0" if _ends_in_logits(plan) else "0.5"  # a logit's threshold is 0
        hits = f"(output > {threshold}) == (target > 0.5)"
    return [
        "def right_predictions(output, target):",
        '    """How many samples the output gets right; a sample of several values counts the share',
        '    of them that are right, as Keras\'s accuracy averages over every value."""',
        f"    hits = {hits}",
        "    return hits.double().reshape(len(hits), -1).mean(dim=1).sum()",
        *(
            [
                "",
                "",
                "def mean_right(outputs, targets):",
                '    """The right predictions of each output, averaged over the outputs."""',
                "    pairs = zip(outputs, targets, strict=True)",
                "    return sum(right_predictions(o, t) for o, t in pairs) / len(outputs)",
            ]
            if _is_multi(plan)
            else []
        ),
    ]


def _count_right(plan: ModelPlan, classification: bool) -> str:
    """The expression of a batch's right predictions in train_epoch and evaluate."""
    if not classification:
        return "0.0"
    if not _is_multi(plan):
        return "right_predictions(outputs, targets)"
    return "mean_right(outputs, targets)"


def _train_epoch(plan: ModelPlan, classification: bool) -> list[str]:
    count = "len(targets[0])" if _is_multi(plan) else "len(targets)"
    parameters = [
        "model",
        "optimizer",
        "scheduler",
        "loss_fn",
        "data",
        "batches",
        "device",
        "args",
        "precision",
        "report",
        "epoch",
    ]
    head = ["def train_epoch(", *(f"    {name}," for name in parameters), "):"]
    return [
        *head,
        '    """One epoch of optimizer steps; returns (summed loss, right predictions, samples) of',
        '    this process\'s share of the batches."""',
        "    model.train()",
        "    x, y = data",
        "    totals = torch.zeros(3, dtype=torch.float64, device=device)",
        "    for step, index in enumerate(batches):",
        "        inputs, targets = take_batch(x, y, index, device)",
        f"        count = {count}",
        "        # Each process's mean loss weighs by its share of the global batch: DDP then averages",
        "        # the gradients into exactly those of one process training on the whole global batch.",
        "        share = count * batches.world / batches.global_size(step)",
        f"        loss, {'outputs' if classification else '_'} = train_step(",
        "            model, optimizer, loss_fn, inputs, targets, share, args.grad_clip, precision",
        "        )",
        "        with torch.no_grad():",
        "            totals[0] += loss.double() * count",
        f"            totals[1] += {_count_right(plan, classification)}",
        "            totals[2] += count",
        "        if scheduler is not None:",
        "            scheduler.step()  # the learning rate of the next step",
        "        report.batch(epoch, step + 1, loss)",
        "    return totals",
    ]


def _schedule(plan: ModelPlan, framework: str) -> list[str]:
    """The learning-rate schedules' function, its Keras callback or PyTorch scheduler maker, and
    the reader of the script's schedule flags."""
    maker = keras_callback_lines() if framework == "keras" else torch_scheduler_lines()
    return [*factor_lines(plan.project.training), "", "", *maker, "", "", *schedule_option_lines(), "", ""]


def _evaluate(plan: ModelPlan, classification: bool) -> list[str]:
    several = _is_multi(plan)
    count = "len(targets[0])" if several else "len(targets)"
    forward = (
        [
            "            outputs = model_outputs(model, inputs)",
            "            loss = sum(loss_fn(o, t) for o, t in zip(outputs, targets, strict=True))",
        ]
        if several
        else [
            f"            outputs = {_single_output(plan).replace('(x)', '(inputs)')}",
            "            loss = loss_fn(outputs, targets)",
        ]
    )
    return [
        "def evaluate(model, loss_fn, data, index, batch_size, device, precision=FP32):",
        '    """(summed loss, right predictions, samples) over the samples at ``index``."""',
        "    model.eval()",
        "    x, y = data",
        "    totals = torch.zeros(3, dtype=torch.float64, device=device)",
        "    with torch.no_grad(), precision.autocast():",
        "        for start in range(0, len(index), batch_size):",
        "            batch = index[start : start + batch_size]",
        "            inputs, targets = take_batch(x, y, batch, device)",
        f"            count = {count}",
        *forward,
        "            totals[0] += loss.double() * count",
        f"            totals[1] += {_count_right(plan, classification)}",
        "            totals[2] += count",
        "    return totals",
    ]


def _epoch_metrics(classification: bool) -> list[str]:
    accuracy = classification
    return [
        "def epoch_metrics(train, val):",
        '    """The epoch\'s figures, named as the studio names them, from (loss, right, samples) totals."""',
        '    metrics = {"train_loss": (train[0] / train[2]).item()}',
        *(['    metrics["train_accuracy"] = (train[1] / train[2]).item()'] if accuracy else []),
        "    if val[2] > 0:",
        '        metrics["val_loss"] = (val[0] / val[2]).item()',
        *(['        metrics["val_accuracy"] = (val[1] / val[2]).item()'] if accuracy else []),
        "    return metrics",
    ]


TORCH_CHECKPOINTS = [
    "def save_atomically(state, path):",
    '    """torch.save to a temporary file, then renamed: a crash never leaves half a file."""',
    '    temporary = path.with_name(path.name + ".tmp")',
    "    torch.save(state, temporary)",
    "    os.replace(temporary, path)",
    "",
    "",
    "def save_checkpoint(folder, model, optimizer, progress, best):",
    '    """checkpoint.pt (weights, optimizer state, progress) and best.pt, as the studio writes them."""',
    "    folder = Path(folder)",
    "    folder.mkdir(parents=True, exist_ok=True)",
    '    meta = {"framework": "pytorch", "progress": progress.to_meta()}',
    "    state = {",
    '        "model": model.state_dict(),',
    '        "optimizer": optimizer.state_dict(),',
    '        "meta": json.dumps(meta),',
    "    }",
    '    save_atomically(state, folder / "checkpoint.pt")',
    "    if best is not None:",
    '        save_atomically(best, folder / "best.pt")',
    "",
    "",
    "def resume(folder, model, optimizer, args):",
    '    """Load checkpoint.pt of a run folder (the studio\'s or this script\'s); return its Progress."""',
    '    path = Path(folder) / "checkpoint.pt"',
    "    if not path.is_file():",
    '        raise SystemExit(f"--resume: there is no checkpoint.pt in {folder}")',
    "    # weights_only: a checkpoint is data, never code to unpickle.",
    '    state = torch.load(path, map_location="cpu", weights_only=True)',
    '    model.load_state_dict(state["model"])',
    '    optimizer.load_state_dict(state["optimizer"])',
    "    for group in optimizer.param_groups:",
    "        # As in the studio: a resumed run may take a new learning rate.",
    '        group["lr"] = args.lr',
    '    meta = json.loads(state["meta"])["progress"]',
    "    progress = Progress(args.epochs, args.patience, meta)",
    "    if progress.epoch >= args.epochs:",
    "        raise SystemExit(",
    '            f"the checkpoint has completed {progress.epoch} epochs already: "',
    '            f"ask for more with --epochs (more than {progress.epoch})"',
    "        )",
    "    return progress",
]


def _raise_missing_data(plan: ModelPlan) -> list[str]:
    training = plan.project.training
    arrays = "x" if training.target == "inputs" else "x and y"
    layer = plan.inputs[0]
    if layer.params["dtype"] == "int32":
        sample = ", ".join(map(str, layer.shape))
        why = f"this model reads integer token ids: x of shape (N, {sample})"
    else:
        why = f"{training.dataset} is not built in"
    block = Block(2)
    block.statement("raise SystemExit", [py(f"pass --data FILE.npz with arrays {arrays} ({why})")])
    return block.lines


def _targets(plan: ModelPlan) -> list[str]:
    training = plan.project.training
    if training.target == "inputs":
        return []
    if training.loss == "cross_entropy":
        return ['    y = y.astype("int64")']
    output = plan.outputs[0].shape
    return [f'    y = y.astype("float32").reshape((-1, {", ".join(map(str, output))}))']


KERAS_TRAINING = [
    "def train_batches(x, y, batch_size, seed, first_epoch, epochs):",
    '    """Batches of every remaining epoch in the studio\'s epoch order, as a tf.data pipeline',
    '    (which tf.distribute shares out among replicas and workers)."""',
    "    n = len(y[0]) if isinstance(y, list) else len(y)",
    "    orders = [epoch_order(n, seed, epoch) for epoch in range(first_epoch, epochs)]",
    "    index = tf.data.Dataset.from_tensor_slices(np.concatenate(orders))",
    "    # One epoch's last batch may be short: batch each epoch on its own.",
    "    index = index.window(n).flat_map(lambda epoch: epoch.batch(batch_size))",
    "    # tf.data reads a tuple as one tensor per input or output, but a list as one tensor.",
    "    x, y = (tuple(a) if isinstance(a, list) else a for a in (x, y))",
    "    x, y = tf.nest.map_structure(tf.constant, (x, y))",
    "",
    "    def gather(batch):",
    "        return tf.nest.map_structure(lambda a: tf.gather(a, batch), (x, y))",
    "",
    "    return index.map(gather).prefetch(tf.data.AUTOTUNE)",
    "",
    "",
    "def save_checkpoint(folder, model, progress, best):",
    '    """checkpoint.npz (weights, optimizer state, progress) and best.weights.h5, as the studio',
    '    writes its checkpoints: arrays only, no pickles."""',
    "    folder = Path(folder)",
    "    folder.mkdir(parents=True, exist_ok=True)",
    "    optimizer = model.optimizer",
    '    arrays = {f"weight_{i}": w for i, w in enumerate(model.get_weights())}',
    "    for i, variable in enumerate(optimizer.variables):",
    '        arrays[f"optimizer_{i}"] = np.array(variable.numpy())',
    "    meta = {",
    '        "framework": "keras",',
    '        "progress": progress.to_meta(),',
    '        "optimizer_variables": [v.path for v in optimizer.variables],',
    "    }",
    '    arrays["meta"] = np.array(json.dumps(meta))',
    '    temporary = folder / "checkpoint.tmp.npz"',
    "    np.savez(temporary, **arrays)",
    '    os.replace(temporary, folder / "checkpoint.npz")  # never half a file',
    "    if best is not None:",
    "        current = model.get_weights()",
    "        model.set_weights(best)",
    '        model.save(folder / "best.keras")',
    "        model.set_weights(current)",
    "",
    "",
    "def resume(folder, model, args):",
    '    """Load checkpoint.npz of a run folder (the studio\'s or this script\'s); return its Progress."""',
    '    path = Path(folder) / "checkpoint.npz"',
    "    if not path.is_file():",
    '        raise SystemExit(f"--resume: there is no checkpoint.npz in {folder}")',
    "    with np.load(path, allow_pickle=False) as data:",
    "        count = len(model.get_weights())",
    '        model.set_weights([data[f"weight_{i}"] for i in range(count)])',
    "        optimizer = model.optimizer",
    "        optimizer.build(model.trainable_variables)",
    "        for i, variable in enumerate(optimizer.variables):",
    "            # The learning rate may be new, as in the studio.",
    '            if not variable.path.endswith("learning_rate"):',
    '                variable.assign(data[f"optimizer_{i}"])',
    '        meta = json.loads(str(data["meta"]))["progress"]',
    "    progress = Progress(args.epochs, args.patience, meta)",
    "    if progress.epoch >= args.epochs:",
    "        raise SystemExit(",
    '            f"the checkpoint has completed {progress.epoch} epochs already: "',
    '            f"ask for more with --epochs (more than {progress.epoch})"',
    "        )",
    "    return progress",
    "",
    "",
    "def set_precision(precision):",
    '    """--precision: Keras\'s mixed policy (variables stay float32), as the studio trains."""',
    '    if precision == "fp16" and not tf.config.list_physical_devices("GPU"):',
    "        raise SystemExit(",
    '            "--precision fp16 needs a CUDA GPU, and this run is on cpu: use bf16 or fp32"',
    "        )",
    '    if precision != "fp32":',
    '        policy = "mixed_bfloat16" if precision == "bf16" else "mixed_float16"',
    "        keras.mixed_precision.set_global_policy(policy)",
    "",
    "",
    "class EpochCallback(keras.callbacks.Callback):",
    '    """Each epoch: its line, checkpoints (--checkpoint-dir) and early stopping (--patience,',
    '    restoring the best weights), with the studio\'s Progress, names and file formats."""',
    "",
    "    def __init__(self, progress, report, args, chief):",
    "        super().__init__()",
    "        self.progress, self.report = progress, report",
    "        self.args, self.chief = args, chief",
    "        self.best, self.started = None, 0.0",
    "        self.writer = None",
    "        if args.tensorboard and chief:",
    "            self.writer = tf.summary.create_file_writer(args.tensorboard)",
    "",
    "    def on_epoch_begin(self, epoch, logs=None):",
    "        self.started = time.perf_counter()",
    "",
    "    def on_train_batch_end(self, batch, logs=None):",
    "        self.progress.global_step += 1",
    '        self.report.batch(self.progress.epoch + 1, batch + 1, logs["loss"])',
    "",
    "    def on_epoch_end(self, epoch, logs=None):",
    "        metrics = epoch_metrics(logs)",
    "        improved, stop = self.progress.end_epoch(metrics)",
    "        rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))",
    "        seconds = time.perf_counter() - self.started",
    "        self.report.epoch(epoch + 1, metrics, rate, seconds)",
    "        if self.writer is not None:  # the studio's tags; weights by their Keras paths",
    "            with self.writer.as_default(step=epoch + 1):",
    "                for tag, value in tensorboard_scalars(metrics, rate).items():",
    "                    tf.summary.scalar(tag, value)",
    "                for variable in self.model.weights:",
    '                    tf.summary.histogram("weights/" + variable.path, variable)',
    "            self.writer.flush()",
    "        if improved:",
    "            self.best = self.model.get_weights()",
    "        if self.args.checkpoint_dir and self.chief:",
    "            new_best = self.best if improved else None",
    "            folder = self.args.checkpoint_dir",
    "            save_checkpoint(folder, self.model, self.progress, new_best)",
    "        if stop:",
    "            self.model.stop_training = True",
    "            # No best weights: no epoch had a finite loss, and there is nothing to restore.",
    "            if self.best is not None:",
    "                self.model.set_weights(self.best)",
    "            if self.chief:",
    "                print(",
    '                    f"early stopping: val_loss has not improved for {self.args.patience} "',
    '                    f"epochs; the best weights (epoch {self.progress.best_epoch}) are kept"',
    "                )",
    "",
    "",
    "def epoch_metrics(logs):",
    '    """Keras\'s logs under the studio\'s names; several outputs\' accuracies are averaged."""',
    '    metrics = {"train_loss": float(logs["loss"])}',
    '    for name, prefix in (("train", ""), ("val", "val_")):',
    '        if prefix and "val_loss" not in logs:',
    "            break",
    "        if prefix:",
    '            metrics["val_loss"] = float(logs["val_loss"])',
    "        accuracies = [",
    "            float(value)",
    "            for key, value in logs.items()",
    '            if key.endswith("accuracy") and key.startswith("val_") == bool(prefix)',
    "        ]",
    "        if accuracies:",
    '            metrics[f"{name}_accuracy"] = sum(accuracies) / len(accuracies)',
    "    return metrics",
    "",
    "",
    "def distribution(args):",
    '    """The tf.distribute strategy asked for (or None), and whether this process is the chief,',
    '    the one that prints and saves."""',
    '    if args.strategy == "mirrored":',
    "        strategy = tf.distribute.MirroredStrategy()",
    "        if strategy.num_replicas_in_sync == 1:",
    "            print(",
    '                "note: MirroredStrategy found one device, so it trains one replica; "',
    '                "it pays off with several GPUs"',
    "            )",
    "        return strategy, True",
    '    if args.strategy == "multi-worker":',
    "        # Keras 3's fit fails under MultiWorkerMirroredStrategy (keras-team/keras#20585: a",
    "        # PerReplica value reaches a tensor conversion), so say so rather than crash.",
    "        raise SystemExit(",
    '            "--strategy multi-worker: Keras 3 cannot fit under MultiWorkerMirroredStrategy "',
    '            "yet (keras-team/keras#20585); on several machines, train the PyTorch program "',
    '            "under torchrun; on several GPUs of one machine, use --strategy mirrored"',
    "        )",
    "    return None, True",
]


def _shared_blocks(*sources: str) -> list[str]:
    """Source blocks of codegen.script_parts, each followed by the two blank lines between
    top-level definitions."""
    return [line for source in sources for line in (*block(source), "", "")]


def keras_program(plan: ModelPlan) -> str:
    training = plan.project.training
    logits = _ends_in_logits(plan)
    metrics = "[]"
    if _is_classification(training):
        # Keras's "accuracy" would threshold binary logits at 0.5; a logit's threshold is 0.
        binary_logits = training.loss == "binary_cross_entropy" and logits
        metric = "keras.metrics.BinaryAccuracy(threshold=0.0)" if binary_logits else '"accuracy"'
        # A model with several outputs takes one list of metrics per output.
        per_output = f"[{metric}]"
        metrics = per_output if len(plan.outputs) == 1 else f"[{', '.join([per_output] * len(plan.outputs))}]"
    model = emit_build_model(plan)
    lines = _header(plan, "keras") + [
        "import argparse",
        "import contextlib",
        *_reader_imports(plan, ["csv"]),
        *_reader_imports(plan, ["gzip"]),
        "import json",
        "import math",
        "import os",
        "",
        "# Keras 3 runs on several backends: these programs are written for TensorFlow's.",
        'os.environ["KERAS_BACKEND"] = "tensorflow"',
        'os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow\'s start-up chatter',
        "",
        *_reader_imports(plan, ["struct"]),
        "import sys",
        "import time",
        "from pathlib import Path",
        "",
        "import keras",
        *(["import keras_hub"] if any("keras_hub." in line for line in model) else []),
        "import numpy as np",
        "import tensorflow as tf",
        "from keras import layers",
        *(["from sklearn import datasets"] if _uses_sklearn(plan) else []),
        "",
        "",
        *emit_layer_classes(plan),
        *model,
        "",
        "",
        *_load_data(plan, "keras"),
        "",
        "",
        *keras_optimizer_lines(training.optimizer),
        "",
        "",
        *_schedule(plan, "keras"),
        "def make_loss():",
        '    """The loss, which the PyTorch program computes the same way."""',
        f"    return {keras_loss_source(training.loss, logits)}",
        "",
        "",
        *_shared_blocks(EPOCH_ORDER, PROGRESS, EPOCH_REPORT, TENSORBOARD_SCALARS),
        *KERAS_TRAINING,
        "",
        "",
        "def main():",
        *_arguments(plan, "model.keras"),
        "    keras.utils.set_random_seed(args.seed)",
        "    set_precision(args.precision)",
        "    strategy, chief = distribution(args)",
        "    (x_train, y_train), (x_val, y_val) = load_data(args.data)",
        "    if strategy is not None:",
        "        scope = strategy.scope()",
        '    elif args.device == "auto":',
        "        scope = contextlib.nullcontext()",
        "    else:",
        "        scope = keras.device(args.device)",
        "    # The model, its optimizer and its variables are made inside the strategy's scope.",
        "    with scope:",
        "        model = build_model()",
        '        if args.precision != "fp32":  # the outputs compute in float32, as Keras advises',
        f"            for name in {py(tuple(layer.ident for layer in plan.outputs))}:",
        '                model.get_layer(name).dtype_policy = keras.DTypePolicy("float32")',
        "        model.compile(",
        "            optimizer=make_optimizer(args.lr, args.grad_clip),",
        "            loss=make_loss(),",
        f"            metrics={metrics},",
        "        )",
        "        progress = Progress(args.epochs, args.patience)",
        "        if args.resume:",
        "            progress = resume(args.resume, model, args)",
        f"    n = len({'y_train[0]' if _is_multi(plan) else 'y_train'})",
        "    steps = math.ceil(n / args.batch_size)",
        "    report = EpochReport(args.epochs, steps, enabled=chief)",
        "    callback = EpochCallback(progress, report, args, chief)",
        "    has_val = len(y_val[0] if isinstance(y_val, list) else y_val) > 0",
        "    callbacks = [callback]",
        '    if args.lr_schedule != "constant":',
        "        schedule = schedule_options(args)",
        "        total_steps = args.epochs * steps",
        "        callbacks.append(PerBatchLearningRate(args.lr, steps, total_steps, **schedule))",
        "    model.fit(",
        "        train_batches(",
        "            x_train, y_train, args.batch_size, args.seed, progress.epoch, args.epochs",
        "        ),",
        "        epochs=args.epochs,",
        "        initial_epoch=progress.epoch,",
        "        steps_per_epoch=steps,",
        "        validation_data=(x_val, y_val) if has_val else None,",
        "        validation_batch_size=args.batch_size,",
        "        callbacks=callbacks,",
        "        shuffle=False,  # the batches already come in the studio's epoch order",
        "        verbose=0,  # EpochCallback prints each epoch, the studio's way",
        "    )",
        "    if chief:",
        "        model.save(args.out)",
        '        print(f"saved the trained model to {args.out}")',
        "",
        "",
        'if __name__ == "__main__":',
        "    main()",
    ]
    return "\n".join(lines) + "\n"


def _arguments(plan: ModelPlan, default_out: str) -> list[str]:
    """The argparse block of ``main()``, one statement per flag."""
    training = plan.project.training
    keras = default_out.endswith(".keras")
    data_arrays = ", ".join(_array_names(plan)) if _is_multi(plan) else "x and y"
    flags = [
        ['"--epochs"', "type=int", f"default={training.epochs}"],
        [
            '"--batch-size"',
            "type=int",
            f"default={training.batch_size}",
            'help="the global batch: over every process or replica together"',
        ],
        ['"--lr"', "type=float", f"default={py(training.learning_rate)}"],
        [
            '"--lr-schedule"',
            f"default={py(training.lr_schedule)}",
            f"choices={py(list(LR_SCHEDULES))}",
            'help="how the learning rate moves over the run, per batch"',
        ],
        [
            '"--lr-step-epochs"',
            "type=int",
            f"default={training.lr_step_epochs}",
            'help="step: the epochs between two cuts"',
        ],
        [
            '"--lr-gamma"',
            "type=float",
            f"default={float_literal(training.lr_gamma)}",
            'help="step: the cut\'s factor"',
        ],
        [
            '"--lr-warmup-epochs"',
            "type=float",
            f"default={float_literal(training.lr_warmup_epochs)}",
            'help="warmup-cosine: the epochs of linear warm-up"',
        ],
        [
            '"--lr-min"',
            "type=float",
            f"default={float_literal(training.lr_min)}",
            'help="cosine, onecycle, warmup-cosine: the last rate"',
        ],
        ['"--seed"', "type=int", f"default={training.seed}"],
        [
            '"--device"',
            'default="auto"',
            f'help="{"auto, cpu or gpu" if keras else "auto, cpu, cuda:N or mps"}"',
        ],
        ['"--data"', f"help={py(_help_text(f'.npz file with arrays {data_arrays}'))}"],
        ['"--out"', f'default="{default_out}"'],
        [
            '"--patience"',
            "type=int",
            "default=0",
            'help="stop after this many epochs without a better val_loss, restoring the best weights '
            '(0: never)"',
        ],
        [
            '"--checkpoint-dir"',
            'help="write checkpoint.* (to resume) and best.* there after each epoch"',
        ],
        [
            '"--resume"',
            'metavar="DIR"',
            'help="go on from the checkpoint in DIR (the studio\'s run folders too)"',
        ],
        ['"--grad-clip"', "type=float", 'metavar="NORM"', 'help="clip the gradients\' global norm to NORM"'],
        [
            '"--precision"',
            f'default="{training.precision}"',
            'choices=["fp32", "bf16", "fp16"]',
            'help="mixed precision: bf16, or fp16 on a CUDA GPU"',
        ],
        ['"--tensorboard"', 'metavar="DIR"', 'help="write TensorBoard event files there"'],
    ]
    if keras:
        flags.insert(5, ['"--strategy"', 'default="none"', 'choices=["none", "mirrored", "multi-worker"]'])
    else:
        flags.append(
            ['"--sync-bn"', 'action="store_true"', 'help="under torchrun: BatchNorm over the global batch"']
        )
    block = Block(1)
    description = py(_help_text(f"Train {plan.name}.", description=True))
    block.statement("parser = argparse.ArgumentParser", [f"description={description}"])
    for flag in flags:
        block.statement("parser.add_argument", flag)
    block.line("args = parser.parse_args()")
    # The project's own checks of the schedule (studio.project), each in one line.
    block.lines += [
        "    if args.lr_step_epochs < 1 or not 0 < args.lr_gamma <= 1:",
        '        raise SystemExit("--lr-step-epochs must be >= 1 and --lr-gamma in (0, 1]")',
        "    if args.lr_warmup_epochs < 0:",
        '        raise SystemExit("--lr-warmup-epochs must be >= 0")',
        f"    annealing = {py(ANNEALING)}",
        "    if args.lr_schedule in annealing and not 0 <= args.lr_min < args.lr:",
        '        raise SystemExit(f"--lr-min must be in [0, --lr) for {args.lr_schedule}")',
    ]
    return block.lines


def _help_text(text: str, description: bool = False) -> str:
    """User text for an argparse help or description, printable. argparse %-formats every help
    string, and a description only when it holds ``%(prog)``: double the % signs where it does."""
    text = terminal_safe(text)
    return text.replace("%", "%%") if not description or "%(prog)" in text else text


def torch_program(plan: ModelPlan) -> str:
    training = plan.project.training
    classification = _is_classification(training)
    module = emit_module(plan)
    extra = _probability_loss_class(plan)
    lines = _header(plan, "pytorch") + [
        "import argparse",
        "import contextlib",
        *_reader_imports(plan, ["csv"]),
        "import gc",
        *_reader_imports(plan, ["gzip"]),
        "import json",
        "import math",
        "import os",
        *_reader_imports(plan, ["struct"]),
        "import sys",
        "import time",
        "from pathlib import Path",
        "",
        "import numpy as np",
        "import torch",
        "import torch.distributed as dist",
        *(["import torch.nn.functional as F"] if any("F." in line for line in module + extra) else []),
        *(["from sklearn import datasets"] if _uses_sklearn(plan) else []),
        "from torch import nn",
        "from torch.nn.parallel import DistributedDataParallel",
        "",
        "",
        *module,
        "",
        "",
        "def build_model():",
        f"    return {plan.class_name}()",
        "",
        "",
        *_load_data(plan, "pytorch"),
        "",
        "",
        *_probability_loss_class(plan),
        *torch_optimizer_lines(training.optimizer, is_scheduled(training)),
        "",
        "",
        *_schedule(plan, "pytorch"),
        *_torch_loss(plan),
        "",
        "",
        *_shared_blocks(EPOCH_ORDER, PROGRESS, EPOCH_REPORT),
        *GLOBAL_BATCHES,
        "",
        "",
        *_batch_helpers(plan),
        *CLIP_GRADIENTS,
        "",
        "",
        *_shared_blocks(TORCH_PRECISION, TENSORBOARD_SCALARS),
        *_train_step(plan),
        "",
        "",
        *(_right_predictions(plan) + ["", ""] if classification else []),
        *_train_epoch(plan, classification),
        "",
        "",
        *_evaluate(plan, classification),
        "",
        "",
        *_epoch_metrics(classification),
        "",
        "",
        *TORCH_CHECKPOINTS,
        "",
        "",
        "def setup_device(requested):",
        '    """The device, this process\'s rank and the number of processes. Under torchrun, join the',
        '    process group first (gloo on CPU, nccl on GPU)."""',
        '    if requested == "auto":',
        '        requested = "cuda" if torch.cuda.is_available() else "cpu"',
        "    device = torch.device(requested)",
        '    if "WORLD_SIZE" not in os.environ:',
        "        return device, 0, 1",
        '    if device.type == "cuda":',
        '        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))',
        "        torch.cuda.set_device(device)",
        '    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")',
        "    return device, dist.get_rank(), dist.get_world_size()",
        "",
        "",
        "def main():",
        *_arguments(plan, "model.pt"),
        "    torch.manual_seed(args.seed)",
        "    device, rank, world = setup_device(args.device)",
        "    precision = Precision(args.precision, device)",
        "    if args.batch_size < world:",
        "        raise SystemExit(",
        '            f"--batch-size is the global batch ({args.batch_size}): "',
        '            f"it needs at least one sample for each of the {world} processes"',
        "        )",
        "    (x_train, y_train), (x_val, y_val) = load_data(args.data)",
        *_as_tensors(plan),
        "    model = build_model()",
        "    if args.sync_bn and world > 1:",
        "        # BatchNorm statistics over the global batch, as one process computes them.",
        "        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)",
        "    model.to(device)",
        *(
            [
                '    scheduled = args.lr_schedule != "constant"',
                "    optimizer = make_optimizer(model.parameters(), args.lr, scheduled)",
            ]
            if training.optimizer in SCHEDULED_OPTIMIZERS
            else ["    optimizer = make_optimizer(model.parameters(), args.lr)"]
        ),
        "    loss_fn = make_loss()",
        "    progress = Progress(args.epochs, args.patience)",
        "    if args.resume:",
        "        progress = resume(args.resume, model, optimizer, args)",
        "    plain = model",
        "    if world > 1:",
        "        model = DistributedDataParallel(model)",
        f"    batches = GlobalBatches(len({'y_train[0]' if _is_multi(plan) else 'y_train'}), "
        "args.batch_size, args.seed, rank, world)",
        "    # Every validation sample once, shared out among the processes; the sums are then",
        "    # all-reduced. (DistributedSampler would pad the shares with repeated samples.)",
        f"    val_index = torch.arange(rank, len({'y_val[0]' if _is_multi(plan) else 'y_val'}), world)",
        "    steps, total = len(batches), args.epochs * len(batches)",
        "    schedule, scheduler = schedule_options(args), None",
        '    if args.lr_schedule != "constant":',
        "        done = progress.global_step  # the steps a resumed run has already taken",
        "        scheduler = make_scheduler(optimizer, args.lr, steps, total, done, **schedule)",
        "    report = EpochReport(args.epochs, steps, enabled=rank == 0)  # rank 0 speaks",
        "    best, writer = None, None",
        "    if args.tensorboard and rank == 0:",
        "        from torch.utils.tensorboard import SummaryWriter  # the tensorboard package",
        "",
        "        writer = SummaryWriter(args.tensorboard)",
        "    for epoch in range(progress.epoch, args.epochs):",
        "        batches.set_epoch(epoch)",
        "        started = time.perf_counter()",
        "        train = train_epoch(",
        "            model,",
        "            optimizer,",
        "            scheduler,",
        "            loss_fn,",
        "            (x_train, y_train),",
        "            batches,",
        "            device,",
        "            args,",
        "            precision,",
        "            report,",
        "            epoch + 1,",
        "        )",
        "        progress.global_step += steps",
        "        val_data = (x_val, y_val)",
        "        val = evaluate(",
        "            model, loss_fn, val_data, val_index, args.batch_size, device, precision",
        "        )",
        "        if world > 1:",
        "            dist.all_reduce(train)",
        "            dist.all_reduce(val)",
        "        metrics = epoch_metrics(train, val)",
        "        improved, stop = progress.end_epoch(metrics)",
        "        # The rate of the epoch's last step (the scheduler already holds the next one's).",
        "        last = progress.global_step - 1",
        "        factor = learning_rate_factor(last, args.lr, steps, total, **schedule)",
        "        learning_rate = args.lr * factor",
        "        report.epoch(epoch + 1, metrics, learning_rate, time.perf_counter() - started)",
        "        if writer is not None:  # the studio's tags and weight histograms",
        "            for tag, value in tensorboard_scalars(metrics, learning_rate).items():",
        "                writer.add_scalar(tag, value, epoch + 1)",
        "            for key, value in plain.state_dict().items():",
        "                if value.is_floating_point():",
        '                    tag = "weights/" + key.replace(".", "/")',
        "                    writer.add_histogram(tag, value.float(), epoch + 1)",
        "            writer.flush()",
        "        if improved:",
        "            best = {k: v.detach().clone() for k, v in plain.state_dict().items()}",
        "        if args.checkpoint_dir and rank == 0:",
        "            new_best = best if improved else None",
        "            save_checkpoint(args.checkpoint_dir, plain, optimizer, progress, new_best)",
        "        if stop:",
        "            # No best weights: no epoch had a finite loss, and there is nothing to restore.",
        "            if best is not None:",
        "                plain.load_state_dict(best)",
        "            if rank == 0:",
        "                print(",
        '                    f"early stopping: val_loss has not improved for {args.patience} epochs; "',
        '                    f"the best weights (epoch {progress.best_epoch}) are kept"',
        "                )",
        "            break",
        "    if rank == 0:",
        "        torch.save(plain.state_dict(), args.out)",
        '        print(f"saved the trained weights to {args.out}")',
        "    if world > 1:",
        "        dist.barrier()  # every process is done (rank 0 has saved) before the group ends",
        "        # DDP's reducer holds work on the group: it goes first, while Python is whole (were it",
        "        # freed at interpreter exit, gloo's threads could abort the process).",
        "        del model",
        "        gc.collect()",
        "        dist.destroy_process_group()",
        "",
        "",
        'if __name__ == "__main__":',
        "    main()",
    ]
    return "\n".join(lines) + "\n"
