#!/usr/bin/env python
"""Time and peak memory of one search iteration (weight step + architecture step), top-k vs softmax.

    python tools/benchmark_search.py                       # CDNet space, 256x128, batch 16, CPU
    python tools/benchmark_search.py --space cnet --batch-size 64 --modes topk

Each mode runs in its own subprocess so that the peak resident memory (ru_maxrss) is its own.
The batch is random P×K data; the step is ``SearchTrainer.run_step`` with the optimizers and
hyper-parameters of ``configs/Search/<space>_topk.yml``: SGD on the weights, then Adam on α with
gradients for α only.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cdnet_reid.apps.args import add_flag  # noqa: E402


class RandomBatches:
    """An endless loader of one random P×K batch (``loader.dataset.num_classes`` like the real one)."""

    def __init__(self, batch_size: int, size, num_classes: int):
        import torch

        h, w = size
        self.batch = {"images": torch.randint(0, 256, (batch_size, 3, h, w), dtype=torch.uint8),
                      "targets": torch.arange(batch_size // 4).repeat_interleave(4) % num_classes}
        self.dataset = type("RandomSet", (), {"num_classes": num_classes})()

    def __iter__(self):
        while True:
            yield self.batch


def one_mode(args) -> dict:
    import tempfile

    import torch

    from cdnet_reid.config import get_cfg
    from cdnet_reid.search import SearchTrainer
    from cdnet_reid.utils.events import EventStorage

    class BenchTrainer(SearchTrainer):
        """SearchTrainer itself (its optimizers, schedules and step), fed random batches."""

        @staticmethod
        def split_data(cfg):
            return None  # no dataset: the loaders below make random batches

        @classmethod
        def build_train_loader(cls, cfg):
            return RandomBatches(args.batch_size, args.size, 751)

        @classmethod
        def build_arch_loader(cls, cfg):
            return RandomBatches(args.batch_size, args.size, 751)

    cfg = get_cfg()
    cfg.merge_from_file(str(ROOT / "configs" / "Search" / f"{args.space}_topk.yml"))
    cfg.merge_from_list(["MODEL.DEVICE", args.device, "SEARCH.MODE", args.mode, "SEARCH.TOPK", str(args.search_topk),
                         "SOLVER.IMS_PER_BATCH", str(args.batch_size), "SOLVER.ITERS_PER_EPOCH", "1",
                         "DATASETS.TESTS", "()", "OUTPUT_DIR", tempfile.mkdtemp(prefix="bench_search_")])
    torch.manual_seed(0)
    trainer = BenchTrainer(cfg)
    times = []
    with EventStorage():
        trainer.run_step()  # warm-up
        for _ in range(args.runs):
            t0 = time.perf_counter()
            trainer.run_step()
            times.append(time.perf_counter() - t0)
    from cdnet_reid.utils.benchmark import peak_rss_mb

    peak_mb = peak_rss_mb()
    return {"mode": args.mode, "median_s": statistics.median(times), "min_s": min(times), "peak_mb": peak_mb}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", choices=["cdnet", "cnet"], default="cdnet")
    add_flag(p, "--search-modes", deprecated=("--modes",), nargs="+", default=["topk", "softmax"])
    p.add_argument("--mode", help=argparse.SUPPRESS)
    add_flag(p, "--search-topk", deprecated=("--k",), type=int, default=2, help="SEARCH.TOPK")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--size", type=int, nargs=2, default=[256, 128])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    if args.mode:  # child process
        print(json.dumps(one_mode(args)))
        return
    from tabulate import tabulate

    rows = []
    for mode in args.search_modes:
        cmd = [sys.executable, __file__, "--mode", mode, "--space", args.space, "--search-topk", str(args.search_topk),
               "--batch-size", str(args.batch_size), "--size", *map(str, args.size),
               "--runs", str(args.runs), "--device", args.device]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        r = json.loads(out)
        rows.append([mode, f"{r['median_s']:.2f}", f"{r['min_s']:.2f}", f"{r['peak_mb']:.0f}"])
    print(f"{args.space} supernet, batch {args.batch_size} at {args.size[0]}x{args.size[1]}, {args.device}, "
          f"k={args.search_topk}; one iteration = weight step + architecture step:")
    print(tabulate(rows, headers=["mode", "s/iter (median)", "s/iter (min)", "peak RSS (MB)"], tablefmt="pipe"))


if __name__ == "__main__":
    main()
