#!/usr/bin/env python
"""``cdnet-reid export`` from a checkout (cdnet_reid/apps/export.py); see its ``--help``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from cdnet_reid.cli import run_command  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_command("export", sys.argv[1:], prog=f"python tools/{Path(__file__).name}"))
