"""Every command on every file of the hostile corpus (tests/hostile/make_corpus.py).

Each run must end with an allowed exit code (1 or 2 for a hostile file, 0 for one that is
valid however odd), one ``error:`` line naming the file, no traceback, printable output
(no escape sequence or lone surrogate), nothing changed beside the input, and within
CASE_SECONDS.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import time
from pathlib import Path

import pytest

from tests.hostile.make_corpus import CASES, Case, build

CASE_SECONDS = 60.0
UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e]")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hostile")
    build(folder)
    return folder


def listing(folder: Path) -> dict[str, tuple]:
    """Every entry under ``folder`` by its lstat (type, size, mtime, inode): never reads a file."""
    found = {}
    for path in sorted(folder.rglob("*")):
        info = os.lstat(path)
        found[path.relative_to(folder).as_posix()] = (
            info.st_mode,
            info.st_size,
            info.st_mtime_ns,
            info.st_ino,
        )
    return found


def run(argv: list[str]) -> tuple[int, str, str]:
    from studio.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


def _command_id(argv: list[str]) -> str:
    return argv[0] + ("-" + argv[argv.index("--framework") + 1] if "--framework" in argv else "")


PARAMS = [
    pytest.param(case, argv, id=f"{case.name}: {_command_id(argv)}")
    for case in CASES
    for argv in case.commands
]


@pytest.mark.parametrize(("case", "argv"), PARAMS)
def test_a_hostile_file_ends_cleanly_in_every_command(corpus, tmp_path, monkeypatch, case: Case, argv):
    if case.limit_mb is not None:
        monkeypatch.setenv("STUDIO_MAX_FILE_MB", str(case.limit_mb))
    target = corpus / case.target
    argv = [part.replace("{target}", str(target)).replace("{out}", str(tmp_path)) for part in argv]
    before = listing(corpus)
    started = time.perf_counter()
    code, stdout, stderr = run(argv)
    seconds = time.perf_counter() - started

    output = stdout + stderr
    assert code in case.codes, f"exit code {code}:\n{output[-2000:]}"
    assert "Traceback" not in output, output[-2000:]
    assert not UNPRINTABLE.search(output), "unprintable text reached the terminal"
    assert seconds < CASE_SECONDS, f"took {seconds:.1f} s"
    assert listing(corpus) == before, "a file in the corpus changed"
    if code == 2:
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, stderr
        assert (case.mentions or target.name) in errors[0], errors[0]
    elif code == 1:
        assert (case.mentions or target.name) in output, output[-2000:]


@pytest.mark.slow
def test_a_chain_of_3000_layers_verifies_in_both_frameworks(corpus):
    """Keras recurses per layer: verify runs it on a deep stack (studio.stack), never RecursionError."""
    code, stdout, stderr = run(["verify", str(corpus / "projects" / "deep.layers.json")])
    assert code == 0, stderr[-2000:]
    assert "Traceback" not in stdout + stderr
