"""What the benchmark scripts share: markdown tables, ratios, timing and the machine's facts.

Nothing here imports a deep-learning framework or Qt: versions come from the
installed packages' metadata, so the facts can be gathered before a start-up
benchmark without disturbing it.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: Packages whose versions go into a report's header (the first name installed wins).
PACKAGES = (("torch",), ("tensorflow",), ("keras",), ("PySide6-Essentials", "PySide6"), ("numpy",))

_ALIGN = {"l": "---", "r": "---:", "c": ":-:"}


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], align: str = "") -> str:
    """A markdown table; ``align`` has one letter per column (l, r or c), left by default."""
    letters = align.ljust(len(headers), "l")
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(_ALIGN[letter] for letter in letters) + "|",
    ]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"row has {len(row)} cells, the table {len(headers)} columns: {row!r}")
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return "\n".join(lines)


def ratio(value: float, baseline: float, digits: int = 1) -> str:
    """``value / baseline`` as a multiplier, e.g. ``4.2×``."""
    if not baseline or baseline != baseline:  # zero or NaN
        return "n/a"
    return f"{value / baseline:.{digits}f}×"


def overhead(value: float, baseline: float) -> str:
    """How much more ``value`` is than ``baseline``, e.g. ``1.05× (+4.6%)``."""
    if not baseline or baseline != baseline:
        return "n/a"
    return f"{value / baseline:.2f}× ({value / baseline - 1:+.1%})"


def median_ms(function: Callable[[], object], repeat: int) -> float:
    """The median wall time of ``repeat`` calls, in milliseconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _ram_gib() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def _version(*names: str) -> str:
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "not installed"


def machine_facts() -> list[tuple[str, str]]:
    """(label, value) pairs describing this machine and the software measured on it."""
    cpus = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus
    cpu = f"{_cpu_model()}, {cpus} logical CPUs" + (f" ({usable} usable)" if usable != cpus else "")
    ram = _ram_gib()
    facts = [
        ("Date", datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")),
        ("CPU", cpu),
        ("RAM", f"{ram:.1f} GiB" if ram else "unknown"),
        ("OS", platform.platform()),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("Packages", ", ".join(f"{names[-1]} {_version(*names)}" for names in PACKAGES)),
    ]
    return [*facts, ("Load average (1 / 5 / 15 min) at start", load_average())]


def load_average() -> str:
    """The system's 1, 5 and 15 minute load averages: above the CPU count, others were busy too."""
    if not hasattr(os, "getloadavg"):
        return "unknown"
    return " / ".join(f"{load:.2f}" for load in os.getloadavg())
