"""The main window's actions (with standard shortcuts) and menus."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QComboBox, QMenu, QSizePolicy, QStyle, QToolBar, QToolButton, QWidget

from studio.project import FRAMEWORK_TITLES
from widgets.model_export import MODEL_FORMATS
from widgets.node_geometry import LEFT_TO_RIGHT, TOP_TO_BOTTOM
from widgets.training_panel import explain

if TYPE_CHECKING:
    from widgets.main_window import MainWindow

Key = QKeySequence.StandardKey


def _action(
    window: MainWindow, text: str, slot: Callable, shortcut=None, tip: str = "", checkable=False
) -> QAction:
    action = QAction(text, window)
    if shortcut is not None:
        shortcuts = shortcut if isinstance(shortcut, list) else [shortcut]
        action.setShortcuts([QKeySequence(item) for item in shortcuts])
    if tip:
        action.setStatusTip(tip)
    action.setCheckable(checkable)
    if checkable:
        action.toggled.connect(slot)
    else:
        action.triggered.connect(lambda checked=False: slot())
    window.addAction(action)  # shortcuts work even when the menu bar is hidden
    return action


def build_actions(window: MainWindow) -> dict[str, QAction]:
    files, canvas, view = window.files, window.canvas_actions, window.view
    stack = window.document.undo_stack
    actions = {
        "new": _action(window, "&New…", files.new, Key.New, "Start a new project from a template"),
        "open": _action(window, "&Open…", files.open, Key.Open, "Open a project file"),
        "save": _action(window, "&Save", files.save, Key.Save, "Save the project"),
        "save_as": _action(
            window, "Save &As…", files.save_as, Key.SaveAs, "Save the project under a new name"
        ),
        "quit": _action(window, "&Quit", window.close, Key.Quit, "Quit Layer Studio"),
        "cut": _action(window, "Cu&t", canvas.cut, Key.Cut),
        "copy": _action(window, "&Copy", canvas.copy, Key.Copy),
        "paste": _action(window, "&Paste", canvas.paste, Key.Paste),
        "duplicate": _action(window, "D&uplicate", canvas.duplicate, "Ctrl+D"),
        "delete": _action(
            window, "&Delete", canvas.delete_selection, [QKeySequence(Key.Delete), QKeySequence("Backspace")]
        ),
        "select_all": _action(window, "Select &All", canvas.select_all, Key.SelectAll),
        "rename": _action(
            window, "&Rename…", window.rename_selected, "F2", "Edit the name of the selected layer"
        ),
        "group": _action(
            window, "&Group into Block…", canvas.group_selection, "Ctrl+G", "Group the selection"
        ),
        "ungroup": _action(window, "U&ngroup Block", canvas.ungroup_selection, "Ctrl+Shift+U"),
        "toggle_block": _action(window, "Collapse / E&xpand Block", canvas.toggle_selected_blocks, "Ctrl+E"),
        "rename_block": _action(window, "Rename &Block…", canvas.ask_rename_block),
        "zoom_in": _action(
            window, "Zoom &In", view.zoom_in, [QKeySequence(Key.ZoomIn), QKeySequence("Ctrl+=")]
        ),
        "zoom_out": _action(window, "Zoom &Out", view.zoom_out, Key.ZoomOut),
        "zoom_reset": _action(window, "&Actual Size", view.reset_zoom, "Ctrl+1"),
        "fit": _action(window, "&Fit to Window", view.fit_all, "Ctrl+0"),
        "arrange_lr": _action(
            window, "Arrange &Left to Right", lambda: canvas.arrange(LEFT_TO_RIGHT), "Ctrl+L"
        ),
        "arrange_tb": _action(
            window, "Arrange &Top to Bottom", lambda: canvas.arrange(TOP_TO_BOTTOM), "Ctrl+Shift+L"
        ),
        "dark": _action(window, "&Dark Theme", window.set_dark, "Ctrl+Shift+D", checkable=True),
        "reset_layout": _action(window, "&Reset Panels", window.reset_layout),
        "shortcuts": _action(window, "&Keyboard Shortcuts", window.show_shortcuts, Key.HelpContents),
        "about": _action(window, "&About Layer Studio", window.show_about),
    }
    for framework, title in FRAMEWORK_TITLES.items():
        actions[f"export_{framework}"] = _action(
            window, f"{title} Code…", lambda fw=framework: window.export_code(fw)
        )
    training = window.training
    actions.update(
        {
            "import_model": _action(
                window,
                "&Import Model…",
                lambda: window.importer.import_model(),
                "Ctrl+I",
                "Turn a Keras, ONNX or PyTorch model into a project",
            ),
            "new_from_zoo": _action(
                window,
                "New from Model &Zoo…",
                lambda: window.importer.import_zoo(),
                None,
                "Start from a torchvision, timm, keras.applications or keras-hub architecture",
            ),
            "export_keras_weights": _action(
                window, "Trained Keras Model (.keras)…", lambda: training.export_weights("keras")
            ),
            "export_pytorch_weights": _action(
                window, "Trained PyTorch Weights (.pt)…", lambda: training.export_weights("pytorch")
            ),
            "export_onnx": _action(window, "Trained Model as ONNX…", lambda: training.export_onnx()),
            **{
                f"export_model_{fmt}": _action(
                    window,
                    f"{title}…",
                    lambda fmt=fmt: window.exporter.export(fmt),
                    tip="Write the model with the selected run's weights (else the project's), checked "
                    "in its own runtime",
                )
                for fmt, (title, _) in MODEL_FORMATS.items()
            },
            "export_diagram": _action(
                window,
                "&Diagram (PNG or SVG)…",
                window.export_diagram,
                tip="Save the model's diagram as a picture",
            ),
            "train": _action(
                window, "&Train", window.start_training, "F5", "Train the model with the training settings"
            ),
            "stop_training": _action(window, "&Stop Training", training.stop, "Shift+F5"),
            "compare": _action(
                window,
                "&Compare Keras and PyTorch…",
                window.compare_frameworks,
                tip="Train in both frameworks from the same weights and compare speed, memory and losses",
            ),
            "verify": _action(
                window,
                "&Verify Equivalence",
                window.verify,
                "F6",
                "Prove the generated Keras and PyTorch models equivalent",
            ),
            "show_design": _action(
                window, "&Design", window.show_design, "Ctrl+Shift+G", "The canvas, with the panels around it"
            ),
            "show_training": _action(
                window,
                "&Training",
                window.show_training,
                "Ctrl+Shift+T",
                "The training dashboard, full width",
            ),
            "find": _action(
                window, "&Find Layer…", window.find_layer, Key.Find, "Find a layer by name or kind"
            ),
            "next_problem": _action(
                window,
                "Next &Problem",
                window.jump_to_problem,
                "F8",
                "Select and show the next problem's layer",
            ),
        }
    )
    workspaces = QActionGroup(window)
    for name in ("show_design", "show_training"):
        actions[name].setCheckable(True)
        workspaces.addAction(actions[name])
    actions["show_design"].setChecked(True)
    actions["undo"] = stack.createUndoAction(window, "&Undo")
    actions["undo"].setShortcuts(QKeySequence.keyBindings(Key.Undo))
    actions["redo"] = stack.createRedoAction(window, "&Redo")
    actions["redo"].setShortcuts(QKeySequence.keyBindings(Key.Redo) + [QKeySequence("Ctrl+Y")])
    window.addActions([actions["undo"], actions["redo"]])
    return actions


def build_menus(window: MainWindow, actions: dict[str, QAction]) -> None:
    bar = window.menuBar()
    file_menu = bar.addMenu("&File")
    file_menu.addActions([actions["new"], actions["new_from_zoo"], actions["open"]])
    window.recent_menu = file_menu.addMenu("Open &Recent")
    window.recent_menu.aboutToShow.connect(lambda: fill_recent_menu(window))
    file_menu.addSeparator()
    file_menu.addActions([actions["save"], actions["save_as"]])
    file_menu.addSeparator()
    file_menu.addAction(actions["import_model"])
    export = file_menu.addMenu("&Export")
    export.addActions([actions[f"export_{framework}"] for framework in FRAMEWORK_TITLES])
    export.addAction(actions["export_diagram"])
    export.addSeparator()
    export.addActions(
        [actions[name] for name in ("export_keras_weights", "export_pytorch_weights", "export_onnx")]
    )
    models = export.addMenu("&Model File")
    models.setToolTipsVisible(True)
    models.addActions([actions[f"export_model_{fmt}"] for fmt in MODEL_FORMATS])
    export.aboutToShow.connect(lambda: _enable_run_exports(window, actions))
    file_menu.addSeparator()
    file_menu.addAction(actions["quit"])

    edit = bar.addMenu("&Edit")
    edit.addActions([actions["undo"], actions["redo"]])
    edit.addSeparator()
    edit.addActions([actions[name] for name in ("cut", "copy", "paste", "duplicate", "delete")])
    edit.addSeparator()
    edit.addActions([actions["select_all"], actions["rename"]])
    edit.addSeparator()
    edit.addActions([actions[name] for name in ("group", "ungroup", "toggle_block", "rename_block")])

    view = bar.addMenu("&View")
    view.addActions([actions["show_design"], actions["show_training"]])
    view.addSeparator()
    view.addActions([actions[name] for name in ("zoom_in", "zoom_out", "zoom_reset", "fit")])
    view.addActions([actions["find"], actions["next_problem"]])
    view.addSeparator()
    view.addActions([actions["arrange_lr"], actions["arrange_tb"]])
    view.addSeparator()
    view.addAction(actions["dark"])
    view.addSeparator()
    panels = view.addMenu("&Panels")
    panels.addActions([dock.toggleViewAction() for dock in window.docks.values()])
    view.addAction(actions["reset_layout"])

    train = bar.addMenu("&Train")
    train.addActions([actions["train"], actions["stop_training"]])
    train.addSeparator()
    train.addActions([actions["verify"], actions["compare"]])

    help_menu = bar.addMenu("&Help")
    help_menu.addActions([actions["shortcuts"], actions["about"]])


TOOLBAR_ICONS = {
    "new": QStyle.StandardPixmap.SP_FileIcon,
    "open": QStyle.StandardPixmap.SP_DialogOpenButton,
    "save": QStyle.StandardPixmap.SP_DialogSaveButton,
    "undo": QStyle.StandardPixmap.SP_ArrowBack,
    "redo": QStyle.StandardPixmap.SP_ArrowForward,
    "fit": QStyle.StandardPixmap.SP_TitleBarMaxButton,
    "verify": QStyle.StandardPixmap.SP_DialogApplyButton,
    "train": QStyle.StandardPixmap.SP_MediaPlay,
    "stop_training": QStyle.StandardPixmap.SP_MediaStop,
}
TOOLBAR_TEXT = {"fit": "Fit", "verify": "Verify", "train": "Train", "stop_training": "Stop"}
TOOLBAR = (
    "new", "open", "save", None, "undo", "redo", None, "fit", None, "verify", "train", "stop_training",
)  # fmt: skip


def build_toolbar(window: MainWindow, actions: dict[str, QAction]) -> QToolBar:
    """New, Open, Save, Undo, Redo, Fit, Verify, Train, Stop, the framework, and the two workspaces."""
    bar = QToolBar("Main toolbar", window)
    bar.setObjectName("mainToolbar")
    bar.setMovable(False)
    bar.setIconSize(QSize(16, 16))
    bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
    style = window.style()
    for name in TOOLBAR:
        if name is None:
            bar.addSeparator()
            continue
        action = actions[name]
        action.setIcon(style.standardIcon(TOOLBAR_ICONS[name]))
        bar.addAction(action)
        button = bar.widgetForAction(action)
        keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        button.setToolTip(action.text().replace("&", "").rstrip("…") + (f" ({keys})" if keys else ""))
        button.setObjectName(f"toolbar_{name}")
        if name in TOOLBAR_TEXT:
            action.setIconText(TOOLBAR_TEXT[name])
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    window.framework_selector = framework_selector(window)
    bar.addWidget(window.framework_selector)
    bar.addSeparator()
    for name in ("show_design", "show_training"):
        bar.addAction(actions[name])
        button: QToolButton = bar.widgetForAction(actions[name])
        button.setObjectName(f"toolbar_{name}")
        button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    spacer = QWidget()
    spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
    bar.addWidget(spacer)
    window.find_bar.setMaximumWidth(200)
    bar.addWidget(window.find_bar)
    window.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
    return bar


def framework_selector(window: MainWindow) -> QComboBox:
    """The framework to train with: the training form's choice, mirrored both ways."""
    form_combo = window.training.form.framework
    combo = QComboBox(objectName="frameworkSelector")
    combo.setModel(form_combo.model())
    combo.setCurrentIndex(form_combo.currentIndex())
    combo.setToolTip("The framework to train with")
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
    combo.currentIndexChanged.connect(form_combo.setCurrentIndex)
    form_combo.currentIndexChanged.connect(combo.setCurrentIndex)
    return combo


