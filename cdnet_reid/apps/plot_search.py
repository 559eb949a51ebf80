"""The picture of an architecture search: softmax(α) per layer over the epochs, the chosen
genotype and the entropy curve, as one PNG.

    cdnet-reid plot-search logs/synthetic/search_cdnet            # -> <run>/search_alphas.png
    cdnet-reid plot-search logs/synthetic/search_cdnet --output alphas.png

Reads the search's ``genotype_epochXXXX.json`` files (logits and probabilities of their epoch),
``genotype_final.json`` (the chosen genotype) and ``metrics.json`` (``alpha_entropy/*``). A search
writes the same picture to ``OUTPUT_DIR/search_alphas.png`` when it ends. Also prints the mean
entropy per epoch and the chosen genotype.
"""

import os
from collections.abc import Sequence

from ..search.plot import PICTURE, plot_search, read_search_history
from ..utils.file_io import InputFileError
from .args import add_output, tool_parser


def main(argv: Sequence[str] | None = None, prog: str | None = None):
    parser = tool_parser(prog, __doc__)
    parser.add_argument("run", help="the OUTPUT_DIR of a search (TRAINER.NAME SearchTrainer)")
    add_output(parser, f"PNG path (default: <run>/{PICTURE})", required=False)
    parser.add_argument("--title", default=None, help="figure title (default: the run folder and genotype)")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.run):
        raise InputFileError(f"no folder {args.run}")
    try:
        history = read_search_history(args.run)
    except (FileNotFoundError, ValueError) as e:
        raise InputFileError(str(e)) from None
    mean = history.mean_entropy
    print(f"space {history.space}, {len(history.epochs)} genotype files (epochs {history.epochs[0]}"
          f"..{history.epochs[-1]})")
    print(f"mean entropy of softmax(α): init ln {history.num_candidates} = {history.start_entropy:.4f}, "
          f"epoch 1: {mean[0]:.4f}, epoch {int(history.entropy_epochs[-1])}: {mean[-1]:.4f} "
          f"({mean[-1] / history.start_entropy:.1%} of init, {mean[-1] / mean[0]:.1%} of epoch 1)")
    print("chosen genotype:", [list(e) for e in history.final.layers])
    print(plot_search(args.run, args.output or None, title=args.title))

