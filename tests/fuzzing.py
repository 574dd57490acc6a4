"""Shared pieces of the fuzz tests (tests/test_fuzz_*.py): example counts, mutations and checks.

Profiles (registered in tests/conftest.py, picked with STUDIO_FUZZ_PROFILE):

- ``ci`` (the default): bounded; all fuzz tests together take about 30 s on two cores;
- ``deep``: twenty times as many cases (about 8 minutes), for a long local run::

      STUDIO_FUZZ_PROFILE=deep STUDIO_FUZZ_REPORT=fuzz.json .venv/bin/pytest tests/test_fuzz_*.py

Each target's count is a share of the profile's ``max_examples`` (see WEIGHTS). The
cases tried per target are counted in CASES, printed at the end of the pytest run and
written as JSON to the file that STUDIO_FUZZ_REPORT names.

Every case checks the same promise: the entry point returns a valid result or raises
its documented error class with a clear message (non-empty, no traceback, naming the
file), within CASE_SECONDS, without growing the peak memory by more than CASE_MEMORY,
and without changing any file in the folder it read from.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import resource
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

PROFILE_ENV = "STUDIO_FUZZ_PROFILE"
REPORT_ENV = "STUDIO_FUZZ_REPORT"

# Cases tried per target, over the whole pytest session (tests/conftest.py reports them).
CASES: Counter[str] = Counter()

# Share of the profile's max_examples per target: "ci" has max_examples=250, "deep" 5000.
# Targets that load TensorFlow models are slow (a tenth of a second or more per case).
WEIGHTS = {
    "project file bytes": 0.8,
    "project documents": 1.2,
    "project nesting": 0.15,
    "layer parameters": 1.5,
    "project via CLI": 0.3,
    "project sizes": 0.3,
    "odd text": 0.2,
    "CSV": 0.8,
    "NPZ dataset": 0.6,
    "IDX": 0.6,
    "image folder": 0.25,
    "Keras JSON config": 0.8,
    "Keras .keras file": 0.1,
    "Keras .h5 file": 0.1,
    "ONNX": 0.5,
    "weights .npz": 0.6,
    "model via CLI": 0.1,
}

CASE_SECONDS = 60.0  # no single case may take longer (a hang fails here or at pytest-timeout)
CASE_MEMORY = 1 << 30  # nor raise the process's peak resident memory by more than this


def fuzz_settings(target: str, **overrides: Any) -> settings:
    """The hypothesis settings of one fuzz target, scaled from the loaded profile."""
    examples = max(2, round(settings().max_examples * WEIGHTS[target]))
    suppress = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
    return settings(max_examples=examples, deadline=None, suppress_health_check=suppress, **overrides)


# ----- checking one case ----------------------------------------------------------------


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``folder``: relative path -> (sha256, mtime_ns)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            stat = path.stat()
            found[path.relative_to(folder).as_posix()] = (
                hashlib.sha256(path.read_bytes()).hexdigest(),
                stat.st_mtime_ns,
            )
    return found


@contextlib.contextmanager
def case(target: str, folder: Path | None = None) -> Iterator[None]:
    """Count one case of ``target``; check its time, memory, and that ``folder`` is left as it was."""
    CASES[target] += 1
    before = snapshot(folder) if folder is not None else None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.perf_counter()
    yield
    seconds = time.perf_counter() - started
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak
    assert seconds < CASE_SECONDS, f"{target}: one case took {seconds:.1f} s"
    assert grown < CASE_MEMORY, f"{target}: one case raised the peak memory by {grown / 2**20:.0f} MiB"
    if folder is not None:
        assert snapshot(folder) == before, f"{target}: the files in {folder} changed"


def expect(
    call: Callable[[], Any], errors: type[BaseException] | tuple[type[BaseException], ...], names=()
) -> Any:
    """``call()``'s result, or the documented error it raised (checked), returned instead.

    Any other exception propagates, failing the test with its traceback. The message of a
    documented error must be non-empty, free of tracebacks, and contain each of ``names``.
    """
    try:
        return call()
    except errors as error:
        check_message(str(error), names)
        return error


def check_message(message: str, names=()) -> None:
    assert message.strip(), "an empty error message"
    assert "Traceback" not in message, message
    for name in names:
        assert name in message, f"the message does not name {name!r}: {message}"


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``studio.cli.main(argv)`` in this process: (exit code, stdout, stderr); checks the promise."""
    import io

    from studio.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    stdout, stderr = out.getvalue(), err.getvalue()
    assert code in (0, 1, 2), (code, stderr)
    assert "Traceback" not in stdout + stderr, stderr
    if code == 2:
        assert stderr.strip().startswith("error:"), stderr
    return code, stdout, stderr


# ----- byte mutations -------------------------------------------------------------------


@st.composite
def damaged_bytes(draw, data: bytes, max_edits: int = 4) -> bytes:
    """``data`` truncated, with flipped, inserted, deleted, repeated or zeroed bytes."""
    data = bytearray(data)
    for _ in range(draw(st.integers(1, max_edits))):
        size = len(data)
        edit = draw(st.sampled_from(["truncate", "flip", "insert", "delete", "repeat", "zero", "ff"]))
        at = draw(st.integers(0, size))
        if edit == "truncate":
            del data[at:]
        elif edit == "flip" and size:
            for _ in range(draw(st.integers(1, 8))):
                index = draw(st.integers(0, size - 1))
                data[index] ^= draw(st.integers(1, 255))
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif edit == "delete":
            del data[at : at + draw(st.integers(1, 256))]
        elif edit == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 512))]
        elif edit in ("zero", "ff"):
            length = draw(st.integers(1, 64))
            data[at : at + length] = (b"\x00" if edit == "zero" else b"\xff") * len(data[at : at + length])
    return bytes(data)


