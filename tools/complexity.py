#!/usr/bin/env python
"""Parameters and MACs of a config's model (``cdnet_reid.apps.complexity``; also ``cdnet-reid complexity``)."""

import sys
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit deprecation noise from fvcore
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from cdnet_reid.apps.complexity import main  # noqa: E402

if __name__ == "__main__":
    main()
