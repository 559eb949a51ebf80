#!/usr/bin/env python
"""Time and peak memory of one search iteration (weight step + architecture step), top-k vs softmax.

    python tools/benchmark_search.py                       # CDNet space, 256x128, batch 16, CPU
    python tools/benchmark_search.py --space cnet --batch-size 64 --modes topk

Each mode runs in its own subprocess so that the peak resident memory (ru_maxrss) is its own.
The batch is random P×K data; the step is SearchTrainer's: SGD on the weights, then Adam on α with
gradients for α only (first-order).
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def one_mode(args) -> dict:
    import torch

    from cdnet_reid.config import get_cfg
    from cdnet_reid.modeling import build_model
    from cdnet_reid.search import first_order_grads

    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.DEVICE", args.device, "MODEL.HEADS.NUM_CLASSES", "751",
                         "MODEL.BACKBONE.NAME", "CDNetSupernet" if args.space == "cdnet" else "CNetSupernet",
                         "MODEL.HEADS.NAME", "SearchHead", "SEARCH.MODE", args.mode, "SEARCH.TOPK", str(args.k)])
    model = build_model(cfg).train()
    alphas = model.backbone.arch_parameters()
    weights = [p for p in model.parameters() if all(p is not a for a in alphas)]
    opt = torch.optim.SGD(weights, lr=0.025, momentum=0.9, weight_decay=3e-4)
    arch_opt = torch.optim.Adam(alphas, lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    h, w = args.size
    batch = {"images": torch.randint(0, 256, (args.batch_size, 3, h, w), dtype=torch.uint8),
             "targets": torch.arange(args.batch_size // 4).repeat_interleave(4)}

    def step():
        loss = sum(model(batch).values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        grads = first_order_grads(sum(model(batch).values()), alphas)
        alphas[0].grad = grads[0]
        arch_opt.step()

    step()  # warm-up
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"mode": args.mode, "median_s": statistics.median(times), "min_s": min(times), "peak_mb": peak_mb}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", choices=["cdnet", "cnet"], default="cdnet")
    p.add_argument("--modes", nargs="+", default=["topk", "softmax"])
    p.add_argument("--mode", help=argparse.SUPPRESS)
    p.add_argument("--k", type=int, default=2)
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
    for mode in args.modes:
        cmd = [sys.executable, __file__, "--mode", mode, "--space", args.space, "--k", str(args.k),
               "--batch-size", str(args.batch_size), "--size", *map(str, args.size),
               "--runs", str(args.runs), "--device", args.device]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        r = json.loads(out)
        rows.append([mode, f"{r['median_s']:.2f}", f"{r['min_s']:.2f}", f"{r['peak_mb']:.0f}"])
    print(f"{args.space} supernet, batch {args.batch_size} at {args.size[0]}x{args.size[1]}, {args.device}, "
          f"k={args.k}; one iteration = weight step + architecture step:")
    print(tabulate(rows, headers=["mode", "s/iter (median)", "s/iter (min)", "peak RSS (MB)"], tablefmt="pipe"))


if __name__ == "__main__":
    main()