def _enable_run_exports(window: MainWindow, actions: dict[str, QAction]) -> None:
    """Weights and ONNX come from the selected run's folder: enabled when it has them, else it says why."""
    record = window.training.selected_record()
    for name, export in (
        ("export_keras_weights", "keras"),
        ("export_pytorch_weights", "pytorch"),
        ("export_onnx", "onnx"),
    ):
        reason = "no run yet: train the model first" if record is None else record.unavailable(export)
        explain(actions[name], reason)
    for fmt in MODEL_FORMATS:
        explain(actions[f"export_model_{fmt}"], window.exporter.unavailable())


def fill_recent_menu(window: MainWindow) -> None:
    menu: QMenu = window.recent_menu
    menu.clear()
    recent = window.files.recent_files()
    for index, path in enumerate(recent):
        action = menu.addAction(f"&{index + 1} {Path(path).name}")
        action.setStatusTip(path)
        action.setToolTip(path)
        action.triggered.connect(lambda checked=False, p=path: window.files.open_path(Path(p)))
    if not recent:
        menu.addAction("No recent projects").setEnabled(False)
    menu.addSeparator()
    menu.addAction("Clear Recent", window.files.clear_recent).setEnabled(bool(recent))


CANVAS_MENU = (
    *("cut", "copy", "paste", "duplicate", "delete", None, "rename", None),
    *("group", "ungroup", "toggle_block", None, "arrange_lr", "fit"),
)


def canvas_context_actions(actions: dict[str, QAction]) -> list[QAction | None]:
    return [None if name is None else actions[name] for name in CANVAS_MENU]


def shortcut_rows(actions: dict[str, QAction]) -> list[tuple[str, str]]:
    rows = []
    for action in actions.values():
        keys = ", ".join(
            sequence.toString(QKeySequence.SequenceFormat.NativeText) for sequence in action.shortcuts()
        )
        if keys:
            rows.append((action.text().replace("&", "").rstrip("…"), keys))
    return rows
