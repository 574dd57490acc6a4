"""The ``studio import`` command, and the weight export that ``studio export --weights-out`` calls.

    studio import resnet.keras [-o resnet.layers.json] [--weights]
    studio import net.onnx --weights
    studio import model.py:ResNet18 --input-shape 3,224,224 --allow-code [--state-dict w.pt] --weights
    studio import zoo:                     # list the model zoo (studio.interop.zoo)
    studio import zoo:torchvision/resnet18 [--pretrained] --weights

Exit codes: 0 imported; 1 the model uses layers the catalog cannot express
(every one is listed); 2 the file is unreadable, or a Python file was not
allowed to run, or the output cannot be written. Nothing is written unless
the whole import succeeds.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from studio.catalog.params import MAX_INT, MAX_RANK

OK, UNSUPPORTED, UNREADABLE = 0, 1, 2
ZOO_PREFIX = "zoo:"  # studio.interop.zoo.PREFIX, without importing it for `studio --help`

__all__ = ["add_import_parser", "cmd_import", "export_weights_command", "parse_import_args"]


def _shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(part) for part in text.replace("x", ",").split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(  # noqa: B904 - argparse reports only the message
            f"expected sizes separated by commas, e.g. 3,224,224. Received: {text!r}"
        )
    if not dims or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"expected positive sizes, e.g. 3,224,224. Received: {text!r}")
    if len(dims) > MAX_RANK or max(dims) > MAX_INT:
        raise argparse.ArgumentTypeError(
            f"expected at most {MAX_RANK} sizes of at most {MAX_INT}. Received: {text[:40]!r}"
        )
    return dims


def add_import_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "import",
        help="turn a Keras, ONNX or PyTorch model into a project (exit 1: unsupported layers, 2: unreadable)",
        description=(
            "Import a model as an editable project. Keras files load in safe mode, ONNX files are only "
            "parsed; a PyTorch model is Python code and runs only with --allow-code."
        ),
    )
    parser.add_argument(
        "model",
        help="model.keras, model.h5, model.json, model.onnx, model.py:ClassOrFunction, or zoo:LIBRARY/NAME "
        "(zoo: alone lists the model zoo)",
    )
    parser.add_argument(
        "-o", "--output", help="project file to write (default: the model's name + .layers.json, beside it)"
    )
    parser.add_argument(
        "--weights",
        action="store_true",
        help="also save the weights beside the project as <project>.weights.npz (Keras layout)",
    )
    parser.add_argument("--name", help="project name (default: the model's name)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing project file")
    torch_group = parser.add_argument_group("PyTorch models")
    torch_group.add_argument(
        "--input-shape",
        type=_shape,
        action="append",
        metavar="C,H,W",
        help="input shape without the batch, channels-first as PyTorch has it (repeat for several inputs); "
        "for a Keras model, its shape as Keras has it, to fix sizes it leaves unknown (None)",
    )
    torch_group.add_argument(
        "--allow-code", action="store_true", help="allow executing the Python file (only for files you trust)"
    )
    torch_group.add_argument(
        "--state-dict",
        metavar="FILE.pt",
        help="weights to load first, read with torch.load(weights_only=True)",
    )
    zoo_group = parser.add_argument_group("Model zoo (zoo:NAME; --input-shape overrides its input)")
    zoo_group.add_argument(
        "--pretrained",
        action="store_true",
        help="load the library's pretrained weights (downloaded on first use) instead of random ones",
    )
    parser.set_defaults(func=cmd_import)
    return parser


def parse_import_args(argv: list[str]) -> argparse.Namespace:
    """``studio import`` arguments parsed on their own (``argv`` without the word "import")."""
    parser = argparse.ArgumentParser(prog="studio")
    add_import_parser(parser.add_subparsers())
    return parser.parse_args(["import", *argv])


def default_output(model: str) -> Path:
    from studio.interop import split_python_target

    target = split_python_target(model)
    if target is not None:
        path, entry = target
        return path.with_name(f"{entry}.layers.json")
    if model.startswith(ZOO_PREFIX):
        return Path(re.sub(r"\W+", "_", model.rpartition("/")[2]) + ".layers.json")
    path = Path(model)
    return path.with_name(path.stem + ".layers.json")


def cmd_import(args: argparse.Namespace) -> int:
    from studio.interop import (
        CodeExecutionRefused,
        InteropError,
        ModelFileError,
        UnsupportedModelError,
        import_model,
        save_imported,
        split_python_target,
    )

    zoo_name = args.model.removeprefix(ZOO_PREFIX) if args.model.startswith(ZOO_PREFIX) else None
    if zoo_name is not None and (not zoo_name or zoo_name.endswith("/")):
        return list_zoo(zoo_name.rstrip("/"))
    output = Path(args.output) if args.output else default_output(args.model)
    if output.exists() and not args.force:
        print(
            f"error: {output} exists; pass --force to overwrite it, or -o to choose another file",
            file=sys.stderr,
        )
        return UNREADABLE
    is_python = split_python_target(args.model) is not None
    if not is_python and (args.allow_code or args.state_dict):
        print("note: --allow-code and --state-dict apply to PyTorch models only", file=sys.stderr)
    if args.input_shape and Path(args.model).suffix.lower() == ".onnx":
        print("note: --input-shape applies to PyTorch and Keras models only", file=sys.stderr)
    if args.pretrained and zoo_name is None:
        print("note: --pretrained applies to zoo: models only", file=sys.stderr)
    try:
        if zoo_name is not None:
            imported = _import_zoo(zoo_name, args)
        else:
            imported = import_model(
                args.model,
                with_weights=args.weights,
                name=args.name,
                input_shapes=args.input_shape,
                allow_code=args.allow_code,
                state_dict=args.state_dict,
            )
    except UnsupportedModelError as error:
        print(f"error: {error}", file=sys.stderr)
        print("nothing was written", file=sys.stderr)
        return UNSUPPORTED
    except (ModelFileError, CodeExecutionRefused) as error:
        print(f"error: {error}", file=sys.stderr)
        return UNREADABLE
    except InteropError as error:
        print(f"error: {error}", file=sys.stderr)
        return UNREADABLE
    try:
        project_path, weights_path = save_imported(imported, output)
    except OSError as error:
        print(f"error: cannot write {output}: {error.strerror or error}", file=sys.stderr)
        return UNREADABLE
    _report(imported, project_path, weights_path)
    return OK


def _import_zoo(name: str, args: argparse.Namespace):
    from studio.interop import InteropError
    from studio.interop.zoo import import_zoo_model

    if args.input_shape and len(args.input_shape) > 1:
        raise InteropError("a zoo model takes one input: give --input-shape once")
    return import_zoo_model(
        name,
        pretrained=args.pretrained,
        with_weights=args.weights,
        input_shape=args.input_shape[0] if args.input_shape else None,
        project_name=args.name,
    )


def list_zoo(library: str = "") -> int:
    """``studio import zoo:`` (or ``zoo:LIBRARY/``): the zoo's names, by library, and what each needs."""
    from studio.interop.zoo import PACKAGES, ZOO, installed

    if library and library not in PACKAGES:
        print(
            f"error: the model zoo has no library {library[:40]!r}; it has {', '.join(PACKAGES)}",
            file=sys.stderr,
        )
        return UNREADABLE
    for name in [library] if library else PACKAGES:
        models = [model for model in ZOO if model.library == name]
        if not installed(name):
            print(f"# {name}: not installed ({len(models)} models once it is: pip install {name})")
            continue
        extra = " (and any other name timm.create_model knows)" if name == "timm" else ""
        print(
            f"# {name}: {len(models)} models{extra}; input {'C,H,W' if name in ('torchvision', 'timm') else 'H,W,C'}"
        )
        for model in models:
            print(f"zoo:{model.name}  {','.join(map(str, model.input_shape))}")
    return OK


