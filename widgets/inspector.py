"""The inspector: a form generated from the selected layer's spec.

Each edit is validated first (``spec.validate_params``); an invalid value is
refused with the reason in red under its field, and no command is pushed.
The form reads the node from the graph whenever the graph says it changed.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from studio.analysis import ERROR
from studio.catalog import format_shape
from studio.events import GraphEvent
from studio.graph import GraphError
from studio.summary import flops_text
from widgets import edits
from widgets.document import Document
from widgets.icons import category_icon
from widgets.param_editors import ParamEditor, editor_for
from widgets.scene import GraphScene
from widgets.text import counted


class _WheelGuard(QObject):
    """Spin boxes and combo boxes ignore the wheel unless focused, so scrolling the form is safe."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Wheel and not watched.hasFocus():
            event.ignore()
            return True
        return False


class FieldRow(QWidget):
    """An editor with a red message line under it."""

    def __init__(self, editor_widget: QWidget) -> None:
        super().__init__()
        self.error = QLabel(wordWrap=True)
        self.error.setObjectName("fieldError")
        self.error.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(editor_widget)
        layout.addWidget(self.error)

    def show_error(self, message: str | None, color: str) -> None:
        self.error.setStyleSheet(f"color: {color};")
        self.error.setText(message or "")
        self.error.setVisible(bool(message))


