"""Rank your own gallery: for every query crop, the top-k most similar gallery crops.

    python tools/search_gallery.py --config-file configs/Synthetic/cdnet.yml \\
        --query crops/query/ --gallery crops/gallery/ --topk 10 --output results.csv \\
        MODEL.WEIGHTS logs/synthetic/cdnet/model_final.pth
    cdnet-reid search-gallery ...                          (the same, from an installed package)

``--query`` / ``--gallery``: a folder (searched recursively for images) or a text file with one
path per line. ``--output results.csv`` writes ``results.csv`` (``query, rank, gallery,
distance``) and ``results.json`` (per query, the ranked matches). Distances are cosine distances
``1 - cos`` of the L2-normalised embeddings (``TEST.FLIP.ENABLED`` averages each crop with its
mirror image). Unreadable crops follow ``DATALOADER.ON_BAD_IMAGE`` as in ``cdnet-reid extract``:
``fail`` (default) stops with an error naming the file, ``skip`` leaves them out (and names them).
No identity labels are needed; when every file name follows Market-1501 naming
(``<pid>_c<camera>...``), ``--visualize`` colours matches green / red by identity, else grey.

``--gallery-cache feats.npz`` stores the gallery embeddings with a fingerprint of the model and of
the gallery files, so a repeated search only embeds the queries. ``--rerank`` applies
k-reciprocal re-ranking (exact search only). For galleries beyond memory, ``--index faiss-flat``
(exact inner product) or ``--index faiss-ivf`` (inverted lists: ``--nlist``, ``--nprobe``) search
with FAISS (``pip install faiss-cpu``).
"""

import argparse
import csv
import hashlib
import json
import logging
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..data.datasets.layout import MARKET_NAME_RE, list_image_files
from ..engine.defaults import add_config_arguments, setup_tool_cfg
from ..engine.predictor import DefaultPredictor
from ..evaluation.rerank import k_reciprocal_rerank
from .extract import embed_files, skipped_summary

logger = logging.getLogger(__name__)

INDEXES = ("exact", "faiss-flat", "faiss-ivf")


# ------------------------------------------------------------------------------------- searching
def exact_topk(queries: np.ndarray, gallery: np.ndarray, k: int, block: int = 65536
               ) -> Tuple[np.ndarray, np.ndarray]:
    """``(distances, indices)`` (Q x k, ascending cosine distance, ties by gallery index) of
    L2-normalised rows, computed block by block over the gallery (memory ~ Q x block)."""
    q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
    k = min(k, len(gallery))
    best_d = torch.full((len(q), 0), float("inf"))
    best_i = torch.empty((len(q), 0), dtype=torch.int64)
    for start in range(0, len(gallery), block):
        g = torch.from_numpy(np.ascontiguousarray(gallery[start:start + block], dtype=np.float32))
        d = 1.0 - q @ g.T
        idx = torch.arange(start, start + len(g)).expand(len(q), -1)
        cand_d, cand_i = torch.cat([best_d, d], 1), torch.cat([best_i, idx], 1)
        # stable order: distance first, then gallery index (candidates are in index order)
        order = torch.argsort(cand_d, dim=1, stable=True)[:, :k]
        best_d, best_i = cand_d.gather(1, order), cand_i.gather(1, order)
    return best_d.numpy(), best_i.numpy()


def faiss_topk(queries: np.ndarray, gallery: np.ndarray, k: int, *, ivf: bool = False,
               nlist: int = 1024, nprobe: int = 16) -> Tuple[np.ndarray, np.ndarray]:
    """The same with a FAISS index: ``IndexFlatIP`` (exact), or ``IndexIVFFlat`` (approximate)."""
    try:
        import faiss
    except ImportError:
        raise SystemExit("--index faiss-*: FAISS is not installed (pip install faiss-cpu)") from None
    g = np.ascontiguousarray(gallery, dtype=np.float32)
    if ivf:
        nlist = max(1, min(nlist, len(g) // 39))  # FAISS wants >= 39 training points per list
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(g.shape[1]), g.shape[1], nlist,
                                   faiss.METRIC_INNER_PRODUCT)
        index.train(g)
        index.nprobe = min(nprobe, nlist)
    else:
        index = faiss.IndexFlatIP(g.shape[1])
    index.add(g)
    sims, idx = index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, len(g)))
    return 1.0 - sims, idx


