#!/usr/bin/env python
"""Embed a folder (or a list) of person crops of any size with a trained model.

    python tools/extract_features.py --config-file logs/run/config.yaml \\
        --input crops/ --output feats.npy MODEL.WEIGHTS logs/run/model_final.pth

Inputs (``--input``):
  * a folder: every image file below it (.jpg .jpeg .png .bmp .webp .tif .tiff, recursively,
    sorted by path);
  * a text file: one image path per line (blank lines and lines starting with # are skipped);
    a relative path is taken as written if it exists (relative to the current folder), else
    relative to the list file's folder.

Outputs (``--output``):
  * ``feats.npy``: an (N, D) float32 array, row i = image i, plus ``feats.paths.txt`` with the
    N image paths in the same order, one per line (paths below an input folder are written
    relative to it);
  * or, if ``--output`` ends with ``.npz``: one file with the arrays ``feats`` and ``paths``.

Embeddings are those of ``cdnet_reid.engine.DefaultPredictor``: the test transform, flip
averaging with ``TEST.FLIP.ENABLED``, L2-normalised with ``TEST.FEAT_NORM`` (default), batches
of ``TEST.IMS_PER_BATCH`` read by ``DATALOADER.NUM_WORKERS`` loader processes.

Deployment without the PyTorch model: ``--onnx model.onnx`` runs a file written by
``tools/export_onnx.py`` (fp32, or int8 with ``--int8``) in onnxruntime instead
(``cdnet_reid.engine.predictor.OnnxPredictor``; flip averaging and L2 normalisation are those the
file was exported with, MODEL.WEIGHTS is not read; ``--config-file`` is optional then).

Backbones of projects: add ``--import-module projects/<Name>/<package>`` (repeatable; the
package's ``add_*_config`` functions are applied before the YAML), e.g.

    python tools/extract_features.py --import-module projects/MobileNetV2/mobilenetv2_reid \\
        --config-file projects/MobileNetV2/configs/synthetic.yml --input crops/ --output f.npy \\
        MODEL.WEIGHTS logs/synthetic/mobilenetv2/model_final.pth
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from cdnet_reid.engine import DefaultPredictor  # noqa: E402
from cdnet_reid.engine.defaults import add_config_arguments, setup_tool_cfg  # noqa: E402
from cdnet_reid.data.datasets.layout import list_image_files  # noqa: E402
from cdnet_reid.engine.predictor import OnnxPredictor  # noqa: E402


def list_images(source: str):
    """``(paths to read, paths to record)`` of a folder or a list file (see the docstring)."""
    return list_image_files(source, what="--input")


class _Images(Dataset):
    def __init__(self, paths, predictor):
        self.paths, self.predictor = paths, predictor

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return self.predictor.preprocess(self.paths[i])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help="folder of images, or a text file of paths")
    parser.add_argument("--output", required=True,
                        help="feats.npy (+ feats.paths.txt) or feats.npz")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--onnx", default="", metavar="FILE",
                        help="run this exported .onnx (fp32 or int8) in onnxruntime instead of the "
                             "PyTorch model")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    cfg = setup_tool_cfg(args)

    paths, names = list_images(args.input)
    if not paths:
        raise SystemExit(f"no images found in {args.input}")
    if args.onnx:
        predictor = OnnxPredictor(cfg if args.config_file else None, args.onnx)
    else:
        predictor = DefaultPredictor(cfg)
    workers = int(cfg.DATALOADER.NUM_WORKERS)
    loader = DataLoader(_Images(paths, predictor), batch_size=predictor.batch_size,
                        num_workers=workers, shuffle=False)
    from tqdm import tqdm

    start = time.perf_counter()
    parts = []
    with tqdm(total=len(paths), unit="img", disable=args.no_progress, file=sys.stderr,
              desc="extracting") as bar:
        for batch in loader:
            parts.append(predictor.embed(batch))
            bar.update(len(batch))
    feats = torch.cat(parts).numpy().astype(np.float32)
    elapsed = time.perf_counter() - start

    out = args.output
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    if out.endswith(".npz"):
        np.savez(out, feats=feats, paths=np.asarray(names))
        written = out
    else:
        if not out.endswith(".npy"):
            out += ".npy"
        np.save(out, feats)
        paths_file = out[:-len(".npy")] + ".paths.txt"
        with open(paths_file, "w", encoding="utf-8") as f:
            f.write("".join(n + "\n" for n in names))
        written = f"{out} and {paths_file}"
    print(f"{feats.shape[0]} images -> {feats.shape[1]}-d features in {elapsed:.1f}s "
          f"({feats.shape[0] / max(elapsed, 1e-9):.1f} images/s); wrote {written}")


if __name__ == "__main__":
    main()
