#!/usr/bin/env python
"""Benchmark the re-ID ranking metrics (``cdnet_reid.evaluation.rank``) at real dataset sizes.

Builds random, identity-clustered features with the pid / camera layout of a dataset, then times

* ``evaluate_rank`` on an explicit query x gallery distance matrix (``--mode distmat``), and
* ``evaluate_rank_features``, which never materialises the distance matrix (``--mode features``),

reporting wall-clock seconds, the peak resident memory *during* each call (sampled from
``/proc/self/statm``), the extra memory over the RSS just before the call, and the process-wide
``ru_maxrss``.

Examples (from the repository root)::

    python tools/benchmark_eval.py --size market
    python tools/benchmark_eval.py --size msmt17
    python tools/benchmark_eval.py --num-query 1000 --num-gallery 5000 --num-ids 300 --num-cams 6
    python tools/benchmark_eval.py --size msmt17 --mode distmat --baseline /tmp/rank_old.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import gc  # noqa: E402
import importlib.util  # noqa: E402
import os  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tabulate import tabulate  # noqa: E402

from cdnet_reid.apps.args import add_flag  # noqa: E402
from cdnet_reid.evaluation import rank  # noqa: E402
from cdnet_reid.utils.benchmark import current_rss_mb, peak_rss_mb  # noqa: E402

# name: (num_query, num_gallery, num_test_ids, num_cams, default modes)
SIZES = {
    "market": (3368, 15913, 751, 6, ("distmat", "features")),
    "msmt17": (11659, 82161, 3060, 15, ("features", "distmat")),
}
MB = 1024.0 * 1024.0


def current_rss() -> float:
    """Current resident set size in bytes (:func:`cdnet_reid.utils.benchmark.current_rss_mb`)."""
    return current_rss_mb() * MB


def max_rss() -> float:
    """Process peak RSS in bytes (:func:`cdnet_reid.utils.benchmark.peak_rss_mb`)."""
    return peak_rss_mb() * MB


class PeakRSS:
    """Samples the RSS in a background thread; ``peak`` is the maximum seen inside the block."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.before = self.peak = 0.0
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, current_rss())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        gc.collect()
        self.before = self.peak = current_rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, current_rss())


def _loadavg() -> str:
    try:
        return "/".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def make_data(
    num_query: int,
    num_gallery: int,
    num_ids: int,
    num_cams: int,
    dim: int,
    seed: int,
    noise: float = 3.0,
):
    """Random L2-normalised features clustered by identity, plus pids / camids.

    Every id gets at least one gallery image; queries are drawn from the ids with their camera
    chosen at random, so a few queries may have no cross-camera match (they are skipped).
    """
    rng = np.random.default_rng(seed)
    g_pids = np.concatenate([np.arange(num_ids), rng.integers(0, num_ids, num_gallery - num_ids)])
    rng.shuffle(g_pids)
    q_pids = rng.integers(0, num_ids, num_query)
    g_cams = rng.integers(0, num_cams, num_gallery)
    q_cams = rng.integers(0, num_cams, num_query)
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_ids, dim, generator=gen)

    def feats(pids: np.ndarray) -> torch.Tensor:
        f = torch.empty(len(pids), dim)
        for a in range(0, len(pids), 8192):  # bounded temporaries
            p = torch.from_numpy(pids[a : a + 8192])
            blk = centres[p] + noise * torch.randn(len(p), dim, generator=gen)
            f[a : a + 8192] = torch.nn.functional.normalize(blk, dim=1)
        return f

    return feats(q_pids), feats(g_pids), q_pids + 1, g_pids + 1, q_cams, g_cams


def cosine_distmat(q: torch.Tensor, g: torch.Tensor, block: int = 2048) -> np.ndarray:
    """Full (Q, G) float32 cosine distance matrix, filled block-wise (no 2x temporaries)."""
    out = np.empty((q.shape[0], g.shape[0]), dtype=np.float32)
    o = torch.from_numpy(out)
    for a in range(0, q.shape[0], block):
        torch.mm(q[a : a + block], g.t(), out=o[a : a + block])
        o[a : a + block].neg_().add_(1.0)
    return out


