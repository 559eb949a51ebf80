#!/usr/bin/env python
"""tools/train_net.py with the tiny test components registered (used by the CLI tests)."""

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

import tiny  # noqa: E402,F401  (registers TinyNet and TinySyntheticReID)

import cdnet_reid.search  # noqa: E402,F401  (registers SearchTrainer)
from cdnet_reid.engine import main  # noqa: E402

if __name__ == "__main__":
    main()
