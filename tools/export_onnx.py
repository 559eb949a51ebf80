#!/usr/bin/env python
"""Export a trained model to ONNX, optionally also int8 (``cdnet_reid.apps.export``; also
``cdnet-reid export``). ``--help`` shows the options and examples."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from cdnet_reid.apps.export import main  # noqa: E402

if __name__ == "__main__":
    main()
