"""A genotype drawn uniformly at random from a search space: the baseline a search must beat.

    cdnet-reid random-genotype --space cdnet --seed 1                       # print it
    cdnet-reid random-genotype --space cdnet --seed 1 --output random1.json
    cdnet-reid train --config-file Synthetic/cdnet.yml MODEL.BACKBONE.GENOTYPE random1.json

Every one of the ``--layers`` searchable layers (6: the sum of MODEL.BACKBONE.STAGES [2, 2, 2])
gets one of the space's candidates (CDNet: 12 ``[k1, k2, r]``, CNet: 6 ``[k1, k2]``, in the order
of the architecture logits), independently and with equal probability, from
``random.Random(seed)``: the same seed gives the same genotype on every machine and Python version.
The file is in our genotype format (``meta`` records the space, the seed and the rule), readable
wherever a genotype is (``MODEL.BACKBONE.GENOTYPE``).
"""

import json
from collections.abc import Sequence

from ..modeling.space.genotype import CANDIDATES, random_genotype, save_genotype  # noqa: F401  (re-exported)
from .args import add_output, tool_parser


def main(argv: Sequence[str] | None = None, prog: str | None = None):
    parser = tool_parser(prog, __doc__)
    parser.add_argument("--space", choices=sorted(CANDIDATES), default="cdnet")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--layers", type=int, default=6, help="searchable layers (sum of MODEL.BACKBONE.STAGES)")
    add_output(parser, "genotype JSON file to write (default: print only)", required=False)
    args = parser.parse_args(argv)
    if args.layers < 1:
        parser.error(f"--layers must be >= 1, got {args.layers}")
    geno = random_genotype(args.space, args.seed, args.layers)
    if args.output:
        save_genotype(geno, args.output)
        print(f"{args.output}: {json.dumps([list(e) for e in geno.layers])} (ops {geno.ops})")
    else:
        print(json.dumps(geno.to_dict()))
    return geno

