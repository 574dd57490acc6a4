"""Live loss and accuracy plots (pyqtgraph), redrawn from numpy buffers on a 50 ms timer.

Messages only fill buffers (:mod:`studio.training.run_metrics`); :meth:`TrainingPlots.redraw`
hands the filled part of each buffer to its curve, and only for the curves
whose run changed since the last redraw. Curves downsample to the pixels
(``mode='peak'``, clipped to the view), so a long run costs the same per
frame as a short one. Finite checks stay on: a diverged loss is NaN.

Colours: Keras red, PyTorch blue, per theme; overlaid runs of the same
framework shift the hue a little. Solid lines are training figures, dashed
lines validation; the raw per-batch loss is a thin translucent line under
its smoothed (EMA) curve.

This module imports pyqtgraph, so the panel imports it when the plots are
first needed, not at start-up.
"""

from __future__ import annotations

from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QSizePolicy, QSplitter, QVBoxLayout, QWidget

from studio.training.run_metrics import FRAMEWORK_TITLES, FrameworkMetrics, RunRecord
from widgets.theme import LIGHT, Theme

REDRAW_MS = 50
HUE_SHIFTS = (0.0, 0.075, -0.075, 0.15, -0.15, 0.225)
RAW_ALPHA = 70
M = FrameworkMetrics


def framework_color(theme: Theme, framework: str, ordinal: int = 0) -> QColor:
    """The framework's colour, hue-shifted for the ``ordinal``-th overlaid run of that framework."""
    base = QColor(theme.plot_keras if framework == "keras" else theme.plot_pytorch)
    if ordinal == 0:
        return base
    hue, saturation, value, _ = base.getHsvF()
    shift = HUE_SHIFTS[ordinal % len(HUE_SHIFTS)]
    return QColor.fromHsvF((hue + shift) % 1.0, saturation, value)


class CurveSet:
    """The curves of one framework in one run."""

    def __init__(self, plots: TrainingPlots, record: RunRecord, framework: str) -> None:
        self.record = record
        self.framework = framework
        self.metrics = record.frameworks[framework]
        self.drawn_version = -1
        self.drawn_batches = self.drawn_epochs = -1
        self.names: dict[pg.PlotDataItem, str] = {}
        self.legend_accuracy = False  # whether the accuracy legend lists this run
        loss, accuracy = plots.loss_item, plots.accuracy_item
        self.rate = plots.rate_item.plot([], [], symbol="o", symbolSize=4)
        self.raw = loss.plot([], [])
        self.smooth = loss.plot([], [], antialias=True)
        self.train = loss.plot([], [], symbol="o", symbolSize=6)
        self.val = loss.plot([], [], symbol="s", symbolSize=6)
        self.train_acc = accuracy.plot([], [], symbol="o", symbolSize=6)
        self.val_acc = accuracy.plot([], [], symbol="s", symbolSize=6)
        self.raw.setZValue(-1)
        for item in self.items():
            item.setDownsampling(auto=True, method="peak")
            item.setClipToView(True)

    def items(self) -> list[pg.PlotDataItem]:
        return [self.raw, self.smooth, self.train, self.val, self.train_acc, self.val_acc, self.rate]

    def style(self, theme: Theme, ordinal: int, prefix: str) -> None:
        color = framework_color(theme, self.framework, ordinal)
        faint = QColor(color)
        faint.setAlpha(RAW_ALPHA)
        dashed = Qt.PenStyle.DashLine
        self.raw.setPen(pg.mkPen(faint, width=1))
        self.smooth.setPen(pg.mkPen(color, width=2))
        for item, style in (
            (self.train, None),
            (self.val, dashed),
            (self.train_acc, None),
            (self.val_acc, dashed),
        ):
            item.setPen(pg.mkPen(color, width=1.5, style=style or Qt.PenStyle.SolidLine))
            item.setSymbolPen(pg.mkPen(color, width=1))
            item.setSymbolBrush(pg.mkBrush(QColor(theme.base) if style else color))
        self.rate.setPen(pg.mkPen(color, width=1.5))
        self.rate.setSymbolPen(pg.mkPen(color, width=1))
        self.rate.setSymbolBrush(pg.mkBrush(color))
        title = f"{prefix}{FRAMEWORK_TITLES[self.framework]}"
        self.names = {
            self.smooth: f"{title} train",
            self.val: f"{title} validation",
            self.train_acc: f"{title} train",
            self.val_acc: f"{title} validation",
        }

    def redraw(self) -> bool:
        """Give the curves the filled part of the buffers, if the run changed; True if it did.

        Epoch curves are touched only when an epoch ended, so the accuracy plot
        repaints once per epoch, not once per frame.
        """
        metrics = self.metrics
        if metrics.version == self.drawn_version:
            return False
        self.drawn_version = metrics.version
        batches, epochs = metrics.batches, metrics.epochs
        if len(batches) != self.drawn_batches:
            self.drawn_batches = len(batches)
            x = batches.column(M.BX)
            self.raw.setData(x, batches.column(M.BLOSS))
            self.smooth.setData(x, batches.column(M.BEMA))
        if len(epochs) != self.drawn_epochs:
            self.drawn_epochs = len(epochs)
            ex = epochs.column(M.EX)
            self.train.setData(ex, epochs.column(M.ETRAIN))
            self.val.setData(*_finite_pairs(ex, epochs.column(M.EVAL)))
            self.train_acc.setData(*_finite_pairs(ex, epochs.column(M.ETRAIN_ACC)))
            self.val_acc.setData(*_finite_pairs(ex, epochs.column(M.EVAL_ACC)))
            self.rate.setData(*_finite_pairs(ex, epochs.column(M.ELR)))
        return True

    def remove(self, plots: TrainingPlots) -> None:
        for item in self.items()[:4]:
            plots.loss_item.removeItem(item)
        for item in self.items()[4:6]:
            plots.accuracy_item.removeItem(item)
        plots.rate_item.removeItem(self.rate)


