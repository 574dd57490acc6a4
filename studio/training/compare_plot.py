"""compare.png: the two loss curves beside the training speed, drawn with Pillow (no Qt, no display).

Left: the per-batch loss of each framework by global step (first repeat).
Right: samples/s per framework, the bar at the median and a line from the
min to the max of the repeats.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from studio.training.rundir import atomic_target

if TYPE_CHECKING:
    from studio.training.compare import CompareReport

WIDTH, HEIGHT = 1000, 420
COLORS = {"keras": (214, 39, 40), "pytorch": (31, 119, 180)}
INK, GRID, PAPER = (40, 40, 40), (225, 225, 225), (255, 255, 255)
MARGIN = 50


def write_compare_png(report: CompareReport, path: Path) -> None:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (WIDTH, HEIGHT), PAPER)
    draw = ImageDraw.Draw(image)
    font = _font(13)
    split = int(WIDTH * 0.62)
    _loss_panel(draw, font, report, (MARGIN + 20, MARGIN, split - 30, HEIGHT - MARGIN))
    _speed_panel(draw, font, report, (split + 60, MARGIN, WIDTH - 30, HEIGHT - MARGIN))
    with atomic_target(path) as temp:
        image.save(temp, format="PNG")


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow before 10.1: one bitmap size
        return ImageFont.load_default()


def _loss_panel(draw, font, report: CompareReport, box: tuple[int, int, int, int]) -> None:
    left, top, right, bottom = box
    curves = {
        framework: [(step + 1, loss) for step, loss in enumerate(result.batch_losses) if math.isfinite(loss)]
        for framework, result in report.results.items()
    }
    points = [point for curve in curves.values() for point in curve]
    draw.text((left, top - 30), "loss per training batch", fill=INK, font=font)
    draw.rectangle(box, outline=INK)
    if not points:
        return
    steps = max(step for step, _ in points)
    low, high = min(loss for _, loss in points), max(loss for _, loss in points)
    if high - low < 1e-12:
        low, high = low - 0.5, high + 0.5

    def x_of(step: float) -> float:
        return left + (right - left) * (step - 1) / max(steps - 1, 1)

    def y_of(loss: float) -> float:
        return bottom - (bottom - top) * (loss - low) / (high - low)

    for fraction in (0.25, 0.5, 0.75):
        y = bottom - (bottom - top) * fraction
        draw.line((left + 1, y, right - 1, y), fill=GRID)
    for framework, curve in curves.items():
        if len(curve) > 1:
            draw.line([(x_of(s), y_of(v)) for s, v in curve], fill=COLORS[framework], width=2)
    draw.text((left - 8, top), f"{high:.3g}", fill=INK, font=font, anchor="ra")
    draw.text((left - 8, bottom), f"{low:.3g}", fill=INK, font=font, anchor="rd")
    draw.text((left, bottom + 6), "1", fill=INK, font=font)
    draw.text((right, bottom + 6), f"step {steps}", fill=INK, font=font, anchor="ra")
    gap = report.max_loss_difference
    legend = "   ".join(f"{name}" for name in curves)
    draw.text((left + 8, top + 8), legend, fill=INK, font=font)
    x = left + 8
    for name in curves:
        width = draw.textlength(name, font=font)
        draw.line((x, top + 26, x + width, top + 26), fill=COLORS[name], width=3)
        x += width + draw.textlength("   ", font=font)
    if gap is not None:
        text = f"largest gap {gap:.3g} at step {report.at_step}"
        draw.text((right - 8, top + 8), text, fill=INK, font=font, anchor="ra")


def _speed_panel(draw, font, report: CompareReport, box: tuple[int, int, int, int]) -> None:
    from studio.training.compare import framework_figures

    left, top, right, bottom = box
    draw.text((left, top - 30), "training samples/s (bar: median; line: min to max)", fill=INK, font=font)
    figures = {
        framework: (
            framework_figures([round_[framework] for round_ in report.rounds]).get("samples_per_second")
        )
        for framework in report.results
    }
    measured = {name: speed for name, speed in figures.items() if speed}
    draw.line((left, bottom, right, bottom), fill=INK)
    if not measured:
        return
    top_speed = max(speed["max"] for speed in measured.values()) * 1.1
    slot = (right - left) / len(figures)
    for index, (framework, speed) in enumerate(figures.items()):
        centre = left + slot * (index + 0.5)
        draw.text((centre, bottom + 6), framework, fill=INK, font=font, anchor="ma")
        if not speed:
            continue

        def y_of(value: float) -> float:
            return bottom - (bottom - top) * value / top_speed

        half = slot * 0.28
        draw.rectangle((centre - half, y_of(speed["median"]), centre + half, bottom), fill=COLORS[framework])
        draw.line((centre, y_of(speed["min"]), centre, y_of(speed["max"])), fill=INK, width=2)
        for value in (speed["min"], speed["max"]):
            draw.line((centre - 8, y_of(value), centre + 8, y_of(value)), fill=INK, width=2)
        label = f"{speed['median']:,.0f}"
        draw.text((centre, y_of(speed["max"]) - 6), label, fill=INK, font=font, anchor="md")
