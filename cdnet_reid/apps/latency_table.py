"""The cost table of a CNet/CDNet search space: every candidate block of every searchable layer,
timed in place on a runtime at the config's ``INPUT.SIZE_TEST``, with its MACs and parameters,
plus the fixed (non-searchable) parts: the input of ``SEARCH.COST.TABLE`` (a search for a budget).

    cdnet-reid latency-table --config-file configs/Synthetic/search_cdnet.yml --output table.json
    cdnet-reid latency-table --config-file configs/Market/cdnet.yml --runtime onnxruntime --output ort.json
    cdnet-reid latency-table --table table.json --genotype cdnet_top2     (check a table measured elsewhere)

The config may be a search config (CDNetSupernet / CNetSupernet) or a final network's (CDNet /
CNet): the table covers every candidate of its space either way, with the config's widths and
head. Latencies are milliseconds per image (a batch of ``--batch-size`` images, median over
``--runs`` rounds of ``--iters`` calls, blocks timed round-robin) with the process's torch threads
(``--threads``). MACs are those of convolutions and linear layers (the paper's "FLOPs").

The sum of the blocks leaves out the time between them (element-wise operations, moving the
activations), so the whole network runs slower than the sum predicts. ``--calibrate N`` (default 5)
also times the whole network of N genotypes (the paper's and N - 1 uniform random ones) in the same
runtime and fits one factor, measured = scale x sum of blocks (least squares through the origin);
every latency the table predicts (``SEARCH.COST``, the genotype file's record) is scaled by it.
The table records the genotypes, both latencies and the largest relative error left after
scaling. ``--calibrate 0`` leaves the table uncalibrated.
"""

import argparse
import sys
from collections.abc import Sequence

import torch
from tabulate import tabulate

from ..config import ConfigError
from ..engine.defaults import add_config_arguments, setup_tool_cfg
from ..modeling.space.genotype import GenotypeError, load_genotype
from ..search.cost_table import (
    KINDS,
    RUNTIMES,
    RuntimeUnavailableError,
    build_cost_table,
    calibrate_latency,
    calibration_genotypes,
    genotype_cost,
    load_cost_table,
    save_cost_table,
)


def summary(table: dict, genotype=None) -> str:
    """Per-layer range of every cost the table holds, the fixed part, and ``genotype``'s cost."""
    kinds = [k for k, (key, _) in KINDS.items() if key in table["fixed"]]
    rows = []
    for l, row in enumerate(table["layers"]):
        cells = [l, "x".join(str(v) for v in row["input_shape"])]
        for k in kinds:
            vals = [c[KINDS[k][0]] for c in row["candidates"]]
            cells.append(f"{min(vals):.4g} .. {max(vals):.4g}")
        rows.append(cells)
    rows.append(["fixed", "stem, downsamples, head"] + [f"{table['fixed'][KINDS[k][0]]:.4g}" for k in kinds])
    if genotype is not None:
        rows.append([f"{genotype.space} genotype", str([list(e) for e in genotype.layers])]
                    + [f"{genotype_cost(table, genotype, k):.4g}" for k in kinds])
    head = (f"{table['space']} space, {len(table['layers'])} layers x {len(table['candidates'])} candidates, "
            f"input {table.get('input_size')}, batch {table['batch_size']}, runtime {table.get('runtime')} "
            f"{table.get('runtime_version') or ''}, {table.get('threads')} threads, CPU {table.get('cpu')}")
    cal = table.get("latency_calibration")
    if cal:
        head += (f"\nlatency calibrated on {len(cal['genotypes'])} whole networks: x{cal['scale']:.3f} "
                 f"(largest error left {cal['max_relative_error']:.1%}); layer rows: the blocks' own times, "
                 "a genotype's latency: scaled")
    return head + "\n" + tabulate(rows, headers=["layer", "input"] + [f"{k} ({KINDS[k][1]})" for k in kinds],
                                  tablefmt="pipe")


def main(argv: Sequence[str] | None = None, prog: str | None = None):
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runtime", choices=RUNTIMES, default="torch", help="where the blocks are timed")
    p.add_argument("--output", default="", metavar="FILE", help="write the table (JSON) here")
    p.add_argument("--table", default="", metavar="FILE",
                   help="check and show a table measured elsewhere instead of measuring one")
    p.add_argument("--genotype", default="", help="also show this genotype's cost (a shipped name or a file)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch / runtime threads (0: torch's default)")
    p.add_argument("--warmup", type=int, default=5, help="warm-up calls per block")
    p.add_argument("--runs", type=int, default=7, help="timed rounds (the median is kept)")
    p.add_argument("--iters", type=int, default=10, help="calls per block and round")
    p.add_argument("--calibrate", type=int, default=5, metavar="N",
                   help="whole networks timed to scale the blocks' sum (0: none; default 5)")
    add_config_arguments(p)
    args = p.parse_args(argv)
    try:
        if args.table and (args.config_file or args.output):
            raise ConfigError("--table shows a table measured elsewhere: give it without --config-file / --output")
        if not args.table and not args.config_file:
            raise ConfigError("give --config-file (measure a table) or --table FILE (check one)")
        if min(args.batch_size, args.runs, args.iters) < 1 or min(args.warmup, args.threads, args.calibrate) < 0:
            raise ConfigError("--batch-size, --runs and --iters must be >= 1, --warmup, --threads and --calibrate "
                              ">= 0")
        genotype = load_genotype(args.genotype) if args.genotype else None
        if args.table:
            table = load_cost_table(args.table)
        else:
            cfg = setup_tool_cfg(args)
            if args.threads:
                torch.set_num_threads(args.threads)
            table = build_cost_table(cfg, runtime=args.runtime, batch_size=args.batch_size, warmup=args.warmup,
                                     runs=args.runs, iters=args.iters, log=print)
            if args.calibrate:
                genotypes = calibration_genotypes(table["space"], len(table["layers"]), args.calibrate)
                table["latency_calibration"] = calibrate_latency(table, cfg, genotypes, warmup=args.warmup,
                                                                 runs=args.runs, iters=args.iters, log=print)
        if genotype is not None:
            genotype_cost(table, genotype, "macs")  # the genotype must fit the table
    except (ConfigError, GenotypeError, RuntimeUnavailableError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.output:
        save_cost_table(table, args.output)
    print(summary(table, genotype))
    if args.output:
        print(f"cost table written to {args.output}")
    return table


if __name__ == "__main__":
    main()
