"""The ``studio`` command line. ``studio`` alone opens the desktop app.

Each sub-command is a small function taking the parsed arguments and
returning the exit code. Heavy modules (Qt, torch, TensorFlow, numpy,
networkx, codegen) are imported inside the commands that need them, so
``studio --help``, every ``studio COMMAND --help`` and ``studio check`` stay
fast (``benchmarks/bench_cli.py``). Run-setting errors name the flag the
user typed, and framework start-up chatter stays off stderr
(:mod:`studio.frameworks`).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from studio import __version__
from studio.frameworks import import_quietly, set_quiet_environment
from studio.text import SafeStream

# Exit codes shared by the commands.
OK, PROBLEMS, UNREADABLE = 0, 1, 2
MAX_VERIFY_BATCH = 1024  # verify runs one random batch through both frameworks

# Why a run can fail before it trains: bad input, so the exit code is 2.

# The command-line flag of each run setting, for error messages.
FLAGS = {
    "dataset": "--dataset",
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "learning_rate": "--lr",
    "optimizer": "--optimizer",
    "loss": "--loss",
    "seed": "--seed",
    "device": "--device",
    "out_dir": "--out",
    "early_stopping_patience": "--patience",
    "resume_from": "--resume",
    "same_start": "--same-start",
    "lr_schedule": "--lr-schedule",
    "lr_step_epochs": "--lr-step-epochs",
    "lr_gamma": "--lr-gamma",
    "lr_warmup_epochs": "--lr-warmup-epochs",
    "lr_min": "--lr-min",
    "precision": "--precision",
    "tensorboard": "--tensorboard",
}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" after each option that has a default worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _load(path: str):
    from studio.project import ProjectError, load_project

    try:
        return load_project(path)
    except ProjectError as error:
        print(f"error: {error}", file=sys.stderr)
        return None


def cmd_gui(args: argparse.Namespace) -> int:
    from widgets.app import run_app

    return run_app(args.project, screenshot=args.screenshot, size=args.size)


def window_size(text: str) -> tuple[int, int]:
    """``1400x900`` -> (1400, 900); argparse reports anything else in one line."""
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit()) or not (
        320 <= int(width) <= 10000 and 240 <= int(height) <= 10000
    ):
        raise argparse.ArgumentTypeError(
            f"expected WIDTHxHEIGHT in pixels, such as 1400x900. Received: {text!r}"
        )
    return int(width), int(height)


def cmd_new(args: argparse.Namespace) -> int:
    from studio.project import EXTENSION, ProjectError, save_project
    from studio.templates import create_project, list_templates

    if args.list:
        for template in list_templates():
            print(f"{template.name}\t{template.title}: {template.description}")
        return OK
    if args.path is None:
        print("error: give the new project's path (or --list to see the templates)", file=sys.stderr)
        return UNREADABLE
    path = Path(args.path if args.path.endswith(EXTENSION) else args.path + EXTENSION)
    if path.exists():
        print(f"error: {path} already exists; choose another path", file=sys.stderr)
        return UNREADABLE
    try:
        project = create_project(args.template)
        save_project(project, path)
    except ProjectError as error:
        print(f"error: {error}", file=sys.stderr)
        return UNREADABLE
    except OSError as error:
        print(f"error: cannot write {path}: {error.strerror or error}", file=sys.stderr)
        return UNREADABLE
    print(f"wrote {path} (template {args.template})")
    return OK


def cmd_check(args: argparse.Namespace) -> int:
    from studio.analysis import analyze

    project = _load(args.project)
    if project is None:
        return UNREADABLE
    analysis = analyze(project.graph)
    for problem in analysis.problems:
        print(problem)
    errors, warnings = len(analysis.errors), len(analysis.problems) - len(analysis.errors)
    layers = len(project.graph)
    if errors:
        print(f"{args.project}: {errors} error(s), {warnings} warning(s) in {layers} layers")
        return PROBLEMS
    total = analysis.total_params.total
    print(
        f"{args.project}: valid, {layers} layers, {total:,} parameters"
        + (f", {warnings} warning(s)" if warnings else "")
    )
    return OK


def cmd_summary(args: argparse.Namespace) -> int:
    from studio.summary import format_summary

    project = _load(args.project)
    if project is None:
        return UNREADABLE
    print(format_summary(project.graph, title=project.name))
    return OK


def cmd_verify(args: argparse.Namespace) -> int:
    import json

    from codegen import CodegenError
    from codegen.verify import ProgramMismatch, verify_project
    from studio.stack import call_with_deep_stack

    if not 1 <= args.batch_size <= MAX_VERIFY_BATCH or not 0 <= args.seed <= 2**32 - 1:
        print(
            f"error: verify takes --batch-size from 1 to {MAX_VERIFY_BATCH} and --seed from 0 to "
            f"{2**32 - 1}. Received: --batch-size {args.batch_size}, --seed {args.seed}",
            file=sys.stderr,
        )
        return UNREADABLE
    project = _load(args.project)
    if project is None:
        return UNREADABLE
    import_quietly("tensorflow")
    sources = {}
    for framework, path in (("keras", args.keras), ("pytorch", args.pytorch)):
        if path is not None:
            source = _read_program(path, f"--{framework}")
            if source is None:
                return UNREADABLE
            sources[framework] = source
    try:
        from studio.project import OPTIMIZERS

        optimizers = OPTIMIZERS if args.optimizer == "all" else [args.optimizer or project.training.optimizer]
        report = call_with_deep_stack(
            verify_project,
            project,
            seed=args.seed,
            batch=args.batch_size,
            sources=sources,
            optimizers=optimizers,
            steps=args.steps,
            run_main=not args.skip_main,
            progress=_print_progress if args.progress else None,
        )
    except (CodegenError, ProgramMismatch) as error:
        if args.json:
            print(json.dumps({"ok": False, "error": str(error)}, indent=2))
        print(f"error: {args.project}: {error}", file=sys.stderr)
        return PROBLEMS
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format())
    return OK if report.ok else PROBLEMS


def _print_progress(stage: int, stages: int, text: str) -> None:
    """A stage of the proof, for the GUI (studio.warm forwards these lines as they come)."""
    print(f"progress: {stage}/{stages} {text}", file=sys.stderr, flush=True)


MAX_PROGRAM_BYTES = 10_000_000


def _read_program(path: str, flag: str) -> str | None:
    """The text of a Python program given on the command line, or None after saying why not."""
    from pathlib import Path

    file = Path(path).expanduser()
    try:
        if not file.is_file():
            raise OSError("no such file (or not a regular file)")
        if file.stat().st_size > MAX_PROGRAM_BYTES:
            raise OSError(f"larger than {MAX_PROGRAM_BYTES // 1_000_000} MB; a program is far smaller")
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        print(f"error: {flag} {path}: cannot read the program: {reason}", file=sys.stderr)
        return None


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (argparse then exits 2 naming the flag)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer. Received: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer. Received: {value}")
    return value


def cmd_export(args: argparse.Namespace) -> int:
    from codegen import CodegenError, generate
    from studio.project import write_text_atomic

    misplaced = _misplaced_export_options(args)
    if misplaced:
        print(f"error: {misplaced}", file=sys.stderr)
        return UNREADABLE
    if args.format is not None:
        return _export_model_file(args)
    project = _load(args.project)
    if project is None:
        return UNREADABLE
    try:
        code = generate(project, args.framework)
    except CodegenError as error:
        print(f"error: {args.project}: {error}", file=sys.stderr)
        return PROBLEMS
    if args.weights_out:  # the weights first: when they fail, no program is written either
        from studio.interop.commands import export_weights_command

        if args.framework == "keras":
            import_quietly("tensorflow")
        status = export_weights_command(args.project, args.framework, args.weights_out, args.weights)
        if status != OK:
            return status
    if args.output in (None, "-"):
        sys.stdout.write(code.source)
    else:
        try:
            write_text_atomic(Path(args.output), code.source)
        except OSError as error:
            print(f"error: cannot write {args.output}: {error.strerror}", file=sys.stderr)
            return UNREADABLE
        print(f"wrote {args.output}", file=sys.stderr)
    return OK


# Deployment formats (codegen.deploy.FORMATS, repeated so that `studio export --help` loads no codegen).
MODEL_FORMATS = ("keras", "pytorch", "onnx", "pt2", "litert", "savedmodel")
FORMAT_HELP = (
    "write the trained model as a file: keras (.keras), pytorch (.pt state_dict), onnx (.onnx, through "
    "torch.export), pt2 (.pt2, a torch.export ExportedProgram), litert (.tflite), savedmodel (a folder, "
    "for TF Serving); it is loaded back in its own runtime and compared with the model first"
)


def _misplaced_export_options(args: argparse.Namespace) -> str | None:
    """One line about options that do not go together, or None."""
    if (args.format is None) == (args.framework is None):
        return "export takes --framework (the program's source) or --format (a model file), not both"
    if args.format is not None:
        if args.format not in MODEL_FORMATS:
            return f"--format: unknown format {args.format!r}; expected one of {', '.join(MODEL_FORMATS)}"
        if not args.output or args.output == "-":
            return "--format needs -o FILE: the model file to write"
        if args.weights_out:
            return "--weights-out goes with --framework (the program and its weights), not --format"
        if args.run and args.weights:
            return "--run and --weights both name the weights: give one"
        if args.format == "keras" and Path(args.output).suffix != ".keras":
            return (
                f"--format keras: a Keras model file must end in .keras. Received: {Path(args.output).name}"
            )
    elif args.run:
        return "--run goes with --format: the program (--framework) carries no weights"
    return None


def _export_model_file(args: argparse.Namespace) -> int:
    """``studio export PROJECT --format F -o FILE [--run RUN_DIR | --weights FILE.npz]``."""
    project = _load(args.project)
    if project is None:
        return UNREADABLE
    import_quietly("tensorflow", "torch")
    from studio.interop import InteropError, WeightsError, export_model, load_weights, weights_path_for
    from studio.interop.export import read_run_weights, seeded_weights
    from studio.stack import call_with_deep_stack

    try:
        if args.run:
            from studio.training import ConfigError
            from studio.training.rundir import trained_weights

            try:
                path, what = trained_weights(args.run)
            except ConfigError as error:
                print(f"error: --run {error}", file=sys.stderr)
                return UNREADABLE
            weights, source = call_with_deep_stack(read_run_weights, project, path), f"{what}, {path}"
        else:
            path = Path(args.weights) if args.weights else weights_path_for(args.project)
            if args.weights or path.exists():
                weights, source = load_weights(path), f"the weights in {path}"
            else:
                weights = call_with_deep_stack(seeded_weights, project, args.seed)
                source = f"no trained weights: Keras's initialisers, seed {args.seed}"
        print(f"weights: {source}", file=sys.stderr)
        report = call_with_deep_stack(export_model, project, args.format, weights, args.output)
    except WeightsError as error:
        print(f"error: {args.project}: {error}", file=sys.stderr)
        return UNREADABLE
    except InteropError as error:
        print(f"error: {args.project}: {error}", file=sys.stderr)
        return PROBLEMS
    except OSError as error:
        print(f"error: cannot write {args.output}: {error.strerror or error}", file=sys.stderr)
        return UNREADABLE
    print(report.text())
    return OK


def cmd_import(args: argparse.Namespace) -> int:
    from studio.interop.commands import cmd_import as import_command

    if Path(args.model).suffix.lower() in (".keras", ".h5", ".hdf5", ".json"):
        import_quietly("tensorflow")  # Keras files: TensorFlow's start-up lines stay off stderr
    return import_command(args)


def _run_config(args: argparse.Namespace, framework: str):
    """The RunConfig of `train`/`compare` (None after printing the error)."""
    from studio.project import ProjectError
    from studio.training import ConfigError, RunConfig

    overrides = {
        "dataset": args.dataset,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "optimizer": args.optimizer,
        "loss": args.loss,
        "seed": args.seed,
        "device": args.device,
        "out_dir": args.out,
        "early_stopping_patience": getattr(args, "patience", None),
        "resume_from": getattr(args, "resume", None),
        "same_start": getattr(args, "same_start", None),
        "lr_schedule": args.lr_schedule,
        "lr_step_epochs": args.lr_step_epochs,
        "lr_gamma": args.lr_gamma,
        "lr_warmup_epochs": args.lr_warmup_epochs,
        "lr_min": args.lr_min,
        "precision": args.precision,
        "tensorboard": getattr(args, "tensorboard", None),
    }
    try:
        return RunConfig.from_project(args.project, framework, **overrides)
    except ProjectError as error:
        print(f"error: {error}", file=sys.stderr)
    except ConfigError as error:
        given = {field for field, value in overrides.items() if value is not None}
        print(f"error: {in_cli_terms(str(error), given, args.project)}", file=sys.stderr)
    return None


def in_cli_terms(message: str, given: set[str], project: str) -> str:
    """A run-setting error as the user knows it: ``config.epochs: ...`` becomes ``--epochs: ...`` when
    the value came from that flag, and ``PROJECT: training.epochs: ...`` when it came from the project."""
    match = re.match(r"config\.(\w+)(.*)", message, re.DOTALL)
    if match is None:
        return message
    field, rest = match.groups()
    if field in given and field in FLAGS:
        return f"{FLAGS[field]}{rest}"
    return f"{project}: training.{field}{rest}"


def cmd_train(args: argparse.Namespace) -> int:
    from studio.training import ConfigError, TrainingRun
    from studio.training.console import ProgressPrinter, follow, format_files, format_table
    from studio.training.messages import UNREADABLE_REASONS

    config = _run_config(args, args.framework)
    if config is None:
        return UNREADABLE
    if args.processes != 1:
        return _train_processes(config, args.processes)
    run = TrainingRun(config)
    try:
        run.start()
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return UNREADABLE
    outcome = follow(run, ProgressPrinter(sys.stdout))
    if outcome is None or outcome["type"] == "failed":
        reason = outcome.get("reason") if outcome else None
        return UNREADABLE if reason in UNREADABLE_REASONS else PROBLEMS
    summary = outcome["summary"]
    print(format_table({config.framework: summary}))
    print(format_files(summary))
    return OK if outcome["type"] == "finished" else 130


def _train_processes(config, processes: int) -> int:
    """`studio train --processes N`: N local torchrun workers of the exported PyTorch program."""
    from studio.training import ConfigError
    from studio.training.distributed import train_processes
    from studio.training.errors import TrainingError

    try:
        code = train_processes(config, processes)
    except (ConfigError, TrainingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return UNREADABLE
    return OK if code == 0 else PROBLEMS


def cmd_compare(args: argparse.Namespace) -> int:
    from studio.training import ConfigError, compare_frameworks
    from studio.training.console import ProgressPrinter, format_comparison
    from studio.training.messages import UNREADABLE_REASONS

    for flag, value in (("--repeats", args.repeats), ("--threads", args.threads)):
        if value is not None and value < 1:
            print(f"error: {flag}: expected a positive integer. Received: {value}", file=sys.stderr)
            return UNREADABLE
    config = _run_config(args, "keras")
    if config is None:
        return UNREADABLE
    printer = ProgressPrinter(sys.stdout)
    try:
        report = compare_frameworks(
            config,
            parallel=args.parallel,
            repeats=args.repeats,
            threads=args.threads,
            on_message=printer.handle,
        )
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return UNREADABLE
    finally:
        printer.close()
    failed = [result.outcome for result in report.results.values() if not result.ok]
    if failed:
        reasons = {outcome.get("reason") for outcome in failed}
        return UNREADABLE if reasons & UNREADABLE_REASONS else PROBLEMS
    data = report.to_dict()
    difference = report.max_loss_difference
    gap = (
        "-" if difference is None else f"{difference:.3g} (step {report.at_step} of {report.steps_compared})"
    )
    how = "at once, sharing the cores" if report.parallel else "one after the other"
    print(f"{len(report.rounds)} repeat(s), {how}, on {report.cores} cores")
    print(format_comparison(data))
    print(f"max loss-curve difference: {gap}")
    if report.weight_drift:
        layer, drift = max(report.weight_drift.items(), key=lambda item: item[1])
        print(f"final weights: the largest drift is {drift:.3g} relative, in {layer}")
    if report.verdict:
        print(f"verdict: {report.verdict}")
    for note in report.notes:
        print(f"note: {note}")
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {report.json_path} and {report.png_path}")
    if args.json:
        from studio.project import write_text_atomic

        try:
            write_text_atomic(Path(args.json), report.json_path.read_text(encoding="utf-8"))
        except OSError as error:
            print(f"error: cannot write {args.json}: {error.strerror}", file=sys.stderr)
            return UNREADABLE
        print(f"wrote {args.json}")
    return OK


def build_parser() -> argparse.ArgumentParser:
    from studio.project import FRAMEWORKS, OPTIMIZERS

    parser = argparse.ArgumentParser(
        prog="studio",
        description="Layer Studio: design neural networks visually, with equivalent Keras and PyTorch code.",
        epilog="Run `studio` with no command to open the desktop app.",
    )
    parser.add_argument("--version", action="version", version=f"Layer Studio {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    gui = commands.add_parser("gui", help="open the desktop app (the default)")
    gui.add_argument("project", nargs="?", help="project file to open")
    gui.add_argument("--screenshot", metavar="FILE.png", help="save a screenshot of the window and exit")
    gui.add_argument(
        "--size", metavar="WxH", type=window_size, help="window size in pixels, such as 1400x900"
    )
    gui.set_defaults(func=cmd_gui)

    new = commands.add_parser("new", help="write a new project from a template (--list shows them)")
    new.add_argument("path", nargs="?", help="the project file to write (.layers.json is added)")
    new.add_argument("--template", default="blank", help="template name (default: blank)")
    new.add_argument("--list", action="store_true", help="print the templates, one a line, name first")
    new.set_defaults(func=cmd_new)

    check = commands.add_parser(
        "check", help="validate a project; exit 0 if valid, 1 if not, 2 if unreadable"
    )
    check.add_argument("project")
    check.set_defaults(func=cmd_check)

    summary = commands.add_parser("summary", help="print a table of layers, shapes and parameters")
    summary.add_argument("project")
    summary.set_defaults(func=cmd_summary)

    verify = commands.add_parser(
        "verify", help="prove the generated Keras and PyTorch models equivalent (exit 0) or not (exit 1)"
    )
    verify.add_argument("project")
    verify.add_argument("--json", action="store_true", help="print the figures as JSON")
    verify.add_argument("--seed", type=int, default=0, help="seed of the random batch")
    verify.add_argument("--batch-size", type=positive_int, default=4, help="size of the random batch")
    verify.add_argument(
        "--keras",
        metavar="FILE.py",
        help="check this Keras program (e.g. an edited export) instead of the generated one; it is run",
    )
    verify.add_argument(
        "--pytorch",
        metavar="FILE.py",
        help="check this PyTorch program instead of the generated one; it is run",
    )
    verify.add_argument(
        "--optimizer",
        choices=[*OPTIMIZERS, "all"],
        help="train with this optimizer in both programs (default: the project's); all: each in turn",
    )
    verify.add_argument(
        "--steps", type=positive_int, default=5, help="training steps per optimizer to compare"
    )
    verify.add_argument(
        "--skip-main", action="store_true", help="do not run each program's main() for one tiny epoch"
    )
    verify.add_argument(
        "--progress", action="store_true", help="print each stage on stderr as it begins (progress: K/N ...)"
    )
    verify.set_defaults(func=cmd_verify)

    export = commands.add_parser(
        "export",
        help="write the generated program (--framework) or the model as a deployment file (--format)",
        description=(
            "--framework writes the generated Keras or PyTorch program. --format writes the model itself, "
            "with the weights of --run, else --weights, else PROJECT.weights.npz beside the project, else "
            "a seeded initialisation; the file is loaded back in its own runtime and compared with the "
            "model on a random batch: the largest difference is printed, and above the tolerance (1e-4; "
            "stated for each format) nothing is written and the exit code is 1."
        ),
        formatter_class=HelpFormatter,
    )
    export.add_argument("project")
    what = export.add_argument_group("what to write (one of)")
    what.add_argument("--framework", choices=FRAMEWORKS, help="write the generated program's source")
    what.add_argument("--format", metavar="{" + ",".join(MODEL_FORMATS) + "}", help=FORMAT_HELP)
    export.add_argument(
        "-o", "--output", help="file to write (default: standard output; --format needs a file)"
    )
    export.add_argument(
        "--weights-out",
        metavar="FILE",
        help="with --framework: also write the weights, a state_dict .pt (pytorch) or a .weights.h5 (keras)",
    )
    export.add_argument(
        "--weights", metavar="FILE.npz", help="the project's weights (default: PROJECT.weights.npz beside it)"
    )
    export.add_argument(
        "--run",
        metavar="RUN_DIR",
        help="with --format: export the weights this training run saved (final, else its checkpoint)",
    )
    export.add_argument(
        "--seed", type=int, default=0, help="with --format and no weights: seed of the initialisation"
    )
    export.set_defaults(func=cmd_export)

    from studio.interop.commands import add_import_parser

    add_import_parser(commands).set_defaults(func=cmd_import)

    train = commands.add_parser(
        "train",
        help="train the model in Keras or PyTorch; exit 0 if done, 1 if the run failed, 2 if unreadable",
    )
    train.add_argument("project")
    train.add_argument("--framework", required=True, choices=FRAMEWORKS)
    _training_arguments(train)
    train.add_argument(
        "--patience",
        type=int,
        help="stop after this many epochs without a better val_loss; 0 = never (default: the project's setting)",
    )
    train.add_argument(
        "--resume", metavar="RUN_DIR", help="continue the run in this folder from its checkpoint"
    )
    train.add_argument(
        "--processes",
        type=int,
        default=1,
        metavar="N",
        help="PyTorch: train with N local processes under torchrun, rehearsing a cluster job "
        "(--batch-size is then the global batch)",
    )
    train.add_argument(
        "--same-start",
        action="store_true",
        default=None,
        help="PyTorch: start from the Keras initial weights",
    )
    train.add_argument(
        "--tensorboard",
        action="store_true",
        default=None,
        help="write TensorBoard event files into RUN_DIR/tensorboard (loss, accuracy, learning rate, "
        "weight histograms per epoch); watch with `tensorboard --logdir RUN_DIR`",
    )
    train.set_defaults(func=cmd_train)

    compare = commands.add_parser(
        "compare", help="train in both frameworks from the same weights and compare speed, memory and losses"
    )
    compare.add_argument("project")
    _training_arguments(compare)
    compare.add_argument(
        "--parallel",
        action="store_true",
        help="train both at once, each with half the cores (timings compete)",
    )
    compare.add_argument(
        "--repeats", type=int, default=1, help="train each framework N times: median, min, max"
    )
    compare.add_argument(
        "--threads",
        type=int,
        help="compute threads of each framework (default: every core; half of them with --parallel)",
    )
    compare.add_argument("--json", metavar="FILE", help="also write the figures (compare.json) to FILE")
    compare.set_defaults(func=cmd_compare)

    for command in commands.choices.values():
        command.formatter_class = HelpFormatter
    return parser


def _training_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by `train` and `compare`; each defaults to the project's training settings."""
    settings = parser.add_argument_group(
        "training settings", "each defaults to the project's own setting (see `studio summary`)"
    )
    settings.add_argument("--dataset", metavar="NAME|PATH", help="built-in dataset name or data file/folder")
    settings.add_argument("--epochs", type=int, help="number of epochs")
    settings.add_argument("--batch-size", type=int, help="samples per training batch")
    settings.add_argument("--lr", type=float, help="learning rate")
    settings.add_argument("--optimizer", choices=("adam", "adamw", "sgd", "rmsprop"))
    settings.add_argument("--loss", choices=("cross_entropy", "binary_cross_entropy", "mse", "mae"))
    settings.add_argument("--device", help="auto, cpu, gpu, cuda, cuda:N, gpu:N or mps")
    settings.add_argument("--seed", type=int, help="seed of the initial weights and the batch order")
    _schedule_arguments(parser)
    folder = (
        "runs/<project>-compare-<time>"
        if parser.prog.endswith("compare")
        else "runs/<project>-<framework>-<time>"
    )
    parser.add_argument("--out", metavar="RUN_DIR", help=f"run folder (default: {folder})")