def search(queries: np.ndarray, gallery: np.ndarray, k: int, *, index: str = "exact",
           rerank: Optional[Tuple[int, int, float]] = None, nlist: int = 1024, nprobe: int = 16
           ) -> Tuple[np.ndarray, np.ndarray]:
    """Top-``k`` gallery rows of every query row (both L2-normalised) by cosine distance, or by
    the k-reciprocal re-ranked distance with ``rerank=(k1, k2, lambda)``."""
    if index not in INDEXES:
        raise ValueError(f"--index must be one of {INDEXES}, got {index!r}")
    if rerank:
        if index != "exact":
            raise SystemExit("--rerank needs --index exact (it uses the full distance matrix)")
        k1, k2, lam = rerank
        dist = k_reciprocal_rerank(torch.from_numpy(queries), torch.from_numpy(gallery), k1=k1, k2=k2,
                                   lambda_value=lam)
        order = torch.argsort(dist, dim=1, stable=True)[:, :k]
        return dist.gather(1, order).numpy(), order.numpy()
    if index == "exact":
        return exact_topk(queries, gallery, k)
    return faiss_topk(queries, gallery, k, ivf=index == "faiss-ivf", nlist=nlist, nprobe=nprobe)


# ----------------------------------------------------------------------------------- embeddings
def _fingerprint(cfg, paths: Sequence[str]) -> str:
    """Changes whenever the model (config, weights file) or a gallery file changes."""
    h = hashlib.sha1(cfg.dump().encode())
    weights = cfg.MODEL.WEIGHTS
    if weights and os.path.exists(weights):
        st = os.stat(weights)
        h.update(f"{os.path.abspath(weights)}:{st.st_size}:{st.st_mtime_ns}".encode())
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:  # a listed file that is missing: DATALOADER.ON_BAD_IMAGE decides
            h.update(f"{os.path.abspath(p)}:missing".encode())
            continue
        h.update(f"{os.path.abspath(p)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def embed(predictor: DefaultPredictor, paths: Sequence[str]) -> Tuple[np.ndarray, List[str]]:
    """``(embeddings, paths embedded)``: the L2-normalised float32 embeddings (K x D) of the
    readable images of ``paths`` and those K paths. Unreadable images stop the run or are left
    out by the predictor's ``DATALOADER.ON_BAD_IMAGE``, as in feature extraction
    (:func:`~cdnet_reid.apps.extract.embed_files`)."""
    feats, kept, _ = embed_files(predictor, paths)
    feats = torch.nn.functional.normalize(torch.from_numpy(feats), dim=1).numpy()
    return feats, [paths[i] for i in kept]


def gallery_features(cfg, predictor, paths: Sequence[str], cache: str = ""
                     ) -> Tuple[np.ndarray, List[str]]:
    """``(embeddings, paths embedded)`` of the gallery (see :func:`embed`), from ``cache`` when it
    holds these files embedded by this model under this config (bad-image policy included)."""
    key = _fingerprint(cfg, paths)
    if cache and os.path.exists(cache):
        with np.load(cache, allow_pickle=False) as data:
            kept = [str(p) for p in data["paths"]]
            if str(data["fingerprint"]) == key and set(kept) <= set(paths):
                logger.info("Gallery embeddings of %d images read from %s", len(kept), cache)
                return data["features"], kept
        logger.info("%s was made for another model or gallery; embedding the gallery again", cache)
    feats, kept = embed(predictor, paths)
    if cache:
        folder = os.path.dirname(os.path.abspath(cache))
        os.makedirs(folder, exist_ok=True)
        np.savez(cache, features=feats, paths=np.array(kept), fingerprint=np.array(key))
        logger.info("Gallery embeddings written to %s", cache)
    return feats, kept


# -------------------------------------------------------------------------------------- output
def market_labels(paths: Sequence[str]) -> Optional[List[Tuple[int, int]]]:
    """``(pid, camid)`` of every path when all follow Market-1501 naming, else ``None``."""
    labels = []
    for p in paths:
        m = MARKET_NAME_RE.match(os.path.basename(p))
        if m is None:
            return None
        labels.append((int(m.group(1)), int(m.group(2)) - 1))
    return labels


def results_stem(out: str) -> str:
    """``out`` without its ``.csv`` / ``.json`` suffix; any other name is refused."""
    stem, suffix = os.path.splitext(out)
    if suffix.lower() not in (".csv", ".json"):
        raise SystemExit(f"--output {out}: give a .csv or .json name (both files are written)")
    return stem


def write_results(out: str, q_paths, g_paths, dist: np.ndarray, idx: np.ndarray) -> List[str]:
    """``<stem>.csv`` and ``<stem>.json``; returns both paths."""
    stem = results_stem(out)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(stem + ".csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["query", "rank", "gallery", "distance"])
        for qi, q in enumerate(q_paths):
            for r, (gi, d) in enumerate(zip(idx[qi], dist[qi])):
                w.writerow([q, r + 1, g_paths[gi], f"{d:.6f}"])
    with open(stem + ".json", "w", encoding="utf-8") as f:
        json.dump([{"query": q, "matches": [{"gallery": g_paths[gi], "distance": round(float(d), 6)}
                                            for gi, d in zip(idx[qi], dist[qi])]}
                   for qi, q in enumerate(q_paths)], f, indent=1)
    return [stem + ".csv", stem + ".json"]


def visualize(folder: str, q_paths, g_paths, dist, idx) -> List[str]:
    from ..utils.visualizer import plot_rank_list

    q_labels, g_labels = market_labels(q_paths), market_labels(g_paths)
    labelled = q_labels is not None and g_labels is not None
    written = []
    for qi, q in enumerate(q_paths):
        top = list(idx[qi])
        written.append(plot_rank_list(
            q, q_labels[qi][0] if labelled else None, q_labels[qi][1] if labelled else None,
            [g_paths[j] for j in top], [g_labels[j][0] for j in top] if labelled else None,
            [g_labels[j][1] for j in top] if labelled else None, dist[qi].tolist(),
            os.path.join(folder, f"query_{qi:05d}.png"), title=os.path.basename(q)))
    return written


def _left_out(paths: Sequence[str], kept: Sequence[str]) -> List[str]:
    """The ``paths`` not in ``kept`` (unreadable images skipped), in order."""
    kept = set(kept)
    return [p for p in paths if p not in kept]


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None):
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--query", required=True, help="folder of query crops, or a text file of paths")
    p.add_argument("--gallery", required=True, help="folder of gallery crops, or a text file of paths")
    p.add_argument("--topk", type=int, default=10, help="matches per query (default 10)")
    p.add_argument("--output", required=True, help="results.csv: writes results.csv and results.json")
    p.add_argument("--gallery-cache", default="", metavar="FEATS.NPZ",
                   help="reuse / store the gallery embeddings")
    p.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (TEST.RERANK.K1/K2/LAMBDA)")
    p.add_argument("--index", choices=INDEXES, default="exact")
    p.add_argument("--nlist", type=int, default=1024, help="faiss-ivf: inverted lists")
    p.add_argument("--nprobe", type=int, default=16, help="faiss-ivf: lists visited per query")
    p.add_argument("--visualize", default="", metavar="DIR", help="also draw a rank list per query")
    add_config_arguments(p)
    args = p.parse_args(argv)
    if args.topk < 1:
        raise SystemExit("--topk must be >= 1")
    if args.rerank and args.index != "exact":
        raise SystemExit("--rerank needs --index exact (it uses the full distance matrix)")
    results_stem(args.output)  # a bad name is refused before anything is embedded
    cfg = setup_tool_cfg(args)
    if args.gallery_cache and not cfg.MODEL.WEIGHTS:
        raise SystemExit("--gallery-cache needs MODEL.WEIGHTS: without trained weights the model is "
                         "initialised afresh, and its embeddings differ, on every run")
    q_paths, _ = list_image_files(args.query, what="--query")
    g_paths, _ = list_image_files(args.gallery, what="--gallery")
    if not q_paths or not g_paths:
        raise SystemExit(f"no images found: {len(q_paths)} queries in {args.query}, "
                         f"{len(g_paths)} gallery images in {args.gallery}")
    predictor = DefaultPredictor(cfg)
    g_feats, g_kept = gallery_features(cfg, predictor, g_paths, args.gallery_cache)
    q_feats, q_kept = embed(predictor, q_paths)
    skipped = _left_out(q_paths, q_kept) + _left_out(g_paths, g_kept)
    q_paths, g_paths = q_kept, g_kept
    rr = cfg.TEST.RERANK
    dist, idx = search(q_feats, g_feats, args.topk, index=args.index,
                       rerank=(rr.K1, rr.K2, rr.LAMBDA) if args.rerank else None,
                       nlist=args.nlist, nprobe=args.nprobe)
    written = write_results(args.output, q_paths, g_paths, dist, idx)
    if args.visualize:
        written += visualize(args.visualize, q_paths, g_paths, dist, idx)
    if skipped:
        print(skipped_summary(skipped))
    print(f"{len(q_paths)} queries x {len(g_paths)} gallery images, top {idx.shape[1]} "
          f"({args.index}{', re-ranked' if args.rerank else ''}); wrote:\n" + "\n".join(written))
