"""Rank your own gallery: for every query crop, the top-k most similar gallery crops.

    cdnet-reid search-gallery --query crops/query/ --gallery crops/gallery/ --topk 10 \\
        --output results.csv MODEL.WEIGHTS logs/synthetic/cdnet/model_final.pth
    cdnet-reid search-gallery ... --onnx model_int8.onnx    (an exported model, in onnxruntime)
    python tools/search_gallery.py ...                     (the same, from a checkout)

The model and its input come from the checkpoint (or the exported file): ``--config-file`` is
optional, and must agree with it on them (a key given as a ``KEY VALUE`` override is used as
given).

``--query`` / ``--gallery``: a folder (searched recursively for images) or a text file with one
path per line. ``--output results.csv`` writes ``results.csv`` (``query, rank, gallery,
distance``; a path starting with = + - @ gets a leading ' so that spreadsheets show it as text)
and ``results.json`` (per query, the ranked matches). Distances are cosine distances
``1 - cos`` of the L2-normalised embeddings (``TEST.FLIP.ENABLED`` averages each crop with its
mirror image). Unreadable crops follow ``DATALOADER.ON_BAD_IMAGE`` as in ``cdnet-reid extract``:
``fail`` (default) stops with an error naming the file, ``skip`` leaves them out (and names them).
No identity labels are needed; when every file name follows Market-1501 naming
(``<pid>_c<camera>...``), ``--visualize`` colours matches green / red by identity, else grey;
every picture names the files it shows.

``--gallery-cache feats.npz`` stores the gallery embeddings (written atomically, under exactly
that name) with a fingerprint of the model and of the gallery files, so a repeated search only
embeds the queries; a cache that cannot be read is embedded again and rewritten. ``--rerank`` applies
k-reciprocal re-ranking (exact search only). For galleries beyond memory, ``--index faiss-flat``
(exact inner product) or ``--index faiss-ivf`` (inverted lists: ``--nlist``, ``--nprobe``) search
with FAISS (``pip install faiss-cpu``).
"""

import csv
import hashlib
import json
import logging
import os
import zipfile
from collections.abc import Sequence

import numpy as np
import torch

from ..config import ConfigError
from ..data.datasets.layout import MARKET_NAME_RE, list_image_files
from ..engine.file_embedding import embed_files, skipped_summary
from ..engine.predictor import DefaultPredictor
from ..engine.runtimes import create_predictor
from ..evaluation.gallery_search import INDEXES, exact_topk, faiss_topk, search
from ..utils.file_io import InputFileError, atomic_write, spreadsheet_safe
from .args import add_config_arguments, add_output, add_runtime, add_topk, model_options, setup_tool_cfg, tool_parser

logger = logging.getLogger(__name__)

__all__ = ["INDEXES", "embed", "exact_topk", "faiss_topk", "gallery_features", "main", "search",
           "write_results"]


