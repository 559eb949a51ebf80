#!/usr/bin/env python
"""tools/train_net.py with the tiny test components registered (used by the CLI tests)."""

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

import tiny  # noqa: E402,F401  (registers TinyNet and TinySyntheticReID)
from cdnet_reid.engine import default_argument_parser, launch, run_main  # noqa: E402


def main(args):
    return run_main(args)


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))
