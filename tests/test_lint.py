"""The linter configuration of pyproject.toml holds for the whole tree."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    try:
        import ruff  # noqa: F401
    except ImportError:
        if not shutil.which("ruff"):
            pytest.fail("ruff is not installed: pip install -r requirements.txt")
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "cdnet_reid", "tools",
                           "projects", "tests"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
