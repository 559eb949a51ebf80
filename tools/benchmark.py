#!/usr/bin/env python
"""Inference and training throughput of a config's model (``cdnet_reid.apps.benchmark``; also
``cdnet-reid benchmark``). ``--help`` shows the options and examples."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from cdnet_reid.apps.benchmark import main  # noqa: E402

if __name__ == "__main__":
    main()
