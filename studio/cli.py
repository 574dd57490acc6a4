"""The ``studio`` command line. ``studio`` alone opens the desktop app.

Each sub-command is a small function taking the parsed arguments and
returning the exit code. Heavy modules (Qt, torch, TensorFlow) are imported
inside the commands that need them, so ``studio check`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from studio import __version__
from studio.text import SafeStream

# Exit codes shared by the commands.
OK, PROBLEMS, UNREADABLE = 0, 1, 2
MAX_VERIFY_BATCH = 1024  # verify runs one random batch through both frameworks


def _load(path: str):
    from studio.project import ProjectError, load_project

    try:
        return load_project(path)
    except ProjectError as error:
        print(f"error: {error}", file=sys.stderr)
        return None


def cmd_gui(args: argparse.Namespace) -> int:
    from widgets.app import run_app

    return run_app(args.project, screenshot=args.screenshot)


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
    from codegen.verify import verify_project
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
    try:
        report = call_with_deep_stack(verify_project, project, seed=args.seed, batch=args.batch_size)
    except CodegenError as error:
        print(f"error: {args.project}: {error}", file=sys.stderr)
        return PROBLEMS
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format())
    return OK if report.ok else PROBLEMS


def cmd_export(args: argparse.Namespace) -> int:
    from codegen import CodegenError, generate
    from studio.project import write_text_atomic

    project = _load(args.project)
    if project is None:
        return UNREADABLE
    try:
        code = generate(project, args.framework)
    except CodegenError as error:
        print(f"error: {args.project}: {error}", file=sys.stderr)
        return PROBLEMS
    if args.output in (None, "-"):
        sys.stdout.write(code.source)
    else:
        try:
            write_text_atomic(Path(args.output), code.source)
        except OSError as error:
            print(f"error: cannot write {args.output}: {error.strerror}", file=sys.stderr)
            return UNREADABLE
        print(f"wrote {args.output}", file=sys.stderr)
    if args.weights_out:
        from studio.interop.commands import export_weights_command

        return export_weights_command(args.project, args.framework, args.weights_out, args.weights)
    return OK


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
    }
    try:
        return RunConfig.from_project(args.project, framework, **overrides)
    except (ProjectError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return None


def cmd_train(args: argparse.Namespace) -> int:
    from studio.training import ConfigError, TrainingRun
    from studio.training.console import ProgressPrinter, follow, format_files, format_table
    from studio.training.messages import UNREADABLE_REASONS

    config = _run_config(args, args.framework)
    if config is None:
        return UNREADABLE
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


def cmd_compare(args: argparse.Namespace) -> int:
    from studio.training import ConfigError, compare_frameworks
    from studio.training.console import ProgressPrinter, format_table
    from studio.training.messages import UNREADABLE_REASONS

    config = _run_config(args, "keras")
    if config is None:
        return UNREADABLE
    printer = ProgressPrinter(sys.stdout)
    try:
        report = compare_frameworks(config, parallel=args.parallel, on_message=printer.handle)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return UNREADABLE
    finally:
        printer.close()
    failed = [result.outcome for result in report.results.values() if not result.ok]
    if failed:
        reasons = {outcome.get("reason") for outcome in failed}
        return UNREADABLE if reasons & UNREADABLE_REASONS else PROBLEMS
    summaries = {framework: result.summary for framework, result in report.results.items()}
    difference = report.max_loss_difference
    gap = (
        "-" if difference is None else f"{difference:.3g} (step {report.at_step} of {report.steps_compared})"
    )
    print(format_table(summaries))
    print(f"max loss-curve difference: {gap}")
    for note in report.notes:
        print(f"note: {note}")
    return OK


def build_parser() -> argparse.ArgumentParser:
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
    gui.set_defaults(func=cmd_gui)

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
    verify.add_argument("--seed", type=int, default=0, help="seed of the random batch (default 0)")
    verify.add_argument("--batch-size", type=int, default=4, help="size of the random batch (default 4)")
    verify.set_defaults(func=cmd_verify)

    export = commands.add_parser("export", help="write the generated Keras or PyTorch program")
    export.add_argument("project")
    export.add_argument("--framework", required=True, choices=("keras", "pytorch"))
    export.add_argument("-o", "--output", help="file to write (default: standard output)")
    export.add_argument(
        "--weights-out",
        metavar="FILE",
        help="also write the weights: a state_dict .pt (pytorch) or a .weights.h5 (keras)",
    )
    export.add_argument(
        "--weights", metavar="FILE.npz", help="the project's weights (default: PROJECT.weights.npz beside it)"
    )
    export.set_defaults(func=cmd_export)

    from studio.interop.commands import add_import_parser

    add_import_parser(commands)

    train = commands.add_parser(
        "train",
        help="train the model in Keras or PyTorch; exit 0 if done, 1 if the run failed, 2 if unreadable",
    )
    train.add_argument("project")
    train.add_argument("--framework", required=True, choices=("keras", "pytorch"))
    _training_arguments(train)
    train.add_argument("--patience", type=int, help="stop after this many epochs without a better val_loss")
    train.add_argument(
        "--resume", metavar="RUN_DIR", help="continue the run in this folder from its checkpoint"
    )
    train.add_argument(
        "--same-start",
        action="store_true",
        default=None,
        help="PyTorch: start from the Keras initial weights",
    )
    train.set_defaults(func=cmd_train)

    compare = commands.add_parser(
        "compare", help="train in both frameworks from the same weights and compare speed, memory and losses"
    )
    compare.add_argument("project")
    _training_arguments(compare)
    compare.add_argument("--parallel", action="store_true", help="train both at once (timings then compete)")
    compare.set_defaults(func=cmd_compare)
    return parser


def _training_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by `train` and `compare`; each defaults to the project's training settings."""
    parser.add_argument("--dataset", metavar="NAME|PATH", help="built-in dataset name or data file/folder")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float, help="learning rate")
    parser.add_argument("--optimizer", choices=("adam", "adamw", "sgd", "rmsprop"))
    parser.add_argument("--loss", choices=("cross_entropy", "binary_cross_entropy", "mse", "mae"))
    parser.add_argument("--device", help="auto (default), cpu, gpu, cuda:N, gpu:N or mps")
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--out", metavar="RUN_DIR", help="run folder (default: runs/<project>-<framework>-<time>)"
    )


PATH_ARGUMENTS = (
    "project",
    "output",
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
