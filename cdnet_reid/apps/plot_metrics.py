"""Training curves of a run: loss terms, learning rate and evaluation metrics as one PNG.

    cdnet-reid plot-metrics logs/synthetic/mobilenetv2      # -> <run>/training_curves.png
    cdnet-reid plot-metrics logs/run/metrics.json --output curves.png

Reads the run's ``metrics.json`` (one JSON object per line; evaluation metrics are separate
lines of their iteration; lines rewritten by a resumed run replace the earlier ones). Training
writes the same picture to ``OUTPUT_DIR/training_curves.png`` when it ends.
"""

import os
from collections.abc import Sequence

from ..utils.file_io import InputFileError
from ..utils.visualizer import plot_training_curves
from .args import add_output, tool_parser


def main(argv: Sequence[str] | None = None, prog: str | None = None):
    parser = tool_parser(prog, __doc__)
    parser.add_argument("run", help="a run's OUTPUT_DIR or its metrics.json")
    add_output(parser, "PNG path (default: next to metrics.json)", required=False)
    parser.add_argument("--title", default=None, help="figure title (default: the run folder)")
    args = parser.parse_args(argv)
    metrics = os.path.join(args.run, "metrics.json") if os.path.isdir(args.run) else args.run
    if not os.path.isfile(metrics):
        raise InputFileError(f"no metrics file at {metrics}")
    out = args.output or os.path.join(os.path.dirname(metrics), "training_curves.png")
    print(plot_training_curves(metrics, out, title=args.title))

