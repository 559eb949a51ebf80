#!/usr/bin/env python
"""A genotype drawn uniformly at random from a search space: the baseline a search must beat.

    python tools/random_genotype.py --space cdnet --seed 1                       # print it
    python tools/random_genotype.py --space cdnet --seed 1 --output random1.json
    python tools/train_net.py --config-file configs/Synthetic/cdnet.yml MODEL.BACKBONE.GENOTYPE random1.json

Every one of the ``--layers`` searchable layers (6: the sum of MODEL.BACKBONE.STAGES [2, 2, 2])
gets one of the space's candidates (CDNet: 12 ``[k1, k2, r]``, CNet: 6 ``[k1, k2]``, in the order
of the architecture logits), independently and with equal probability, from
``random.Random(seed)``: the same seed gives the same genotype on every machine and Python version.
The file is in our genotype format (``meta`` records the space, the seed and the rule), readable
wherever a genotype is (``MODEL.BACKBONE.GENOTYPE``).
"""

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from cdnet_reid.modeling.space.genotype import CANDIDATES, Genotype, save_genotype  # noqa: E402


def random_genotype(space: str, seed: int, num_layers: int = 6) -> Genotype:
    """``num_layers`` candidates of ``space`` drawn uniformly and independently with ``seed``."""
    if space not in CANDIDATES:
        raise ValueError(f"unknown space {space!r}; expected one of {sorted(CANDIDATES)}")
    if num_layers < 1:
        raise ValueError(f"--layers must be >= 1, got {num_layers}")
    table = CANDIDATES[space]
    rng = random.Random(seed)
    ops = [rng.randrange(len(table)) for _ in range(num_layers)]
    return Genotype(space, [table[i] for i in ops],
                    meta={"source": "random", "space": space, "seed": seed,
                          "rule": f"uniform over the {len(table)} candidates, independently per layer "
                                  "(random.Random(seed).randrange)"})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", choices=sorted(CANDIDATES), default="cdnet")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--layers", type=int, default=6, help="searchable layers (sum of MODEL.BACKBONE.STAGES)")
    parser.add_argument("--output", default="", help="genotype JSON file to write (default: print only)")
    args = parser.parse_args(argv)
    geno = random_genotype(args.space, args.seed, args.layers)
    if args.output:
        save_genotype(geno, args.output)
        print(f"{args.output}: {json.dumps([list(e) for e in geno.layers])} (ops {geno.ops})")
    else:
        print(json.dumps(geno.to_dict()))
    return geno


if __name__ == "__main__":
    main()
