#!/usr/bin/env python
"""Train or evaluate a re-ID model from a config.

    python tools/train_net.py --config-file configs/Market/cdnet.yml
    python tools/train_net.py --config-file configs/Market/cdnet.yml --eval-only MODEL.WEIGHTS model.pth
    python tools/train_net.py --config-file configs/Market/cdnet.yml --resume
    python tools/train_net.py --config-file configs/Market/cdnet.yml --num-gpus 2
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from cdnet_reid.engine import default_argument_parser, launch, run_main  # noqa: E402


def main(args):
    return run_main(args)


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))
