#!/usr/bin/env python
"""Training curves of a run: loss terms, learning rate and evaluation metrics as one PNG.

    python tools/plot_metrics.py logs/synthetic/mobilenetv2      # -> <run>/training_curves.png
    python tools/plot_metrics.py logs/run/metrics.json --output curves.png

Reads the run's ``metrics.json`` (one JSON object per line; evaluation metrics are separate
lines of their iteration; lines rewritten by a resumed run replace the earlier ones). Training
writes the same picture to ``OUTPUT_DIR/training_curves.png`` when it ends.
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from cdnet_reid.search.hooks import CURVE_PANELS  # noqa: E402
from cdnet_reid.utils.visualizer import plot_training_curves  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a run's OUTPUT_DIR or its metrics.json")
    parser.add_argument("--output", default="", help="PNG path (default: next to metrics.json)")
    parser.add_argument("--title", default=None, help="figure title (default: the run folder)")
    args = parser.parse_args(argv)
    metrics = os.path.join(args.run, "metrics.json") if os.path.isdir(args.run) else args.run
    if not os.path.isfile(metrics):
        raise SystemExit(f"no metrics file at {metrics}")
    out = args.output or os.path.join(os.path.dirname(metrics), "training_curves.png")
    print(plot_training_curves(metrics, out, title=args.title, panels=CURVE_PANELS))


if __name__ == "__main__":
    main()
