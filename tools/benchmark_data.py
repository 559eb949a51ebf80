#!/usr/bin/env python
"""Measure the training data pipeline: images/s of decode + augmentation, per worker count.

    python tools/benchmark_data.py --config-file configs/Base-Reid.yml --workers 0 1 2 -- DATASETS.ROOT <root>

Uses the config's DATASETS.NAMES and INPUT.* (256x128 by default) and the real training loader
(P x K sampler, seeded augmentation). Reports the median over several timed windows.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tabulate import tabulate  # noqa: E402

import cdnet_reid.search  # noqa: E402,F401  (the SEARCH keys: a run's config.yaml loads)
from cdnet_reid.data import build_reid_train_loader  # noqa: E402
from cdnet_reid.engine.defaults import add_config_arguments, setup_tool_cfg  # noqa: E402


def measure(cfg, batches: int, windows: int) -> float:
    loader = build_reid_train_loader(cfg)
    it = iter(loader)
    for _ in range(3):  # warm-up: worker start, first decodes
        next(it)
    rates = []
    for _ in range(windows):
        t0 = time.perf_counter()
        n = sum(next(it)["images"].shape[0] for _ in range(batches))
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--batches", type=int, default=10, help="batches per timed window")
    p.add_argument("--windows", type=int, default=3)
    add_config_arguments(p)
    args = p.parse_args()
    rows = []
    for w in args.workers:
        cfg = setup_tool_cfg(args, freeze=False)
        cfg.merge_from_list(["DATALOADER.NUM_WORKERS", str(w), "SEED", "0"])
        rate = measure(cfg, args.batches, args.windows)
        rows.append([w, f"{rate:.0f}", f"{rate / max(w, 1):.0f}"])
    size = "x".join(map(str, cfg.INPUT.SIZE_TRAIN))
    print(f"Training pipeline {list(cfg.DATASETS.NAMES)} at {size}, batch {cfg.SOLVER.IMS_PER_BATCH}:")
    print(tabulate(rows, headers=["workers", "images/s", "images/s per worker"], tablefmt="pipe"))


if __name__ == "__main__":
    main()
