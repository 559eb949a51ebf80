#!/usr/bin/env python
"""Train/evaluate with the MobileNetV2 backbone of this project (same CLI as tools/train_net.py).

    python projects/MobileNetV2/train_net.py --config-file projects/MobileNetV2/configs/synthetic.yml
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]  # this project and the repository root

import mobilenetv2_reid  # noqa: E402,F401  (registers the MobileNetV2 backbone)
from cdnet_reid.engine import default_argument_parser, launch, run_main  # noqa: E402


def main(args):
    return run_main(args, extra_config=mobilenetv2_reid.add_mobilenetv2_config)


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))