def _report(imported, project_path: Path, weights_path: Path | None) -> None:
    layers = len(imported.project.graph)
    count = imported.imported_parameters
    line = f"imported {layers} layers, {count:,} parameters"
    if imported.source_parameters is not None:
        same = "the same as" if imported.source_parameters == count else "differs from"
        line += f" ({same} the {imported.source_format} model's {imported.source_parameters:,})"
    print(line)
    for note in imported.notes:
        print(f"note: {note}")
    print(f"wrote {project_path}")
    if weights_path is not None:
        print(f"wrote {weights_path}")


def export_weights_command(
    project_path: str, framework: str, weights_out: str, weights: str | None = None
) -> int:
    """``studio export PROJECT --framework F --weights-out FILE [--weights FILE.npz]``: 0, 1 or 2.

    ``weights`` defaults to the file beside the project (``<project>.weights.npz``).
    """
    from studio.interop import InteropError, WeightsError, export_weights, weights_path_for
    from studio.project import ProjectError, load_project
    from studio.stack import call_with_deep_stack

    try:
        project = load_project(project_path)
    except ProjectError as error:
        print(f"error: {error}", file=sys.stderr)
        return UNREADABLE
    weights_path = Path(weights) if weights else weights_path_for(project_path)
    try:
        out = call_with_deep_stack(export_weights, project, framework, weights_path, weights_out)
    except WeightsError as error:
        print(f"error: {error}", file=sys.stderr)
        return UNREADABLE
    except InteropError as error:
        print(f"error: {error}", file=sys.stderr)
        return UNSUPPORTED
    except OSError as error:
        print(f"error: cannot write {weights_out}: {error.strerror or error}", file=sys.stderr)
        return UNREADABLE
    print(f"wrote {out}", file=sys.stderr)
    return OK
