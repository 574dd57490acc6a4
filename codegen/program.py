"""Whole generated programs: header, imports, the model, data loading and a training entry point.

Each file runs on its own: ``python model_keras.py --epochs 5`` trains with
Keras ``fit``; ``python model_torch.py --epochs 5`` trains with a plain
PyTorch loop over a DataLoader. ``--data FILE.npz`` (arrays ``x`` and ``y``)
replaces the project's built-in dataset.
"""

from __future__ import annotations

from codegen.keras_emitter import emit_build_model
from codegen.plan import CF, ModelPlan
from codegen.recipes import (
    keras_loss_source,
    keras_optimizer_lines,
    torch_loss_source,
    torch_optimizer_lines,
)
from codegen.schedules import factor_lines, is_scheduled, keras_callback_lines, torch_scheduler_lines
from codegen.torch_emitter import emit_module
from codegen.writer import Block, docstring_text, py
from studio.project import TrainingSettings
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
    if _is_multi(plan):
        return [
            "def train_step(model, optimizer, loss_fn, inputs, targets):",
            '    """One optimizer step on one batch (lists of inputs and targets); returns the loss."""',
            "    optimizer.zero_grad()",
            "    outputs = model_outputs(model, inputs)",
            "    loss = sum(loss_fn(o, t) for o, t in zip(outputs, targets, strict=True))",
            "    loss.backward()",
            "    optimizer.step()",
            "    return loss",
        ]
    note = (
        ["    # The model gives (N, L, classes); the loss wants the classes on axis 1: movedim(-1, 1)."]
        if _classes_last(plan, plan.outputs[0])
        else []
    )
    return [
        "def train_step(model, optimizer, loss_fn, x, y):",
        '    """One optimizer step on one batch; returns the loss."""',
        "    optimizer.zero_grad()",
        *note,
        f"    loss = loss_fn({_single_output(plan)}, y)",
        "    loss.backward()",
        "    optimizer.step()",
        "    return loss",
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
    return [
        f'"""{docstring_text(plan.name)}: a {title} model generated by Layer Studio ({layout}).',
        "",
        "Train it with the project's dataset, or your own arrays (an .npz file with x and y):",
        f"    python {plan.model_name}_{framework}.py --epochs 5 [--data data.npz]",
        *(
            [
                "On several processes or GPUs (DistributedDataParallel):",
                f"    torchrun --nproc_per_node=2 {plan.model_name}_{framework}.py",
            ]
            if framework == "pytorch"
            else ["On several GPUs or hosts: --strategy mirrored or --strategy multi-worker."]
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
    known = SKLEARN_DATASETS.get(training.dataset)
    lines = [
        "def load_data(path=None):",
        '    """Return (x_train, y_train), (x_val, y_val), shuffled with a fixed seed."""',
    ]
    if known:
        _, loader, standardize = known
        lines += [
            "    if path:",
            *_read_npz(plan, indent=2),
            "    else:",
            f"        x, {'_' if training.target == 'inputs' else 'y'} = {loader}",
        ]
        if training.dataset == "digits":
            lines.append("        x = x / 16.0")
    else:
        standardize = False
        lines += [
            "    if not path:",
            *_raise_missing_data(plan),
            *_read_npz(plan, indent=1),
        ]
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
    if standardize:
        lines += [
            "    # Standardised with the training split's statistics, as the studio does.",
            '    statistics = x_train.astype("float64")',
            "    mean, std = statistics.mean(axis=0), statistics.std(axis=0)",
            "    std[std < 1e-12] = 1.0  # a constant feature stays at zero",
            '    x_train = ((x_train - mean) / std).astype("float32")',
            '    x_val = ((x_val - mean) / std).astype("float32")',
        ]
    if framework == "pytorch" and layer.layout.kind == CF and len(shape) == 3:
        lines.append("    # PyTorch convolutions take channels-first images: (N, C, H, W).")
        lines.append("    x_train, x_val = x_train.transpose(0, 3, 1, 2), x_val.transpose(0, 3, 1, 2)")
    y_train, y_val = ("x_train", "x_val") if training.target == "inputs" else ("y[train]", "y[val]")
    lines.append(f"    return (x_train, {y_train}), (x_val, {y_val})")
    return lines


def _read_npz(plan: ModelPlan, indent: int) -> list[str]:
    """Read ``x`` (and ``y``, unless the model learns to reproduce its input) from the .npz at ``path``."""
    pad = "    " * indent
    if plan.project.training.target == "inputs":
        return [f"{pad}with np.load(path) as data:", f'{pad}    x = data["x"]']
    return [f"{pad}with np.load(path) as data:", f'{pad}    x, y = data["x"], data["y"]']


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


def _uses_sklearn(plan: ModelPlan) -> bool:
    """The script loads the project's built-in dataset (one input and one output only)."""
    return plan.project.training.dataset in SKLEARN_DATASETS and not _is_multi(plan)


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


def _tensor_datasets(plan: ModelPlan) -> list[str]:
    if not _is_multi(plan):
        return [
            "    train_set = TensorDataset(torch.from_numpy(x_train), torch.from_numpy(y_train))",
            "    val_set = TensorDataset(torch.from_numpy(x_val), torch.from_numpy(y_val))",
        ]
    return [
        "    train_set = TensorDataset(*(torch.from_numpy(a) for a in x_train + y_train))",
        "    val_set = TensorDataset(*(torch.from_numpy(a) for a in x_val + y_val))",
    ]


def _classes_last(plan: ModelPlan, layer) -> bool:
    """A cross-entropy output whose class scores PyTorch holds on the last axis of a sequence,
    ``(N, L, classes)``: nn.CrossEntropyLoss wants them on axis 1."""
    return plan.project.training.loss == "cross_entropy" and len(layer.shape) >= 2 and layer.layout.kind != CF


def _single_output(plan: ModelPlan) -> str:
    """The model's output on ``x``, with the class axis where the loss expects it."""
    return "model(x).movedim(-1, 1)" if _classes_last(plan, plan.outputs[0]) else "model(x)"


def _batch_helpers(plan: ModelPlan) -> list[str]:
    """split_batch and model_outputs, for models with several inputs or outputs."""
    if not _is_multi(plan):
        return []
    moves = [
        f"    outputs[{index}] = outputs[{index}].movedim(-1, 1)  # classes on axis 1, as the loss expects"
        for index, layer in enumerate(plan.outputs)
        if _classes_last(plan, layer)
    ]
    return [
        "def split_batch(batch, device):",
        '    """A DataLoader batch as (model inputs, targets), on the device."""',
        "    batch = [tensor.to(device) for tensor in batch]",
        f"    return batch[:{len(plan.inputs)}], batch[{len(plan.inputs)}:]",
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


def _accuracy(plan: ModelPlan, output: str, target: str) -> str:
    """The fraction of right predictions in ``output`` (a Python float)."""
    if plan.project.training.loss == "cross_entropy":
        return f"({output}.argmax(dim=1) == {target}).float().mean().item()"
    threshold = "0.0" if _ends_in_logits(plan) else "0.5"  # a logit's threshold is 0
    return f"(({output} > {threshold}) == ({target} > 0.5)).float().mean().item()"


def _train_steps(plan: ModelPlan) -> list[str]:
    scheduled = ["            scheduler.step()"] if is_scheduled(plan.project.training) else []
    if not _is_multi(plan):
        return [
            "        for x, y in train_loader:",
            "            train_step(model, optimizer, loss_fn, x.to(device), y.to(device))",
            *scheduled,
        ]
    return [
        "        for batch in train_loader:",
        "            inputs, targets = split_batch(batch, device)",
        "            train_step(model, optimizer, loss_fn, inputs, targets)",
        *scheduled,
    ]


def _schedule(plan: ModelPlan, framework: str) -> list[str]:
    """The learning-rate schedule's function and its Keras callback or PyTorch scheduler maker."""
    if not is_scheduled(plan.project.training):
        return []
    maker = keras_callback_lines() if framework == "keras" else torch_scheduler_lines()
    return [*factor_lines(plan.project.training), "", "", *maker, "", ""]


def _keras_fit_callbacks(plan: ModelPlan) -> tuple[list[str], list[str]]:
    """The ``callbacks=`` argument of ``fit`` (the schedule's), with the steps it needs first."""
    if not is_scheduled(plan.project.training):
        return [], []
    samples = "len(x_train[0])" if _is_multi(plan) else "len(x_train)"
    before = [f"    steps_per_epoch = math.ceil({samples} / args.batch_size)"]
    argument = [
        "            callbacks=[PerBatchLearningRate(args.lr, steps_per_epoch, args.epochs * steps_per_epoch)],"
    ]
    return before, argument


def _evaluate(plan: ModelPlan, classification: bool) -> list[str]:
    head = [
        *_batch_helpers(plan),
        "def evaluate(model, loader, loss_fn, device):",
        '    """Mean loss and accuracy over a DataLoader."""',
        "    model.eval()",
        "    total_loss, correct, count = 0.0, 0, 0",
        "    with torch.no_grad():",
    ]
    if not _is_multi(plan):
        accuracy = [f"            correct += {_accuracy(plan, 'output', 'y')} * len(x)"]
        body = [
            "        for x, y in loader:",
            "            x, y = x.to(device), y.to(device)",
            f"            output = {_single_output(plan)}",
            "            total_loss += loss_fn(output, y).item() * len(x)",
            *(accuracy if classification else []),
            "            count += len(x)",
        ]
    else:
        accuracy = [
            f"            hits = sum({_accuracy(plan, 'o', 't')} for o, t in pairs)",
            "            correct += hits / len(pairs) * len(targets[0])",
        ]
        body = [
            "        for batch in loader:",
            "            inputs, targets = split_batch(batch, device)",
            "            pairs = list(zip(model_outputs(model, inputs), targets, strict=True))",
            "            total_loss += sum(loss_fn(o, t) for o, t in pairs).item() * len(targets[0])",
            *(accuracy if classification else []),
            "            count += len(targets[0])",
        ]
    return [*head, *body, "    return total_loss / count, correct / count"]


def _raise_missing_data(plan: ModelPlan) -> list[str]:
    training = plan.project.training
    arrays = "x" if training.target == "inputs" else "x and y"
    block = Block(2)
    block.statement(
        "raise SystemExit",
        [py(f"pass --data FILE.npz with arrays {arrays} ({training.dataset} is not built in)")],
    )
    return block.lines


def _targets(plan: ModelPlan) -> list[str]:
    training = plan.project.training
    if training.target == "inputs":
        return []
    if training.loss == "cross_entropy":
        return ['    y = y.astype("int64")']
    output = plan.outputs[0].shape
    return [f'    y = y.astype("float32").reshape((-1, {", ".join(map(str, output))}))']


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
    scheduled = is_scheduled(training)
    steps, callbacks = _keras_fit_callbacks(plan)
    lines = _header(plan, "keras") + [
        "import argparse",
        "import contextlib",
        *(["import math"] if scheduled else []),
        "",
        "import keras",
        "import numpy as np",
        "import tensorflow as tf",
        "from keras import layers",
        *(["from sklearn import datasets"] if _uses_sklearn(plan) else []),
        "",
        "",
        *emit_build_model(plan),
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
        "def distribution_scope(args):",
        '    """A tf.distribute strategy for several GPUs or hosts, else a device scope."""',
        '    if args.strategy == "mirrored":',
        "        return tf.distribute.MirroredStrategy().scope()",
        '    if args.strategy == "multi-worker":',
        "        return tf.distribute.MultiWorkerMirroredStrategy().scope()",
        '    if args.device == "auto":',
        "        return contextlib.nullcontext()",
        "    return keras.device(args.device)",
        "",
        "",
        "def main():",
        *_arguments(plan, "model.keras"),
        "    (x_train, y_train), (x_val, y_val) = load_data(args.data)",
        "    keras.utils.set_random_seed(args.seed)",
        *steps,
        "    with distribution_scope(args):",
        "        model = build_model()",
        "        model.compile(",
        "            optimizer=make_optimizer(args.lr),",
        "            loss=make_loss(),",
        f"            metrics={metrics},",
        "        )",
        "        model.fit(",
        "            x_train,",
        "            y_train,",
        "            batch_size=args.batch_size,",
        "            epochs=args.epochs,",
        "            validation_data=(x_val, y_val),",
        "        )",
        "        model.evaluate(x_val, y_val, batch_size=args.batch_size)",
        "    model.save(args.out)",
        '    print(f"saved the trained model to {args.out}")',
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
        ['"--batch-size"', "type=int", f"default={training.batch_size}"],
        ['"--lr"', "type=float", f"default={py(training.learning_rate)}"],
        ['"--seed"', "type=int", f"default={training.seed}"],
        [
            '"--device"',
            'default="auto"',
            f'help="{"auto, cpu or gpu" if keras else "auto, cpu, cuda:N or mps"}"',
        ],
        ['"--data"', f"help={py(_help_text(f'.npz file with arrays {data_arrays}'))}"],
        ['"--out"', f'default="{default_out}"'],
    ]
    if keras:
        flags.insert(5, ['"--strategy"', 'default="none"', 'choices=["none", "mirrored", "multi-worker"]'])
    block = Block(1)
    description = py(_help_text(f"Train {plan.name}.", description=True))
    block.statement("parser = argparse.ArgumentParser", [f"description={description}"])
    for flag in flags:
        block.statement("parser.add_argument", flag)
    block.line("args = parser.parse_args()")
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
        *(["import math"] if is_scheduled(training) else []),
        "import os",
        "",
        "import numpy as np",
        "import torch",
        "import torch.distributed as dist",
        *(["import torch.nn.functional as F"] if any("F." in line for line in module + extra) else []),
        *(["from sklearn import datasets"] if _uses_sklearn(plan) else []),
        "from torch import nn",
        "from torch.nn.parallel import DistributedDataParallel",
        "from torch.utils.data import DataLoader, DistributedSampler, TensorDataset",
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
        *_evaluate(plan, classification),
        "",
        "",
        *_train_step(plan),
        "",
        "",
        "def setup_device(requested):",
        '    """Pick the device; under torchrun, join the process group (gloo on CPU, nccl on GPU)."""',
        '    if requested == "auto":',
        '        requested = "cuda" if torch.cuda.is_available() else "cpu"',
        "    device = torch.device(requested)",
        '    distributed = "WORLD_SIZE" in os.environ',
        "    if distributed:",
        '        if device.type == "cuda":',
        '            device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))',
        "            torch.cuda.set_device(device)",
        '        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")',
        "    return device, distributed",
        "",
        "",
        "def main():",
        *_arguments(plan, "model.pt"),
        "    torch.manual_seed(args.seed)",
        "    device, distributed = setup_device(args.device)",
        "    (x_train, y_train), (x_val, y_val) = load_data(args.data)",
        *_tensor_datasets(plan),
        "    sampler = DistributedSampler(train_set, seed=args.seed) if distributed else None",
        "    train_loader = DataLoader(",
        "        train_set, batch_size=args.batch_size, shuffle=sampler is None, sampler=sampler",
        "    )",
        "    val_loader = DataLoader(val_set, batch_size=args.batch_size)",
        "    model = build_model().to(device)",
        "    if distributed:",
        "        model = DistributedDataParallel(model)",
        "    optimizer = make_optimizer(model.parameters(), args.lr)",
        *(
            [
                "    steps_per_epoch = len(train_loader)",
                "    scheduler = make_scheduler(optimizer, args.lr, steps_per_epoch, args.epochs * steps_per_epoch)",
            ]
            if is_scheduled(training)
            else []
        ),
        "    loss_fn = make_loss()",
        "    for epoch in range(args.epochs):",
        "        if sampler is not None:",
        "            sampler.set_epoch(epoch)",
        "        model.train()",
        *_train_steps(plan),
        *(
            [
                "        val_loss, val_acc = evaluate(model, val_loader, loss_fn, device)",
                '        print(f"epoch {epoch + 1}: val_loss {val_loss:.4f}, val_acc {val_acc:.4f}")',
            ]
            if classification
            else [
                "        val_loss, _ = evaluate(model, val_loader, loss_fn, device)",
                '        print(f"epoch {epoch + 1}: val_loss {val_loss:.4f}")',
            ]
        ),
        "    if not distributed or dist.get_rank() == 0:",
        "        weights = model.module.state_dict() if distributed else model.state_dict()",
        "        torch.save(weights, args.out)",
        '        print(f"saved the trained weights to {args.out}")',
        "    if distributed:",
        "        dist.destroy_process_group()",
        "",
        "",
        'if __name__ == "__main__":',
        "    main()",
    ]
    return "\n".join(lines) + "\n"
