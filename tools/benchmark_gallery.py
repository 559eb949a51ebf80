#!/usr/bin/env python
"""Query time of gallery search on synthetic embeddings: exact (torch, blocks), FAISS exact
(IndexFlatIP) and FAISS IVF (IndexIVFFlat), with IVF's recall@k against the exact result.

    python tools/benchmark_gallery.py --sizes 100000 1000000 --queries 100 --dim 768

The embeddings are L2-normalised points around ``--clusters`` random centres (identities seen
from several views), which is what re-ID galleries look like; uniform random vectors would make
every approximate index look bad. Times are per batch of ``--queries`` queries, index building
(FAISS train + add) excluded and reported separately.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from cdnet_reid.apps.args import add_flag, add_topk  # noqa: E402
from cdnet_reid.evaluation.gallery_search import exact_topk  # noqa: E402


def clustered(n: int, dim: int, clusters: int, rng, spread: float = 0.35) -> np.ndarray:
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)] + spread * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main():
    from tabulate import tabulate

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    add_flag(p, "--num-query", deprecated=("--queries",), type=int, default=100, help="number of queries")
    p.add_argument("--dim", type=int, default=768, help="embedding size (CDNet: 768)")
    p.add_argument("--clusters", type=int, default=2000)
    add_topk(p)
    p.add_argument("--nlist", type=int, default=1024)
    p.add_argument("--nprobe", type=int, nargs="+", default=[8, 32])
    args = p.parse_args()
    import faiss

    rng = np.random.default_rng(0)
    rows = []
    for n in args.sizes:
        g = clustered(n, args.dim, args.clusters, rng)
        q = clustered(args.num_query, args.dim, args.clusters, np.random.default_rng(1))
        t = time.perf_counter()
        _, exact = exact_topk(q, g, args.topk)
        rows.append([n, "exact (torch blocks)", "-", f"{time.perf_counter() - t:.3f}", "1.000"])
        flat = faiss.IndexFlatIP(args.dim)
        t = time.perf_counter()
        flat.add(g)
        build = time.perf_counter() - t
        t = time.perf_counter()
        _, idx = flat.search(q, args.topk)
        rows.append([n, "FAISS IndexFlatIP", f"{build:.1f}", f"{time.perf_counter() - t:.3f}",
                     f"{np.mean([len(set(a) & set(b)) / args.topk for a, b in zip(idx, exact)]):.3f}"])
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(args.dim), args.dim, args.nlist, faiss.METRIC_INNER_PRODUCT)
        t = time.perf_counter()
        ivf.train(g[rng.choice(n, min(n, 64 * args.nlist), replace=False)])
        ivf.add(g)
        build = time.perf_counter() - t
        for nprobe in args.nprobe:
            ivf.nprobe = nprobe
            t = time.perf_counter()
            _, idx = ivf.search(q, args.topk)
            recall = np.mean([len(set(a) & set(b)) / args.topk for a, b in zip(idx, exact)])
            rows.append([n, f"FAISS IVF{args.nlist},Flat nprobe {nprobe}", f"{build:.1f}",
                         f"{time.perf_counter() - t:.3f}", f"{recall:.3f}"])
        print(tabulate(rows[-(2 + len(args.nprobe)):], tablefmt="plain"), flush=True)
    print()
    print(f"{args.num_query} queries, dim {args.dim}, top {args.topk}:")
    print(tabulate(rows, headers=["gallery", "index", "build (s)", "query time (s)", f"recall@{args.topk}"],
                   tablefmt="pipe"))


if __name__ == "__main__":
    main()
