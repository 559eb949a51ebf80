#!/usr/bin/env python
"""Time and peak memory of k-reciprocal re-ranking and AQE at real dataset sizes.

Random identity-clustered features with a dataset's query / gallery / id / camera counts (the
generator of ``tools/benchmark_eval.py``), then the evaluation paths of ``ReidEvaluator``:

* ``plain``: ``evaluate_rank_features`` (no re-ranking), for reference;
* ``aqe``: average query expansion of all features, then ``evaluate_rank_features``;
* ``rerank``: ``rerank_distance_chunks`` consumed block by block by ``evaluate_rank_chunks``
  (the full query x gallery matrix never exists).

It reports wall-clock and CPU seconds, the RSS before, the peak RSS sampled during the call,
and the peak extra memory, plus Rank-1 / mAP (random features: only the differences between
rows mean something).

    python tools/benchmark_rerank.py --size market
    python tools/benchmark_rerank.py --size msmt17 --modes rerank
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

import argparse  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from benchmark_eval import MB, SIZES, _loadavg, current_rss, make_data, max_rss, timed  # noqa: E402
from tabulate import tabulate  # noqa: E402

from cdnet_reid.apps.args import add_flag  # noqa: E402
from cdnet_reid.evaluation.query_expansion import average_query_expansion  # noqa: E402
from cdnet_reid.evaluation.rank import evaluate_rank_chunks, evaluate_rank_features  # noqa: E402
from cdnet_reid.evaluation.rerank import DEFAULT_CHUNK_BYTES, rerank_distance_chunks  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flag(p, "--dataset-size", deprecated=("--size",), choices=sorted(SIZES), default="market")
    p.add_argument("--num-query", type=int, help="override the number of queries")
    p.add_argument("--num-gallery", type=int, help="override the gallery size")
    p.add_argument("--feat-dim", type=int, default=512)
    add_flag(p, "--methods", deprecated=("--modes",), default="plain,aqe,rerank", help="comma-separated subset")
    p.add_argument("--k1", type=int, default=20)
    p.add_argument("--k2", type=int, default=6)
    p.add_argument("--lambda-value", type=float, default=0.3)
    p.add_argument("--chunk-mb", type=int, default=DEFAULT_CHUNK_BYTES // 2 ** 20,
                   help="re-ranking block budget in MB (default 256)")
    p.add_argument("--noise", type=float, default=3.0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    nq, ng, nid, ncam, _ = SIZES[args.dataset_size]
    nq, ng = args.num_query or nq, args.num_gallery or ng
    print(f"[{args.dataset_size}] {nq} queries x {ng} gallery, {nid} ids, {ncam} cams, dim {args.feat_dim},"
          f" torch {torch.__version__} threads {torch.get_num_threads()}, cpus {os.cpu_count()}, "
          f"load average {_loadavg()}", flush=True)
    q, g, qp, gp, qc, gc = make_data(nq, ng, nid, ncam, args.feat_dim, args.seed, args.noise)
    print(f"data built; RSS {current_rss() / MB:.0f} MB", flush=True)

    def plain():
        return evaluate_rank_features(q, g, qp, gp, qc, gc)

    def aqe():
        eq, eg = average_query_expansion(q, g, chunk_bytes=args.chunk_mb * 2 ** 20)
        eq, eg = torch.nn.functional.normalize(eq, dim=1), torch.nn.functional.normalize(eg, dim=1)
        return evaluate_rank_features(eq, eg, qp, gp, qc, gc)

    def rerank():
        chunks = rerank_distance_chunks(q, g, k1=args.k1, k2=args.k2,
                                        lambda_value=args.lambda_value,
                                        chunk_bytes=args.chunk_mb * 2 ** 20)
        return evaluate_rank_chunks(chunks, qp, gp, qc, gc)

    rows = []
    for mode in args.methods.split(","):
        fn = dict(plain=plain, aqe=aqe, rerank=rerank)[mode]
        t0 = time.perf_counter()
        (cmc, ap, _), sec, cpu, mem = timed(fn)
        print(f"{mode}: {time.perf_counter() - t0:.1f}s", flush=True)
        rows.append([mode, f"{sec:.1f}", f"{cpu:.1f}", f"{mem.before / MB:.0f}",
                     f"{mem.peak / MB:.0f}", f"{(mem.peak - mem.before) / MB:.0f}",
                     f"{100 * cmc[0]:.2f}", f"{100 * np.mean(ap):.2f}"])
    print()
    print(tabulate(rows, headers=["mode", "seconds", "CPU s", "RSS before (MB)", "peak RSS (MB)",
                                  "peak extra (MB)", "R1 %", "mAP %"], tablefmt="github"))
    print(f"\nprocess ru_maxrss: {max_rss() / MB:.0f} MB")


if __name__ == "__main__":
    main()
