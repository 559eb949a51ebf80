#!/usr/bin/env python
"""Rank a gallery of your own for every query crop (``cdnet_reid.apps.search_gallery``; also
``cdnet-reid search-gallery``). ``--help`` shows the options and an example."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from cdnet_reid.apps.search_gallery import main  # noqa: E402

if __name__ == "__main__":
    main()
