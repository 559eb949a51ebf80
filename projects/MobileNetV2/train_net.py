#!/usr/bin/env python
"""Train/evaluate with the MobileNetV2 backbone of this project (same CLI as tools/train_net.py).

    python projects/MobileNetV2/train_net.py --config-file projects/MobileNetV2/configs/synthetic.yml
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]  # this project and the repository root

import mobilenetv2_reid  # noqa: E402  (registers the MobileNetV2 backbone)

from cdnet_reid.engine import main  # noqa: E402

if __name__ == "__main__":
    main(extra_config=mobilenetv2_reid.add_mobilenetv2_config)
