#!/usr/bin/env python
"""Searches for latency budgets, and how close each searched network comes to its budget.

1. ``cdnet-reid latency-table`` of the search config (torch, batch 1, calibrated on whole networks)
   unless ``--table`` gives one;
2. for every fraction f of ``--fractions``: the search with ``SEARCH.COST.KIND latency``, that
   table and ``SEARCH.COST.TARGET`` = f x the paper genotype's latency (the table's prediction for
   it), each a ``cdnet-reid train`` subprocess in ``--output-dir/search_f{f}``;
3. the whole network of every searched genotype and of the paper's, timed round-robin in one
   process (so the machine's speed drift affects them alike): measured latency, its ratio to the
   target, and the ratio target / measured paper latency, as a table (also ``results.md``).

    python tools/benchmark_budget_search.py --output-dir logs/synthetic/budget
    python tools/benchmark_budget_search.py --output-dir logs/synthetic/budget --fractions 0.85 0.9 0.95 \\
        --search-opts SOLVER.MAX_EPOCH 10

A fraction below the cheapest network of the space (its fixed part plus the cheapest candidate of
every layer) is refused before any search runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

import argparse  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
from tabulate import tabulate  # noqa: E402

TRAIN = [sys.executable, "-m", "cdnet_reid.cli"]


def run(cmd, log_path):
    print(f"[{time.strftime('%H:%M:%S')}] {' '.join(cmd)}  (log: {log_path})", flush=True)
    t0 = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
    if rc:
        raise SystemExit(f"error: {' '.join(cmd[:4])} failed (exit {rc}); see {log_path}")
    return time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config-file", default="configs/Synthetic/search_cdnet.yml")
    p.add_argument("--output-dir", default="logs/synthetic/budget")
    p.add_argument("--table", default="", help="a latency table to use instead of measuring one")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.85, 0.9, 0.95])
    p.add_argument("--search-opts", nargs="*", default=["SOLVER.MAX_EPOCH", "10"], metavar="KEY VALUE")
    p.add_argument("--runs", type=int, default=15, help="timed rounds of the final measurement")
    args = p.parse_args(argv)
    from cdnet_reid.config import get_cfg
    from cdnet_reid.modeling.space.genotype import load_genotype
    from cdnet_reid.search.cost_table import (
        cost_range,
        genotype_cost,
        load_cost_table,
        make_timer,
        searched_network,
        time_round_robin,
    )
    from cdnet_reid.utils.env import cpu_name

    out = os.path.abspath(args.output_dir)
    os.makedirs(out, exist_ok=True)
    seconds = {}
    table_path = args.table or os.path.join(out, "table.json")
    if not args.table:
        seconds["table"] = run([*TRAIN, "latency-table", "--config-file", args.config_file, "--output", table_path,
                                "--genotype", "cdnet_top2"], os.path.join(out, "table.log"))
    table = load_cost_table(table_path, "latency")
    paper = load_genotype(f"{table['space']}_top2")
    paper_ms = genotype_cost(table, paper, "latency")
    cheapest = cost_range(table, "latency")[0]
    for f in args.fractions:
        if f * paper_ms < cheapest:
            p.error(f"--fractions {f}: {f * paper_ms:.3f} ms is below the cheapest network of the space "
                    f"({cheapest:.3f} ms = {cheapest / paper_ms:.1%} of the paper's)")
    searched = {}
    for f in args.fractions:
        folder = os.path.join(out, f"search_f{f:g}")
        target = f * paper_ms
        seconds[f"search f={f:g}"] = run(
            [*TRAIN, "train", "--config-file", args.config_file, "--overwrite", "OUTPUT_DIR", folder,
             "SEARCH.COST.KIND", "latency", "SEARCH.COST.TABLE", table_path, "SEARCH.COST.TARGET", f"{target:.6f}",
             *args.search_opts], os.path.join(out, f"search_f{f:g}.log"))
        searched[f] = load_genotype(os.path.join(folder, "genotype_final.json"))

    cfg = get_cfg()
    cfg.merge_from_file(args.config_file)
    names = ["paper"] + [f"f={f:g}" for f in args.fractions]
    genotypes = [paper] + [searched[f] for f in args.fractions]
    h, w = table["input_size"]
    images = torch.rand(table["batch_size"], 3, h, w) * 255
    timers = [make_timer("torch", searched_network(cfg, g), (images,), "", torch.get_num_threads()) for g in genotypes]
    ms = [s * 1000.0 / table["batch_size"] for s in time_round_robin(timers, warmup=5, runs=args.runs, iters=10)]
    rows = []
    for name, g, m in zip(names, genotypes, ms):
        f = 1.0 if name == "paper" else float(name[2:])
        target = f * paper_ms
        predicted = genotype_cost(table, g, "latency")
        rows.append([name, " ".join("".join(str(k) for k in e) for e in g.layers), f"{target:.3f}",
                     f"{predicted:.3f}", f"{m:.3f}", f"{m / target:.1%}", f"{m / ms[0]:.1%}"])
    headers = ["budget (f x paper)", "genotype (k1 k2 r)", "target ms", "predicted ms", "measured ms",
               "measured / target", "measured / paper measured"]
    cal = table.get("latency_calibration") or {}
    note = (f"{table['space']} space, {args.config_file}, input {table['input_size']}, batch {table['batch_size']}, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU {cpu_name()}; table calibration "
            f"x{cal.get('scale', 1.0):.3f}; whole networks timed round-robin ({args.runs} rounds x 10 calls); "
            f"search opts {' '.join(args.search_opts)}; wall seconds "
            + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()))
    text = note + "\n\n" + tabulate(rows, headers=headers, tablefmt="pipe")
    print(text)
    with open(os.path.join(out, "results.md"), "w", encoding="utf-8") as fh:
        fh.write(text + "\n")


if __name__ == "__main__":
    main()
