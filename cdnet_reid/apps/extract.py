"""Embed a folder (or a list) of person crops of any size with a trained model.

    python tools/extract_features.py --config-file logs/run/config.yaml \\
        --input crops/ --output feats.npy MODEL.WEIGHTS logs/run/model_final.pth
    cdnet-reid extract ...                                 (the same, from an installed package)

Inputs (``--input``):
  * a folder: every image file below it (.jpg .jpeg .png .bmp .webp .tif .tiff, recursively,
    sorted by path);
  * a text file: one image path per line (blank lines and lines starting with # are skipped);
    a relative path is taken as written if it exists (relative to the current folder), else
    relative to the list file's folder.

Outputs (``--output``; its suffix says the format, any other suffix is refused):
  * ``feats.npy``: an (N, D) float32 array, row i = image i, plus ``feats.paths.txt`` with the
    N image paths in the same order, one per line (paths below an input folder are written
    relative to it);
  * ``feats.npz``: one file with the arrays ``feats`` (N, D) and ``paths`` (N);
  * ``feats.csv``: a header row ``path,f0,f1,...,f<D-1>``, then one row per image: its path and
    its D feature values.

Embeddings are those of ``cdnet_reid.engine.DefaultPredictor``: the test transform, flip
averaging with ``TEST.FLIP.ENABLED``, L2-normalised with ``TEST.FEAT_NORM`` (default), batches
of ``TEST.IMS_PER_BATCH`` read by ``DATALOADER.NUM_WORKERS`` loader processes. Images are read
as the evaluation reads them (16-bit grey PNGs keep their high byte).

Unreadable images (a file that fails to decode, or a listed file that is missing) follow
``DATALOADER.ON_BAD_IMAGE``: ``fail`` (default) stops with an error naming the file; ``skip``
leaves them out of the output (features and paths) and names them, e.g.

    python tools/extract_features.py --input crops/ --output feats.csv \\
        MODEL.WEIGHTS model.pth DATALOADER.ON_BAD_IMAGE skip

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
import csv
import os
import re
import sys
import time
from typing import Iterator, List, NamedTuple, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..data.common import ImageDataset
from ..data.datasets.layout import list_image_files
from ..engine.defaults import add_config_arguments, setup_tool_cfg
from ..engine.predictor import DefaultPredictor, OnnxPredictor

#: ``--output`` suffix -> what is written.
OUTPUT_FORMATS = {
    ".npy": "the N x D float32 features, and <stem>.paths.txt with the N paths",
    ".npz": "one file with the arrays feats (N x D) and paths (N)",
    ".csv": "a header path,f0,f1,..., then one row per image: its path and its D feature values",
}


def list_images(source: str):
    """``(paths to read, paths to record)`` of a folder or a list file (see the docstring)."""
    return list_image_files(source, what="--input")


# ------------------------------------------------------------------------------------ embedding
class Embeddings(NamedTuple):
    """What :func:`embed_files` returns.

    ``features``: K x D float32, row i the embedding of ``paths[kept[i]]``; ``kept``: the indices
    (into the input paths, ascending) of the images read; ``skipped``: the input paths that could
    not be read (``DATALOADER.ON_BAD_IMAGE=skip``; empty under ``fail``)."""
    features: np.ndarray
    kept: List[int]
    skipped: List[str]


def image_loader(predictor: DefaultPredictor, paths: Sequence[str], cfg) -> DataLoader:
    """The images of ``paths`` in order, in batches of ``predictor.batch_size``, read like the test
    loader reads them (:class:`~cdnet_reid.data.common.ImageDataset`, the predictor's test
    transform) with ``cfg.DATALOADER.NUM_WORKERS`` workers. By ``cfg.DATALOADER.ON_BAD_IMAGE`` an
    unreadable image raises an error naming it ("fail") or comes as a ``valid=False``
    placeholder ("skip")."""
    dataset = ImageDataset([(p, 0, 0) for p in paths], predictor.transform,
                           on_bad_image=cfg.DATALOADER.ON_BAD_IMAGE, replace="placeholder")
    return DataLoader(dataset, batch_size=predictor.batch_size, shuffle=False,
                      num_workers=int(cfg.DATALOADER.NUM_WORKERS))


def error_line(err: BaseException) -> str:
    """``err``'s message on one line. An error re-raised by a DataLoader worker carries the
    worker's traceback in its message: that error's own message (the traceback's last line) is
    returned, without its type name."""
    lines = [line for line in str(err).splitlines() if line.strip()]
    if len(lines) > 1 and "Original Traceback" in lines[1]:
        return re.sub(r"^[\w.]+: ", "", lines[-1].strip())
    return " ".join(line.strip() for line in lines)


def _batches(loader: DataLoader) -> Iterator[dict]:
    """The loader's batches; an unreadable image ("fail" policy) ends the run with a one-line
    error naming the file (:class:`SystemExit`), whichever process read it."""
    it = iter(loader)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except OSError as e:
            raise SystemExit(f"{error_line(e)} (DATALOADER.ON_BAD_IMAGE=fail; "
                             f"DATALOADER.ON_BAD_IMAGE skip leaves unreadable images out)") from None
        yield batch


def embed_files(predictor: DefaultPredictor, paths: Sequence[str], cfg=None, *,
                progress: bool = False) -> Embeddings:
    """The predictor's embeddings of the image files ``paths``, unreadable images handled by
    ``DATALOADER.ON_BAD_IMAGE`` of ``cfg`` (default: the predictor's config), see
    :func:`image_loader`: "fail" stops with a one-line error naming the file, "skip" leaves it
    out. ``DATALOADER.NUM_WORKERS`` processes read the images; ``progress`` draws a bar on
    stderr. Raises :class:`SystemExit` when no image at all can be read."""
    from tqdm import tqdm

    cfg = predictor.cfg if cfg is None else cfg
    parts: List[torch.Tensor] = []
    valid: List[bool] = []
    with tqdm(total=len(paths), unit="img", disable=not progress, file=sys.stderr,
              desc="extracting") as bar:
        for batch in _batches(image_loader(predictor, paths, cfg)):
            ok = batch["valid"]
            if ok.any():  # the placeholders of unreadable images are not embedded
                parts.append(predictor.embed(batch["images"][ok]))
            valid += ok.tolist()
            bar.update(len(ok))
    kept = [i for i, v in enumerate(valid) if v]
    skipped = [paths[i] for i, v in enumerate(valid) if not v]
    if not kept:
        raise SystemExit(f"none of the {len(paths)} images could be read: "
                         f"{skipped_summary(skipped)}")
    return Embeddings(torch.cat(parts).numpy().astype(np.float32), kept, skipped)


def skipped_summary(skipped: Sequence[str], limit: int = 5) -> str:
    """``"2 unreadable image(s) left out (DATALOADER.ON_BAD_IMAGE=skip): a.jpg, b.png"``, naming
    the first ``limit``."""
    names = ", ".join(skipped[:limit])
    if len(skipped) > limit:
        names += f" and {len(skipped) - limit} more"
    return f"{len(skipped)} unreadable image(s) left out (DATALOADER.ON_BAD_IMAGE=skip): {names}"


# --------------------------------------------------------------------------------------- output
def output_format(path: str) -> str:
    """The format (a key of :data:`OUTPUT_FORMATS`) of an ``--output`` name, by its suffix;
    :class:`ValueError` naming the accepted suffixes for any other name."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in OUTPUT_FORMATS:
        raise ValueError(f"--output {path}: give a name ending with {', '.join(OUTPUT_FORMATS)} "
                         f"(the suffix says the format written)")
    return suffix


def write_features(path: str, feats: np.ndarray, names: Sequence[str]) -> List[str]:
    """Write the N x D ``feats`` of the images ``names`` in the format of ``path``'s suffix
    (:data:`OUTPUT_FORMATS`); returns the files written."""
    fmt = output_format(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if fmt == ".npz":
        with open(path, "wb") as f:
            np.savez(f, feats=feats, paths=np.asarray(names))
        return [path]
    if fmt == ".csv":
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["path"] + [f"f{j}" for j in range(feats.shape[1])])
            for name, row in zip(names, feats):
                w.writerow([name] + [f"{v:.9g}" for v in row])  # 9 digits: float32 exactly
        return [path]
    with open(path, "wb") as f:
        np.save(f, feats)
    paths_file = os.path.splitext(path)[0] + ".paths.txt"
    with open(paths_file, "w", encoding="utf-8") as f:
        f.write("".join(n + "\n" for n in names))
    return [path, paths_file]


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None):
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help="folder of images, or a text file of paths")
    parser.add_argument("--output", required=True,
                        help="feats.npy (+ feats.paths.txt), feats.npz or feats.csv")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--onnx", default="", metavar="FILE",
                        help="run this exported .onnx (fp32 or int8) in onnxruntime instead of the "
                             "PyTorch model")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    try:
        output_format(args.output)  # before anything slow is built
    except ValueError as e:
        parser.error(str(e))
    cfg = setup_tool_cfg(args)

    try:
        paths, names = list_images(args.input)
    except FileNotFoundError as e:
        raise SystemExit(str(e)) from None
    if not paths:
        raise SystemExit(f"no images found in {args.input}")
    if args.onnx:
        predictor = OnnxPredictor(cfg if args.config_file else None, args.onnx)
    else:
        predictor = DefaultPredictor(cfg)
    start = time.perf_counter()
    feats, kept, skipped = embed_files(predictor, paths, cfg, progress=not args.no_progress)
    elapsed = time.perf_counter() - start
    written = write_features(args.output, feats, [names[i] for i in kept])
    if skipped:
        print(skipped_summary(skipped))
    print(f"{feats.shape[0]} images -> {feats.shape[1]}-d features in {elapsed:.1f}s "
          f"({feats.shape[0] / max(elapsed, 1e-9):.1f} images/s); wrote {' and '.join(written)}")


if __name__ == "__main__":
    main()
