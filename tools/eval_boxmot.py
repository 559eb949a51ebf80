#!/usr/bin/env python
"""Rank-1 / mAP of a trained checkpoint through boxmot, one row per exported file.

What a tracker sees: every file of ``cdnet-reid export --for boxmot`` is loaded by boxmot's own
backend (``boxmot.reid.core.ReID(weights=...)``, as ``reid_weights=`` does) and embeds every
query and gallery image of the checkpoint's test set through ``get_features(xyxy, bgr_image)``
(the whole image as one box: boxmot crops, resizes with OpenCV linear and normalises); the
features are ranked as the evaluator ranks ours (cosine, Market-1501 protocol). The first rows are
our own evaluation of the checkpoint (PyTorch, the test transform with PIL and with OpenCV resize),
so that every row reads against them.

    cdnet-reid export --for boxmot --output out/cdnet.onnx MODEL.WEIGHTS logs/synthetic/cdnet/model_final.pth
    python tools/eval_boxmot.py --weights logs/synthetic/cdnet/model_final.pth out/cdnet.onnx \\
        out/cdnet.torchscript out/cdnet_openvino_model out/cdnet_int8.onnx

boxmot (``pip install -e .[track]``) is imported only here. Needs the test set of the checkpoint's
``DATASETS.TESTS[0]`` under ``DATASETS.ROOT`` (the embedded SyntheticReID is generated on demand).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

import argparse  # noqa: E402
import time  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from tabulate import tabulate  # noqa: E402


def boxmot_features(path: str, items) -> np.ndarray:
    """boxmot's backend for ``path`` on each image of ``items`` ((path, pid, camid) tuples)."""
    from boxmot.reid.core import ReID

    from cdnet_reid.integrations.boxmot import boxmot_accepts_installed_onnxruntime

    with boxmot_accepts_installed_onnxruntime():
        backend = ReID(weights=Path(path), device="cpu", half=False).model
    feats = []
    for image_path, _, _ in items:
        bgr = cv2.imread(image_path, cv2.IMREAD_COLOR)
        if bgr is None:
            raise SystemExit(f"error: {image_path}: not a readable image")
        box = np.array([[0, 0, bgr.shape[1], bgr.shape[0]]], dtype=np.float32)
        feats.append(np.asarray(backend.get_features(box, bgr), dtype=np.float32))
    out = torch.nn.functional.normalize(torch.from_numpy(np.concatenate(feats)), dim=1)
    return out.numpy()


def rank(q_feats, g_feats, query, gallery) -> dict:
    from cdnet_reid.evaluation.rank import evaluate_rank_features

    cmc, aps, _ = evaluate_rank_features(q_feats, g_feats, [p for _, p, _ in query], [p for _, p, _ in gallery],
                                         [c for _, _, c in query], [c for _, _, c in gallery])
    return {"Rank-1": 100 * float(cmc[0]), "mAP": 100 * float(np.mean(aps))}


def ours(cfg, model, resize: str) -> dict:
    from cdnet_reid.engine import DefaultTrainer

    cfg = cfg.clone()
    cfg.defrost()
    cfg.INPUT.RESIZE_BACKEND = resize
    cfg.freeze()
    res = DefaultTrainer.test(cfg, model)[cfg.DATASETS.TESTS[0]]
    return {"Rank-1": res["Rank-1"], "mAP": res["mAP"]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", required=True, help="the checkpoint the files were exported from")
    p.add_argument("files", nargs="+", help="files written by `cdnet-reid export --for boxmot`")
    args = p.parse_args(argv)
    from cdnet_reid.data import build_dataset
    from cdnet_reid.modeling import load_model
    from cdnet_reid.utils.env import cpu_name

    for f in args.files:
        if not Path(f).exists():
            p.error(f"{f}: no such file")
    model, cfg = load_model(args.weights, device="cpu")
    name = cfg.DATASETS.TESTS[0]
    data = build_dataset(cfg, name)
    rows = []
    for resize in ("pil", "cv2"):
        t0 = time.perf_counter()
        r = ours(cfg, model, resize)
        rows.append([f"ours, PyTorch fp32, {resize} resize", r["mAP"], r["Rank-1"], time.perf_counter() - t0])
    for f in args.files:
        t0 = time.perf_counter()
        r = rank(boxmot_features(f, data.query), boxmot_features(f, data.gallery), data.query, data.gallery)
        rows.append([f"boxmot backend: {Path(f).name}", r["mAP"], r["Rank-1"], time.perf_counter() - t0])
    print(f"{name}: {len(data.query)} queries, {len(data.gallery)} gallery images; checkpoint {args.weights}; "
          f"CPU: {cpu_name()}, torch {torch.__version__}")
    print(tabulate(rows, headers=["path", "mAP (%)", "Rank-1 (%)", "seconds"], tablefmt="pipe", floatfmt=".2f"))


if __name__ == "__main__":
    main()
