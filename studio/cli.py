"""The ``studio`` command line. ``studio`` alone opens the desktop app.

Each sub-command is a small function taking the parsed arguments and
returning the exit code. Heavy modules (Qt, torch, TensorFlow) are imported
inside the commands that need them, so ``studio check`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from studio import __version__

# Exit codes shared by the commands.
OK, PROBLEMS, UNREADABLE = 0, 1, 2


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

    project = _load(args.project)
    if project is None:
        return UNREADABLE
    try:
        report = verify_project(project, seed=args.seed, batch=args.batch_size)
    except CodegenError as error:
        print(f"error: {error}", file=sys.stderr)
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
        print(f"error: {error}", file=sys.stderr)
        return PROBLEMS
    if args.output in (None, "-"):
        sys.stdout.write(code.source)
        return OK
    try:
        write_text_atomic(Path(args.output), code.source)
    except OSError as error:
        print(f"error: cannot write {args.output}: {error.strerror}", file=sys.stderr)
        return UNREADABLE
    print(f"wrote {args.output}", file=sys.stderr)
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
    export.set_defaults(func=cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["gui"])
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