class Inspector(QScrollArea):
    def __init__(self, document: Document, scene: GraphScene, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("inspectorWidget")
        self.setWidgetResizable(True)
        self.setFrameShape(QScrollArea.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # a narrow dock wraps
        self.document = document
        self.scene = scene
        self.node_id: str | None = None
        self.editors: dict[str, ParamEditor] = {}
        self.rows: dict[str, FieldRow] = {}
        self.name_edit: QLineEdit | None = None
        self.output_check: QCheckBox | None = None
        self._info: QLabel | None = None
        self._hint: QLabel | None = None
        self._guard = _WheelGuard(self)
        self._subscribe()
        self.show_selection()

    def _subscribe(self) -> None:
        self.scene.selectionChanged.connect(self.show_selection)
        events = self.document.graph_events
        events.params_changed.connect(self._on_node_event)
        events.node_renamed.connect(self._on_node_event)
        events.node_removed.connect(self._on_node_event)
        events.outputs_changed.connect(self._on_outputs_changed)
        self.document.analysisChanged.connect(self._on_analysis_changed)
        self.document.projectReplaced.connect(self.show_selection)

    # ----- building ------------------------------------------------------------------

    def show_selection(self) -> None:
        selected = self.scene.selected_node_ids()
        if len(selected) == 1:
            self.show_node(selected[0])
        else:
            self.show_message(self._hint_html(len(selected)))

    def show_message(self, html: str) -> None:
        self._reset()
        label = QLabel(html, wordWrap=True, textFormat=Qt.TextFormat.RichText)
        label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        label.setContentsMargins(12, 12, 12, 12)
        label.setObjectName("inspectorHint")
        self.setWidget(label)
        self._hint = label

    def _hint_html(self, selected: int) -> str:
        """The project at a glance, and what to do next."""
        project, analysis = self.document.project, self.document.analysis
        layers = len(self.document.graph)
        parts = [f"<h3 style='margin:0'>{_escape(self.document.display_name)}</h3>"]
        if project.description:
            parts.append(f"<p>{_escape(project.description)}</p>")
        status = "valid" if analysis.is_valid else counted(len(analysis.errors), "error")
        params = counted(analysis.total_params.total, "parameter")
        parts.append(f"<p>{counted(layers, 'layer')} · {params} · {status}</p>")
        if selected > 1:
            parts.append(f"<p><b>{selected} layers selected.</b> Select one layer to edit it.</p>")
        else:
            parts.append(
                "<p style='color:gray'>Select a layer to edit its parameters.<br>"
                "Drag layers in from the palette (or double-click them), and drag from an output "
                "port to an input port to connect.</p>"
            )
        return "".join(parts)

    def _reset(self) -> None:
        self.node_id = None
        self.editors, self.rows = {}, {}
        self.name_edit = self.output_check = self._info = None
        self._hint: QLabel | None = None

    def show_node(self, node_id: str) -> None:
        self._reset()
        self.node_id = node_id
        spec = self.document.graph.spec(node_id)
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(6, 8, 6, 8)
        layout.addLayout(self._title(spec))
        doc = QLabel(f"{spec.category}. {spec.doc}", wordWrap=True)
        doc.setEnabled(False)
        layout.addWidget(doc)
        layout.addLayout(self._form(node_id, spec))
        self._info = QLabel(wordWrap=True, textFormat=Qt.TextFormat.RichText)
        self._info.setObjectName("inspectorInfo")
        self._info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self._info)
        layout.addStretch(1)
        self.setWidget(page)
        self._load_values()
        self._update_info()

    def _title(self, spec) -> QHBoxLayout:
        row = QHBoxLayout()
        icon = QLabel()
        icon.setPixmap(category_icon(spec.category).pixmap(22, 22))
        title = QLabel(spec.key)
        font = QFont(title.font())
        font.setPointSizeF(font.pointSizeF() * 1.25)
        font.setBold(True)
        title.setFont(font)
        title.setObjectName("inspectorTitle")
        title.setToolTip(f"{spec.key} ({spec.category})")
        title.setMinimumWidth(0)
        title.setSizePolicy(
            QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred
        )  # a long kind is cut, not the dock
        row.addWidget(icon)
        row.addWidget(title, 1)
        return row

    def _form(self, node_id: str, spec) -> QFormLayout:
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)  # a narrow dock: fields under labels
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.name_edit = QLineEdit()
        self.name_edit.setObjectName("nameEdit")
        self.name_edit.editingFinished.connect(lambda: self._commit_name(node_id))
        self.rows["name"] = FieldRow(self.name_edit)
        form.addRow("Name", self.rows["name"])
        if not spec.is_source:
            self.output_check = QCheckBox("Output of the model")
            self.output_check.setObjectName("outputCheck")
            self.output_check.toggled.connect(lambda checked: self._commit_output(node_id, checked))
            self.rows["__output__"] = FieldRow(self.output_check)
            form.addRow("", self.rows["__output__"])
        for param in spec.params:
            editor = editor_for(param)
            editor.committed.connect(lambda name=param.name: self.commit_param(name, node_id))
            if isinstance(editor.widget, (QAbstractSpinBox, QComboBox)):
                editor.widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
                editor.widget.installEventFilter(self._guard)
            self.editors[param.name] = editor
            self.rows[param.name] = FieldRow(editor.widget)
            label = QLabel(param.name)
            label.setToolTip(param.doc)
            form.addRow(label, self.rows[param.name])
        return form

    # ----- showing values ------------------------------------------------------------

    def _load_values(self) -> None:
        node = self.document.graph.node(self.node_id)
        self.name_edit.setText(node.name)
        for name, editor in self.editors.items():
            editor.set_value(node.params[name])
            self._show_error(name, None)
        self._show_error("name", None)
        self._load_output()

    def _load_output(self) -> None:
        if self.output_check is None:
            return
        graph = self.document.graph
        outputs = graph.declared_outputs or graph.effective_outputs()
        self.output_check.blockSignals(True)
        self.output_check.setChecked(self.node_id in outputs)
        self.output_check.blockSignals(False)
        self._show_error("__output__", None)

    def _on_analysis_changed(self) -> None:
        if self._hint is not None:
            self._hint.setText(self._hint_html(len(self.scene.selected_node_ids())))
        self._update_info()

    def _update_info(self) -> None:
        if self._info is None or self.node_id not in self.document.graph:
            return
        analysis = self.document.analysis
        theme = self.scene.theme
        count = analysis.params.get(self.node_id)
        shape = format_shape(analysis.shapes.get(self.node_id))
        lines = [f"<b>Output shape</b>&nbsp; <code>{shape}</code> channels-last (Keras)"]
        torch_shape = self._torch_shape_text()
        if torch_shape:
            lines.append(f"<b>In PyTorch</b>&nbsp; <code>{torch_shape}</code>")
        if count is not None:
            lines.append(f"<b>Parameters</b>&nbsp; {count.total:,} ({count.non_trainable:,} non-trainable)")
        flops = analysis.flops.get(self.node_id)
        if flops is not None:
            lines.append(f"<b>Work</b>&nbsp; {flops_text(flops)}")
        for problem in analysis.problems_for(self.node_id):
            color = theme.error if problem.severity == ERROR else theme.warning
            lines.append(f"<span style='color:{color}'>{_escape(problem.message)}</span>")
        self._info.setText("<br>".join(lines))

    def _torch_shape_text(self) -> str | None:
        """How the generated PyTorch code holds this layer's output (None while the graph is invalid)."""
        from codegen.plan import CodegenError, build_plan  # loaded when a layer is first inspected

        try:
            plan = build_plan(self.document.project, self.document.analysis)
            return _escape(plan.layer(self.node_id).torch_shape_text())
        except (CodegenError, GraphError, KeyError):  # invalid graph, stale analysis, layer outside the model
            return None

    def _show_error(self, field: str, message: str | None) -> None:
        row = self.rows.get(field)
        if row is not None:
            row.show_error(message, self.scene.theme.error)

    def error_text(self, field: str) -> str:
        """The message shown under a field ('' when none)."""
        row = self.rows.get(field)
        return row.error.text() if row is not None and not row.error.isHidden() else ""

    def focus_name(self) -> None:
        if self.name_edit is not None:
            self.name_edit.setFocus()
            self.name_edit.selectAll()

    # ----- model events --------------------------------------------------------------

    def _on_node_event(self, event: GraphEvent) -> None:
        if event.node_id != self.node_id:
            return
        if event.type == "node_removed":
            self.show_message(self._hint_html(0))
        else:
            self._load_values()

    def _on_outputs_changed(self, event: GraphEvent) -> None:
        if self.node_id is not None:
            self._load_output()

    # ----- committing edits ----------------------------------------------------------

    def commit_param(self, name: str, node_id: str | None = None) -> None:
        """Validate the editor's value; push a command if it is valid, else show why not."""
        if node_id not in (None, self.node_id) or self.node_id not in self.document.graph:
            return  # a late signal from a form that is being replaced
        node = self.document.graph.node(self.node_id)
        spec = self.document.graph.spec(self.node_id)
        editor = self.editors[name]
        try:
            value = editor.value()
            clean = spec.validate_params({**node.params, name: value})
        except ValueError as error:  # ParamError is a ValueError
            self._show_error(name, str(error))
            return
        self._show_error(name, None)
        edits.set_params(self.document, self.node_id, {name: clean[name]})
        editor.set_value(self.document.graph.node(self.node_id).params[name])

    def _commit_name(self, node_id: str) -> None:
        if node_id != self.node_id or node_id not in self.document.graph:
            return
        name = self.name_edit.text()
        try:
            edits.rename(self.document, self.node_id, name)
        except GraphError as error:
            self._show_error("name", str(error))
            return
        self._show_error("name", None)

    def _commit_output(self, node_id: str, checked: bool) -> None:
        if node_id != self.node_id:
            return
        try:
            edits.set_output(self.document, self.node_id, checked)
        except GraphError as error:
            self._load_output()
            self._show_error("__output__", str(error))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