def huge_header_member(shape, descr: str = "<f8") -> bytes:
    """An .npy member whose header declares ``shape`` but holds only a few bytes of data."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue() + b"\x00" * 64


# ----- JSON values and mutations --------------------------------------------------------

HUGE_INTEGERS = [
    2**31 - 1,
    2**31,
    2**32,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63) - 1,
    10**100,
    10**308,
    10**309,
    10**4000,
    -(10**4000),
]
ODD_FLOATS = [math.nan, math.inf, -math.inf, -0.0, 5e-324, 1e308, -1e308, 1e-300, 0.1, 0.5, 1.5]
ODD_TEXT = [
    "",
    " ",
    "\t",
    "\n",
    "\x00",
    "\x7f",
    "\ud800",  # a lone surrogate: JSON can carry it as an escape, UTF-8 cannot
    "\ufeff",
    "1abc",
    "class",
    "def",
    "None",
    "self",
    "torch",
    "keras",
    "__init__",
    "a-b",
    "a.b",
    "a/b",
    "a b",
    "x'); import os  # ",
    '"""',
    "\\",
    "é",
    "名前",
    "مرحبا",
    "\u202eevil",
    "e\u0301",
    "🧠",
    "A" * 101,
    "x" * 5000,
]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from(HUGE_INTEGERS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(ODD_FLOATS),
    st.text(max_size=12),
    st.sampled_from(ODD_TEXT),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=8,
)


class RawText:
    """Text spliced into the JSON document in place of a marker value (deep nesting, huge literals)."""

    def __init__(self) -> None:
        self.parts: dict[str, str] = {}

    def marker(self, text: str) -> str:
        key = f"@@raw{len(self.parts)}@@"
        self.parts[key] = text
        return key

    def dumps(self, document: Any, ensure_ascii: bool = True) -> str:
        text = json.dumps(document, ensure_ascii=ensure_ascii, allow_nan=True)
        for key, raw in self.parts.items():
            text = text.replace(json.dumps(key), raw)
        return text


@st.composite
def raw_json_text(draw) -> str:
    """JSON text that Python objects cannot express: deep nesting, very long numbers, broken nesting."""
    kind = draw(st.sampled_from(["lists", "objects", "mixed", "digits", "exponent", "unclosed"]))
    depth = draw(st.integers(1, 3) | st.integers(1, 2_000) | st.sampled_from([999, 1000, 1001, 100_000]))
    if kind == "lists":
        return "[" * depth + "]" * depth
    if kind == "objects":
        return '{"a": ' * depth + "0" + "}" * depth
    if kind == "mixed":
        return '[{"a": ' * depth + "1" + "}]" * depth
    if kind == "digits":
        return draw(st.sampled_from(["", "-"])) + "9" * draw(st.integers(1, 10_000))
    if kind == "exponent":
        return "1e" + draw(st.sampled_from(["400", "-400", "999999999999", "+308"]))
    return "[" * depth


def json_paths(value: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """The path of every value inside a JSON document, the root first."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from json_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from json_paths(item, (*prefix, index))


def get_at(document: Any, path: tuple) -> Any:
    for key in path:
        document = document[key]
    return document


@st.composite
def mutated_json(draw, document: Any, raw: RawText, extra: Callable | None = None) -> Any:
    """``document`` (a deep copy) after 1-4 generic edits, or ``extra(draw, document, raw)`` edits."""
    document = json.loads(json.dumps(document))
    for _ in range(draw(st.integers(1, 4))):
        if extra is not None and draw(st.booleans()):
            document = extra(draw, document, raw)
            continue
        paths = list(json_paths(document))
        path = draw(st.sampled_from(paths))
        edit = draw(st.sampled_from(["replace", "delete", "add key", "duplicate", "wrap", "text", "raw"]))
        if not path:
            if edit in ("replace", "wrap", "raw"):
                document = draw(json_values) if edit == "replace" else [document]
            continue
        parent, key = get_at(document, path[:-1]), path[-1]
        value = parent[key]
        if edit == "replace":
            parent[key] = draw(json_values)
        elif edit == "delete":
            del parent[key]
        elif edit == "add key" and isinstance(value, dict):
            value[draw(st.text(max_size=10) | st.sampled_from(sorted(map(str, value)) or ["x"]))] = draw(
                json_values
            )
        elif edit == "duplicate" and isinstance(value, list) and value:
            value.insert(
                draw(st.integers(0, len(value))), json.loads(json.dumps(draw(st.sampled_from(value))))
            )
        elif edit == "wrap":
            parent[key] = draw(st.sampled_from([[value], {"value": value}]))
        elif edit == "text":
            parent[key] = json.dumps(value) if draw(st.booleans()) else str(value)
        elif edit == "raw":
            parent[key] = raw.marker(draw(raw_json_text()))
    return document