def _schedule_arguments(parser: argparse.ArgumentParser) -> None:
    """The learning-rate schedule and the precision; each defaults to the project's setting, whose
    value in a new project the help shows."""
    from studio.project import LR_SCHEDULES, PRECISIONS, TrainingSettings

    new = TrainingSettings()
    group = parser.add_argument_group(
        "learning-rate schedule and precision",
        "each defaults to the project's setting; (new project: X) is that setting in a new project. "
        "The rate changes before every batch, the same in Keras and PyTorch",
    )
    group.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        help="constant; step: times --lr-gamma every --lr-step-epochs; cosine: down to --lr-min; "
        "onecycle: from lr/25 up to lr over 30%% of the steps, then down to --lr-min; warmup-cosine: "
        f"linear warm-up over --lr-warmup-epochs, then cosine (new project: {new.lr_schedule})",
    )
    group.add_argument(
        "--lr-step-epochs",
        type=int,
        metavar="N",
        help=f"step: epochs between decays (new project: {new.lr_step_epochs})",
    )
    group.add_argument(
        "--lr-gamma",
        type=float,
        metavar="F",
        help=f"step: factor of each decay (new project: {new.lr_gamma})",
    )
    group.add_argument(
        "--lr-warmup-epochs",
        type=float,
        metavar="E",
        help=f"warmup-cosine: epochs of linear warm-up (new project: {new.lr_warmup_epochs})",
    )
    group.add_argument(
        "--lr-min",
        type=float,
        metavar="LR",
        help=f"cosine, onecycle, warmup-cosine: the final rate (new project: {new.lr_min})",
    )
    group.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="fp32; bf16: mixed bfloat16 (CPU and GPU); fp16: mixed float16 with loss scaling (CUDA GPUs "
        f"only). Keras keeps the output layer in float32 (new project: {new.precision})",
    )