# ----------------------------------------------------------------------------------- embeddings
def _fingerprint(predictor: DefaultPredictor, paths: Sequence[str]) -> str:
    """Changes whenever the model (config, weights or exported file, runtime, precision) or a
    gallery file changes."""
    h = hashlib.sha1(predictor.cfg.dump().encode())
    h.update(f"{predictor.runtime}:{predictor.precision}".encode())
    model_file = predictor.model_file
    if model_file and os.path.exists(model_file):
        st = os.stat(model_file)
        h.update(f"{os.path.abspath(model_file)}:{st.st_size}:{st.st_mtime_ns}".encode())
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:  # a listed file that is missing: DATALOADER.ON_BAD_IMAGE decides
            h.update(f"{os.path.abspath(p)}:missing".encode())
            continue
        h.update(f"{os.path.abspath(p)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def embed(predictor: DefaultPredictor, paths: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """``(embeddings, paths embedded)``: the L2-normalised float32 embeddings (K x D) of the
    readable images of ``paths`` and those K paths. Unreadable images stop the run or are left
    out by the predictor's ``DATALOADER.ON_BAD_IMAGE``, as in feature extraction
    (:func:`~cdnet_reid.engine.file_embedding.embed_files`)."""
    feats, kept, _ = embed_files(predictor, paths)
    feats = torch.nn.functional.normalize(torch.from_numpy(feats), dim=1).numpy()
    return feats, [paths[i] for i in kept]


#: What reading a damaged or foreign ``.npz`` raises.
_CACHE_ERRORS = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile)


def _read_cache(cache: str, key: str, paths: Sequence[str]) -> tuple[np.ndarray, list[str]] | None:
    """The cached ``(embeddings, paths)`` when ``cache`` holds these files embedded by this
    model; ``None`` (logged) when it was made for another model or gallery, or is unreadable
    (e.g. a write killed by an older version, which did not write atomically)."""
    try:
        with np.load(cache, allow_pickle=False) as data:
            kept = [str(p) for p in data["paths"]]
            if str(data["fingerprint"]) == key and set(kept) <= set(paths):
                logger.info("Gallery embeddings of %d images read from %s", len(kept), cache)
                return data["features"], kept
    except _CACHE_ERRORS as e:
        logger.warning("Gallery cache %s cannot be read (%s: %s); embedding the gallery again", cache,
                       type(e).__name__, str(e).splitlines()[0][:120] if str(e) else "")
        return None
    logger.info("%s was made for another model or gallery; embedding the gallery again", cache)
    return None


def gallery_features(predictor, paths: Sequence[str], cache: str = "") -> tuple[np.ndarray, list[str]]:
    """``(embeddings, paths embedded)`` of the gallery (see :func:`embed`), from ``cache`` when it
    holds these files embedded by this model under this config (bad-image policy included);
    else embedded and, with ``cache``, written there atomically under exactly that name."""
    key = _fingerprint(predictor, paths)
    if cache and os.path.isfile(cache):
        cached = _read_cache(cache, key, paths)
        if cached is not None:
            return cached
    feats, kept = embed(predictor, paths)
    if cache:
        with atomic_write(cache, "wb") as f:
            np.savez(f, features=feats, paths=np.array(kept), fingerprint=np.array(key))
        logger.info("Gallery embeddings written to %s", cache)
    return feats, kept


# -------------------------------------------------------------------------------------- output
def market_labels(paths: Sequence[str]) -> list[tuple[int, int]] | None:
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
        raise ConfigError(f"--output {out}: give a .csv or .json name (both files are written)")
    return stem


def write_results(out: str, q_paths, g_paths, dist: np.ndarray, idx: np.ndarray) -> list[str]:
    """``<stem>.csv`` and ``<stem>.json`` (each written atomically); returns both paths."""
    stem = results_stem(out)
    with atomic_write(stem + ".csv", "w") as f:
        w = csv.writer(f)
        w.writerow(["query", "rank", "gallery", "distance"])
        for qi, q in enumerate(q_paths):
            for r, (gi, d) in enumerate(zip(idx[qi], dist[qi])):
                w.writerow([spreadsheet_safe(q), r + 1, spreadsheet_safe(g_paths[gi]), f"{d:.6f}"])
    with atomic_write(stem + ".json", "w") as f:
        json.dump([{"query": q, "matches": [{"gallery": g_paths[gi], "distance": round(float(d), 6)}
                                            for gi, d in zip(idx[qi], dist[qi])]}
                   for qi, q in enumerate(q_paths)], f, indent=1)
    return [stem + ".csv", stem + ".json"]


def visualize(folder: str, q_paths, g_paths, dist, idx) -> list[str]:
    """One rank-list picture per query in ``folder``, naming every file it shows."""
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
            os.path.join(folder, f"query_{qi:05d}.png"), title=os.path.basename(q), show_names=True))
    return written


def _left_out(paths: Sequence[str], kept: Sequence[str]) -> list[str]:
    """The ``paths`` not in ``kept`` (unreadable images skipped), in order."""
    kept = set(kept)
    return [p for p in paths if p not in kept]


def main(argv: Sequence[str] | None = None, prog: str | None = None):
    p = tool_parser(prog, __doc__)
    p.add_argument("--query", required=True, help="folder of query crops, or a text file of paths")
    p.add_argument("--gallery", required=True, help="folder of gallery crops, or a text file of paths")
    add_topk(p)
    add_output(p, "results.csv: writes results.csv and results.json")
    p.add_argument("--gallery-cache", default="", metavar="FEATS.NPZ",
                   help="reuse / store the gallery embeddings (this exact file name)")
    p.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (TEST.RERANK.K1/K2/LAMBDA)")
    p.add_argument("--index", choices=INDEXES, default="exact")
    p.add_argument("--nlist", type=int, default=1024, help="faiss-ivf: inverted lists")
    p.add_argument("--nprobe", type=int, default=16, help="faiss-ivf: lists visited per query")
    p.add_argument("--visualize", default="", metavar="DIR", help="also draw a rank list per query")
    add_runtime(p)
    add_config_arguments(p)
    args = p.parse_args(argv)
    if args.topk < 1:
        p.error("--topk must be >= 1")
    if args.rerank and args.index != "exact":
        p.error("--rerank needs --index exact (it uses the full distance matrix)")
    results_stem(args.output)  # a bad name is refused before anything is embedded
    cfg = setup_tool_cfg(args)
    options = model_options(args)
    if args.gallery_cache and options["runtime"] == "torch" and not cfg.MODEL.WEIGHTS:
        raise ConfigError("--gallery-cache needs MODEL.WEIGHTS: without trained weights the model is "
                          "initialised afresh, and its embeddings differ, on every run")
    q_paths, _ = list_image_files(args.query, what="--query")
    g_paths, _ = list_image_files(args.gallery, what="--gallery")
    if not q_paths or not g_paths:
        raise InputFileError(f"no images found: {len(q_paths)} queries in {args.query}, "
                             f"{len(g_paths)} gallery images in {args.gallery}")
    predictor = create_predictor(cfg, **options)
    g_feats, g_kept = gallery_features(predictor, g_paths, args.gallery_cache)
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
          f"({args.index}{', re-ranked' if args.rerank else ''}, {options['runtime']}); wrote:\n"
          + "\n".join(written))