def _finite_pairs(x, y):
    """Drop the epochs where a figure was not measured (validation off, regression: no accuracy)."""
    keep = y == y  # not NaN
    return x[keep], y[keep]


class TrainingPlots(QWidget):
    """Loss (objectName ``lossPlot``) beside accuracy (``accuracyPlot``), with legends, and the
    learning rate of each epoch's last batch (``learningRatePlot``)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("trainingPlots")
        self.theme: Theme = LIGHT
        self.curves: dict[tuple[int, str], CurveSet] = {}
        self.loss_widget = self._plot_widget("lossPlot", "Loss")
        self.accuracy_widget = self._plot_widget("accuracyPlot", "Accuracy")
        self.rate_widget = self._plot_widget("learningRatePlot", "Learning rate")
        self.loss_item = self.loss_widget.getPlotItem()
        self.accuracy_item = self.accuracy_widget.getPlotItem()
        self.rate_item = self.rate_widget.getPlotItem()
        self.accuracy_item.setYRange(0.0, 1.0, padding=0.02)
        self.accuracy_item.enableAutoRange(axis="y", enable=False)
        # Top right for losses (falling), bottom right for accuracies (rising); translucent and draggable.
        self.loss_legend = self.loss_item.addLegend(offset=(-4, 4), labelTextSize="8pt", verSpacing=-6)
        self.accuracy_legend = self.accuracy_item.addLegend(
            offset=(-4, -4), labelTextSize="8pt", verSpacing=-6
        )
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.setChildrenCollapsible(False)
        splitter.addWidget(self.loss_widget)
        splitter.addWidget(self.accuracy_widget)
        splitter.addWidget(self.rate_widget)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setStretchFactor(2, 2)
        splitter.setSizes([600, 400, 300])
        self.caption = QLabel(
            "Thin line: each batch's loss, thick: smoothed; ● epoch means (training), "
            "■ dashed: validation. Keras red, PyTorch blue."
        )
        self.caption.setObjectName("plotCaption")
        self.caption.setWordWrap(True)
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.caption)
        self.timer = QTimer(self, interval=REDRAW_MS)
        self.timer.timeout.connect(self.redraw)
        self.redraw_count = 0
        self.log_scale = False
        self.set_theme(LIGHT)

    def _plot_widget(self, name: str, title: str) -> pg.PlotWidget:
        widget = pg.PlotWidget()
        widget.setObjectName(name)
        widget.setMinimumSize(QSize(160, 120))
        item = widget.getPlotItem()
        item.setLabel("bottom", "epoch")
        item.setTitle(title, size="9pt")
        item.setDownsampling(auto=True, mode="peak")
        item.setClipToView(True)
        item.hideButtons()
        item.getViewBox().setDefaultPadding(0.02)
        return widget

    # ----- appearance ----------------------------------------------------------------

    def set_theme(self, theme: Theme) -> None:
        self.theme = theme
        for widget in (self.loss_widget, self.accuracy_widget, self.rate_widget):
            widget.setBackground(theme.base)
            item = widget.getPlotItem()
            item.showGrid(x=True, y=True, alpha=theme.plot_grid_alpha)
            for side in ("left", "bottom"):
                axis = item.getAxis(side)
                axis.setPen(pg.mkPen(theme.muted_text))
                axis.setTextPen(pg.mkPen(theme.text))
            item.titleLabel.setText(item.titleLabel.text, color=theme.text, size="9pt")
        for legend in (self.loss_legend, self.accuracy_legend):
            background = QColor(theme.base)
            background.setAlpha(170)
            legend.setBrush(pg.mkBrush(background))
            legend.setPen(pg.mkPen(theme.node_border))
            legend.setLabelTextColor(theme.text)
        self.caption.setStyleSheet(f"color: {theme.muted_text}; font-size: 8pt;")
        self._restyle()

    def set_log_scale(self, enabled: bool) -> None:
        self.log_scale = bool(enabled)
        self.loss_item.setLogMode(x=False, y=self.log_scale)

    # ----- content -------------------------------------------------------------------

    def show_records(self, records: list[RunRecord]) -> None:
        """Draw exactly the curves of ``records`` (the checked runs), then redraw."""
        wanted = {(record.number, name): record for record in records for name in record.frameworks}
        for key in [key for key in self.curves if key not in wanted]:
            self.curves.pop(key).remove(self)
        for key, record in wanted.items():
            if key not in self.curves:
                self.curves[key] = CurveSet(self, record, key[1])
        self._restyle()
        self.redraw()

    def _restyle(self) -> None:
        several = len({number for number, _ in self.curves}) > 1
        ordinals: dict[str, int] = {}
        for legend in (self.loss_legend, self.accuracy_legend):
            legend.clear()
        for (number, framework), curves in sorted(self.curves.items()):
            ordinal = ordinals.get(framework, 0)
            ordinals[framework] = ordinal + 1
            curves.style(self.theme, ordinal, f"#{number} " if several else "")
            for item in (curves.smooth, curves.val):
                self.loss_legend.addItem(item, curves.names[item])
            curves.legend_accuracy = curves.metrics.has_accuracy()
            if curves.legend_accuracy:
                for item in (curves.train_acc, curves.val_acc):
                    self.accuracy_legend.addItem(item, curves.names[item])
        for legend in (self.loss_legend, self.accuracy_legend):
            legend.setVisible(bool(legend.items))  # no empty frame before the first run

    def redraw(self) -> None:
        """Update the curves whose runs changed since the last redraw (cheap when none did)."""
        changed = False
        for curves in self.curves.values():
            changed |= curves.redraw()
        if changed:
            self._settle()
        if any(curves.legend_accuracy != curves.metrics.has_accuracy() for curves in self.curves.values()):
            self._restyle()  # the first epoch with an accuracy arrived: name it in the legend
        if changed:
            self.redraw_count += 1

    def _settle(self) -> None:
        """Fit the ranges and downsample now, not lazily in the next paint.

        pyqtgraph otherwise fits the range while painting, which makes the
        curves downsample again and asks for a second paint of the same frame.
        """
        plot_items = (self.loss_item, self.accuracy_item, self.rate_item)
        for item in plot_items:
            item.getViewBox().updateAutoRange()
        for curves in self.curves.values():
            for item in curves.items():
                item.getData()  # computes the display data (downsampled to the view)
        for item in plot_items:
            item.getViewBox().updateAutoRange()

    def start_live(self) -> None:
        if not self.timer.isActive():
            self.timer.start()

    def stop_live(self) -> None:
        self.timer.stop()
        self.redraw()

    def curve_points(self, number: int, framework: str, name: str = "raw") -> int:
        """How many points a curve holds (tests and benchmarks)."""
        curves = self.curves.get((number, framework))
        data = None if curves is None else getattr(curves, name).xData
        return 0 if data is None else len(data)

    def export_png(self, path: str | Path) -> bool:
        """Both plots as they are on screen, side by side."""
        return self.grab().save(str(path), "PNG")