PATH_ARGUMENTS = (
    "project",
    "output",
    "run",
    "out",
    "resume",
    "weights",
    "weights_out",
    "dataset",
    "model",
    "state_dict",
)


def _expand_home_folders(args: argparse.Namespace) -> str | None:
    """Expand ``~`` and ``~user`` in path arguments (as a shell does when quoting kept it); the
    error text for a user that does not exist, or None."""
    for name in PATH_ARGUMENTS:
        value = getattr(args, name, None)
        if isinstance(value, str) and value.startswith("~"):
            try:
                setattr(args, name, str(Path(value).expanduser()))
            except RuntimeError:
                user = value.split("/", 1)[0]
                return f"{value}: there is no user {user[1:]!r}, so {user} names no home folder"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    set_quiet_environment()  # before any framework import, here or in a child process
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["gui"])
    problem = _expand_home_folders(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return UNREADABLE
    # Names and descriptions from files are printed: no escape sequence or lone surrogate gets through.
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = SafeStream(sys.stdout), SafeStream(sys.stderr)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (MemoryError, RecursionError) as error:  # a last line of defence: the limits should prevent it
        what = "not enough memory" if isinstance(error, MemoryError) else "the model is nested too deeply"
        subject = getattr(args, "project", None) or getattr(args, "model", None) or args.command
        print(f"error: {subject}: {what} for `studio {args.command}`", file=sys.stderr)
        return PROBLEMS
    except BrokenPipeError:  # the reader went away (`studio summary x | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.__stdout__.fileno())
        return OK
    finally:
        sys.stdout, sys.stderr = streams


if __name__ == "__main__":
    sys.exit(main())
