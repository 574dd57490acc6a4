"""Screenshots built from the real window: ``python -m widgets.screenshots PROJECT OUT.png [options]``.

``studio gui PROJECT --screenshot OUT.png`` covers the plain window; this
script adds what needs the window to do something first: train for a few
epochs (``--train-epochs N``, a real run in child processes), verify the
code (``--verify``), the dark theme (``--dark``).

Module-level imports stay minimal: training processes are started with the
*spawn* method, which imports the main module again in each child.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m widgets.screenshots", description=__doc__.splitlines()[0]
    )
    parser.add_argument("project", help="project file to open")
    parser.add_argument("output", help="PNG file to write")
    parser.add_argument("--train-epochs", type=int, default=0, help="train this many epochs first")
    parser.add_argument("--framework", default="pytorch", choices=("keras", "pytorch", "both"))
    parser.add_argument("--verify", action="store_true", help="run the equivalence proof first")
    parser.add_argument("--dark", action="store_true", help="use the dark theme")
    parser.add_argument("--show-training", action="store_true", help="show the training tab (no run)")
    parser.add_argument("--select", metavar="LAYER", help="select this layer and centre the canvas on it")
    parser.add_argument("--size", default="1400x900", help="window size, WIDTHxHEIGHT")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for training")
    return parser.parse_args(argv)


def wait_until(condition, timeout: float) -> bool:
    from widgets.app import process_events_for

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        process_events_for(50)
    return True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings

    from widgets.app import create_application, create_main_window, process_events_for

    create_application()
    scratch = Path(tempfile.mkdtemp(prefix="layer-studio-shots-"))
    settings = QSettings(str(scratch / "settings.ini"), QSettings.Format.IniFormat)
    window = create_main_window(
        settings=settings, recovery_dir=scratch / "recovery", restore_layout=False, runs_root=scratch / "runs"
    )
    window.files.interactive = False
    window.training.interactive = False
    width, height = (int(part) for part in args.size.lower().split("x"))
    window.resize(width, height)
    window.default_layout()
    window.actions["dark"].setChecked(args.dark)
    if not window.open_initial(args.project, interactive=False):
        return 2
    window.show()
    process_events_for(200)
    window.view.fit_readable()
    ok = True
    if args.verify:
        window.verify()
        ok &= wait_until(lambda: window.code_view.verifier.result is not None, args.timeout)
    if args.show_training:
        window.show_training()
        process_events_for(300)
        window.training.detector.kill()
    if args.train_epochs:
        window.show_training()
        process_events_for(200)
        panel = window.training
        panel.form.set_framework(args.framework)
        panel.form.epochs.setValue(args.train_epochs)
        ok &= panel.start()
        ok &= wait_until(lambda: not panel.is_running, args.timeout)
        panel.runs.setCurrentItem(panel.runs.topLevelItem(0))
    process_events_for(200)
    window.view.fit_readable()
    if args.select:
        node = window.document.graph.find(args.select)
        if node is None:
            print(f"error: no layer named {args.select!r}", file=sys.stderr)
            return 2
        window.scene.select_nodes([node.id])  # and shown, if the fitted view does not show it yet
        window.view.ensureVisible(window.scene.node_item(node.id).sceneBoundingRect())
    process_events_for(200)
    target = Path(args.output)
    target.parent.mkdir(parents=True, exist_ok=True)
    saved = window.grab().save(str(target))
    print(f"wrote {target}" if saved else f"error: could not write {target}", file=sys.stderr)
    window.training.shutdown()
    window.code_view.shutdown()
    window.files.autosaver.stop()
    window.document.undo_stack.setClean()
    return 0 if saved and ok else 1


if __name__ == "__main__":
    sys.exit(main())
