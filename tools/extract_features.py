#!/usr/bin/env python
"""Embed a folder (or a list) of person crops (``cdnet_reid.apps.extract``; also
``cdnet-reid extract``). ``--help`` shows the options, the output formats and examples."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from cdnet_reid.apps.extract import main  # noqa: E402

if __name__ == "__main__":
    main()