def reference_subset(distmat: np.ndarray, q_pids, g_pids, q_cams, g_cams, rows: np.ndarray):
    """Straightforward per-query loop (fast-reid style, stable argsort) for selected queries."""
    aps, inps = [], []
    for i in rows:
        order = np.argsort(distmat[i], kind="stable")
        same = g_pids[order] == q_pids[i]
        keep = ~(same & (g_cams[order] == q_cams[i]))
        matches = same[keep]
        if not matches.any():
            continue
        hits = np.cumsum(matches)
        pos = np.arange(1, matches.size + 1)
        aps.append((hits / pos)[matches].sum() / matches.sum())
        inps.append(matches.sum() / pos[matches][-1])
    return np.asarray(aps), np.asarray(inps)


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float, PeakRSS]:
    """Run ``fn``; return its result, wall seconds, process CPU seconds and memory monitor."""
    with PeakRSS() as mem:
        c0, t0 = time.process_time(), time.perf_counter()
        result = fn()
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return result, seconds, cpu, mem


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_flag(parser, "--dataset-size", deprecated=("--size",), choices=sorted(SIZES),
             help="real dataset sizes to mimic")
    parser.add_argument("--num-query", type=int, help="number of queries (custom size)")
    parser.add_argument("--num-gallery", type=int, help="number of gallery items (custom size)")
    parser.add_argument("--num-ids", type=int, default=None, help="number of test identities")
    parser.add_argument("--num-cams", type=int, default=None, help="number of cameras")
    parser.add_argument("--feat-dim", type=int, default=768, help="feature dimension (default 768)")
    parser.add_argument(
        "--mode", choices=["distmat", "features", "both"], default=None,
        help="what to time (default: both; msmt17 runs features first)",
    )
    parser.add_argument(
        "--chunk-size", type=int, default=None, help="queries per chunk (default: auto)"
    )
    parser.add_argument("--max-rank", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument(
        "--check", type=int, default=200,
        help="compare AP/INP of this many random queries with a per-query Python loop (0: off)",
    )
    parser.add_argument("--noise", type=float, default=3.0, help="feature noise (larger = harder)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--baseline", metavar="RANK_PY", default=None,
        help="also time another copy of cdnet_reid/evaluation/rank.py (e.g. from `git show "
             "HEAD:cdnet_reid/evaluation/rank.py > /tmp/rank_old.py`) right before the current "
             "one on the same inputs, and check that the results are identical",
    )
    args = parser.parse_args(argv)

    if args.dataset_size:
        nq, ng, nid, ncam, modes = SIZES[args.dataset_size]
        nq, ng = args.num_query or nq, args.num_gallery or ng
        nid, ncam = args.num_ids or nid, args.num_cams or ncam
        name = args.dataset_size
    else:
        if not (args.num_query and args.num_gallery):
            parser.error("give --size or both --num-query and --num-gallery")
        nq, ng = args.num_query, args.num_gallery
        nid = args.num_ids or max(1, min(ng, ng // 20))
        ncam = args.num_cams or 6
        modes = ("distmat", "features")
        name = "custom"
    if args.mode in ("distmat", "features"):
        modes = (args.mode,)
    if args.threads:
        torch.set_num_threads(args.threads)

    print(
        f"[{name}] {nq} queries x {ng} gallery, {nid} ids, {ncam} cams, dim {args.feat_dim}, "
        f"torch {torch.__version__} threads {torch.get_num_threads()}, numpy {np.__version__}, "
        f"cpus {os.cpu_count()}, load average {_loadavg()}",
        flush=True,
    )
    t0 = time.perf_counter()
    q, g, q_pids, g_pids, q_cams, g_cams = make_data(
        nq, ng, nid, ncam, args.feat_dim, args.seed, args.noise
    )
    print(
        f"data built in {time.perf_counter() - t0:.1f}s; RSS {current_rss() / MB:.0f} MB",
        flush=True,
    )

    impls = [("", rank)]
    if args.baseline:  # timed first, right before the current code on the same inputs
        spec = importlib.util.spec_from_file_location("rank_baseline", args.baseline)
        baseline = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(baseline)
        impls.insert(0, (" [baseline]", baseline))

    rows, results = [], {}
    for mode in modes:
        if mode == "distmat":
            t0 = time.perf_counter()
            distmat = cosine_distmat(q, g)
            print(
                f"distmat {distmat.shape} float32 ({distmat.nbytes / MB:.0f} MB) computed in "
                f"{time.perf_counter() - t0:.1f}s", flush=True,
            )
        by_impl = {}
        for tag, mod in impls:
            if mode == "features":
                res, sec, cpu, mem = timed(
                    lambda mod=mod: mod.evaluate_rank_features(
                        q, g, q_pids, g_pids, q_cams, g_cams, metric="cosine",
                        max_rank=args.max_rank, chunk_size=args.chunk_size,
                    )
                )
                label, extra_note = "evaluate_rank_features (cosine)", "features only"
            else:
                res, sec, cpu, mem = timed(
                    lambda mod=mod, distmat=distmat: mod.evaluate_rank(
                        distmat, q_pids, g_pids, q_cams, g_cams,
                        max_rank=args.max_rank, chunk_size=args.chunk_size,
                    )
                )
                label = "evaluate_rank (distmat)"
                extra_note = f"distmat {distmat.nbytes / MB:.0f} MB"
            by_impl[tag] = res
            cmc, all_ap, all_inp = res
            rows.append(
                [
                    label + tag, f"{sec:.2f}", f"{cpu:.2f}", f"{mem.before / MB:.0f}",
                    f"{mem.peak / MB:.0f}", f"{(mem.peak - mem.before) / MB:.0f}", extra_note,
                    len(all_ap), f"{100 * cmc[0]:.2f}", f"{100 * all_ap.mean():.2f}",
                    f"{100 * all_inp.mean():.2f}",
                ]
            )
            print(f"{label}{tag}: {sec:.2f}s", flush=True)
        results[mode] = res = by_impl[""]
        if len(by_impl) == 2:
            same = all(np.array_equal(x, y) for x, y in zip(res, by_impl[" [baseline]"]))
            print(f"{mode}: results identical to the baseline: {same}", flush=True)
            if not same:
                raise SystemExit("MISMATCH with the baseline")
        if mode == "distmat":
            if args.check:
                rng = np.random.default_rng(1)
                rows_chk = np.sort(rng.choice(nq, min(args.check, nq), replace=False))
                ref_ap, ref_inp = reference_subset(
                    distmat, q_pids, g_pids, q_cams, g_cams, rows_chk
                )
                _, sub_ap, sub_inp = rank.evaluate_rank(
                    distmat[rows_chk], q_pids[rows_chk], g_pids, q_cams[rows_chk], g_cams
                )
                err = max(
                    float(np.abs(sub_ap - ref_ap).max()), float(np.abs(sub_inp - ref_inp).max())
                )
                print(f"check vs per-query loop on {len(rows_chk)} queries: max |diff| = {err:.3g}")
                if err > 1e-9:
                    raise SystemExit("MISMATCH with the per-query reference")
            del distmat
            gc.collect()

    if len(results) == 2:
        a, b = results["distmat"], results["features"]
        diff = max(float(np.abs(x - y).max()) for x, y in zip(a, b))
        print(f"max |distmat - features| over cmc/AP/INP: {diff:.3g}")

    print()
    print(
        tabulate(
            rows,
            headers=[
                "function", "seconds", "CPU s", "RSS before (MB)", "peak RSS (MB)",
                "peak extra (MB)",
                "input", "valid q", "R1 %", "mAP %", "mINP %",
            ],
            tablefmt="github",
        )
    )
    print(f"\nprocess ru_maxrss: {max_rss() / MB:.0f} MB")


if __name__ == "__main__":
    main()
