#!/usr/bin/env python
"""The picture of an architecture search: softmax(α) per layer over the epochs, the chosen
genotype and the entropy curve, as one PNG.

    python tools/plot_search.py logs/synthetic/search_cdnet            # -> <run>/search_alphas.png
    python tools/plot_search.py logs/synthetic/search_cdnet --output alphas.png

Reads the search's ``genotype_epochXXXX.json`` files (logits and probabilities of their epoch),
``genotype_final.json`` (the chosen genotype) and ``metrics.json`` (``alpha_entropy/*``). A search
writes the same picture to ``OUTPUT_DIR/search_alphas.png`` when it ends. Also prints the mean
entropy per epoch and the chosen genotype.
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from cdnet_reid.search.plot import PICTURE, plot_search, read_search_history  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="the OUTPUT_DIR of a search (TRAINER.NAME SearchTrainer)")
    parser.add_argument("--output", default="", help=f"PNG path (default: <run>/{PICTURE})")
    parser.add_argument("--title", default=None, help="figure title (default: the run folder and genotype)")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.run):
        raise SystemExit(f"no folder {args.run}")
    try:
        history = read_search_history(args.run)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    mean = history.mean_entropy
    print(f"space {history.space}, {len(history.epochs)} genotype files (epochs {history.epochs[0]}"
          f"..{history.epochs[-1]})")
    print(f"mean entropy of softmax(α): init ln {history.num_candidates} = {history.start_entropy:.4f}, "
          f"epoch 1: {mean[0]:.4f}, epoch {int(history.entropy_epochs[-1])}: {mean[-1]:.4f} "
          f"({mean[-1] / history.start_entropy:.1%} of init, {mean[-1] / mean[0]:.1%} of epoch 1)")
    print("chosen genotype:", [list(e) for e in history.final.layers])
    print(plot_search(args.run, args.output or None, title=args.title))


if __name__ == "__main__":
    main()
