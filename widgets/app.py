"""Start the desktop app: ``run_app(project_path, screenshot=None) -> exit code``.

Nothing here imports torch, TensorFlow or Keras: the window opens fast and
code generation imports only what it needs, when it needs it.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

APP_NAME = "Layer Studio"
ORGANIZATION = "LayerStudio"
SCREENSHOT_SETTLE_MS = 150

log = logging.getLogger("layer_studio")


def create_application(argv: list[str] | None = None) -> QApplication:
    """The QApplication, created once, HiDPI friendly."""
    app = QApplication.instance()
    if app is not None:
        return app
    from PySide6.QtCore import Qt

    QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    QCoreApplication.setOrganizationName(ORGANIZATION)
    QCoreApplication.setApplicationName(APP_NAME)
    app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationDisplayName(APP_NAME)
    app.setDesktopFileName("layer-studio")
    return app


def create_main_window(**kwargs):
    from widgets.icons import app_icon
    from widgets.main_window import MainWindow

    QApplication.instance().setWindowIcon(app_icon())
    return MainWindow(**kwargs)


def process_events_for(milliseconds: int) -> None:
    """Run the event loop for a while (layout, paint, debounced timers)."""
    loop = QEventLoop()
    QTimer.singleShot(milliseconds, loop.quit)
    loop.exec()


def save_screenshot(window, path: str | os.PathLike) -> bool:
    """Lay out and paint the window, fit the canvas, then save ``window.grab()`` to ``path``."""
    window.show()
    process_events_for(SCREENSHOT_SETTLE_MS)
    window.view.fit_readable()
    window.code_view.regenerate()
    process_events_for(SCREENSHOT_SETTLE_MS)
    target = Path(path)
    if target.parent and not target.parent.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
    ok = window.grab().save(str(target))
    if not ok:
        print(f"error: could not write the screenshot {target}", file=sys.stderr)
    return ok


def has_display() -> bool:
    """Whether Qt can show a window: a platform was chosen, or an X11/Wayland display is set."""
    if os.environ.get("QT_QPA_PLATFORM") or sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


# The libraries Qt's xcb platform plugin loads (Qt >= 6.5), and the Debian/Ubuntu packages that hold them.
XCB_LIBRARIES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
}


def uses_xcb() -> bool:
    """Whether Qt will open the window through X11 (its xcb plugin)."""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform:
        return platform.startswith("xcb")
    return (
        sys.platform.startswith("linux")
        and bool(os.environ.get("DISPLAY"))
        and not os.environ.get("WAYLAND_DISPLAY")
    )


def missing_xcb_packages() -> list[str]:
    """The packages of the xcb plugin's libraries that cannot be loaded (Qt would abort without them)."""
    import ctypes

    missing = []
    for library, package in XCB_LIBRARIES.items():
        try:
            ctypes.CDLL(library)
        except OSError:
            missing.append(package)
    return missing


def xcb_problem() -> str | None:
    """One line that says which system packages to install, or None when nothing is missing."""
    if not uses_xcb():
        return None
    missing = missing_xcb_packages()
    if not missing:
        return None
    return (
        "error: Qt cannot open a window on this X11 display: system libraries are missing. "
        f"Install them with: sudo apt-get install {' '.join(missing)} "
        "(or use --screenshot FILE.png, which needs no display)"
    )


def run_app(
    project_path: str | os.PathLike | None = None,
    screenshot: str | os.PathLike | None = None,
    size: tuple[int, int] | None = None,
) -> int:
    """Open the main window (with ``project_path``, else the last project or an example).

    With ``screenshot``, save a PNG of the window once it is painted and return 0.
    ``size`` is the window's size in pixels (else the last one, or one that suits the screen).
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    problem = xcb_problem() if screenshot is None else None
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    if not has_display():
        if screenshot is None:
            print(
                "error: no display to open the window on. Run Layer Studio in a desktop session, "
                "under xvfb-run, or with --screenshot FILE.png (which works without a display).",
                file=sys.stderr,
            )
            return 2
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = create_application()
    from widgets.errors import ExceptionHook, default_log_path, start_error_log

    log_path = default_log_path()
    log_handler = start_error_log(log_path)
    window = create_main_window(restore_layout=screenshot is None)
    if size is not None:
        window.resize(*size)
        window.default_layout()  # the panels' share of this size
    hook = ExceptionHook(
        window, show_dialog=screenshot is None, log_path=log_path if log_handler else None
    ).install()
    interactive = screenshot is None
    window.files.interactive = interactive
    opened = window.open_initial(project_path, interactive=interactive)
    try:
        if screenshot is not None:
            if not opened:
                return 2
            return 0 if save_screenshot(window, screenshot) else 1
        window.show()
        QTimer.singleShot(0, window.view.fit_readable)  # once the docks are laid out
        if os.environ.get("STUDIO_WARM_WORKER", "1") != "0":
            window.warm.start_soon()  # torch and TensorFlow, imported in the background (studio.warm)
        return app.exec()
    finally:
        hook.uninstall()
        if log_handler is not None:
            logging.getLogger().removeHandler(log_handler)
            log_handler.close()
        if screenshot is not None:
            window.training.shutdown()
            window.files.autosaver.stop()
            window.hide()
            window.deleteLater()
