"""No dead code in the studio: vulture, configured in pyproject.toml ([tool.vulture]), finds nothing.

A false positive (a Qt override, a name looked up with getattr, an API the
tests use) goes to tests/dead_code_whitelist.py with its reason.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_vulture_finds_no_unused_code():
    result = subprocess.run(
        [sys.executable, "-m", "vulture"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, (
        f"unused code (delete it, or whitelist it with a reason):\n{result.stdout}{result.stderr}"
    )
