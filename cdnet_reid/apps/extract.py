"""Embed a folder (or a list) of person crops of any size with a trained model.

    cdnet-reid extract --input crops/ --output feats.npy MODEL.WEIGHTS logs/run/model_final.pth
    python tools/extract_features.py ...                   (the same, from a checkout)

The model and its input (size, normalisation, flip, feature norm) come from the checkpoint;
``--config-file`` is optional (it must then agree with the checkpoint on them; a key given as a
``KEY VALUE`` override is used as given).

Inputs (``--input``):
  * a folder: every image file below it (.jpg .jpeg .png .bmp .webp .tif .tiff, recursively,
    sorted by path);
  * a text file: one image path per line (blank lines and lines starting with # are skipped);
    a relative path is taken as written if it exists (relative to the current folder), else
    relative to the list file's folder.

Outputs (``--output``; its suffix says the format, any other suffix is refused):
  * ``feats.npy``: an (N, D) float32 array, row i = image i, plus ``feats.paths.txt`` with the
    N image paths in the same order, one per line (paths below an input folder are written
    relative to it; a file name with a line break is refused: write .npz or .csv for those);
  * ``feats.npz``: one file with the arrays ``feats`` (N, D) and ``paths`` (N);
  * ``feats.csv``: a header row ``path,f0,f1,...,f<D-1>``, then one row per image: its path and
    its D feature values (a path starting with = + - @ is written with a leading ' so that a
    spreadsheet shows it as text instead of running it as a formula).

Embeddings are those of ``cdnet_reid.engine.DefaultPredictor``: the test transform, flip
averaging with ``TEST.FLIP.ENABLED``, L2-normalised with ``TEST.FEAT_NORM`` (default), batches
of ``TEST.IMS_PER_BATCH`` read by ``DATALOADER.NUM_WORKERS`` loader processes. Images are read
as the evaluation reads them (16-bit grey PNGs keep their high byte).

Unreadable images (a file that fails to decode, or a listed file that is missing) follow
``DATALOADER.ON_BAD_IMAGE``: ``fail`` (default) stops with an error naming the file; ``skip``
leaves them out of the output (features and paths) and names them, e.g.

    cdnet-reid extract --input crops/ --output feats.csv \\
        MODEL.WEIGHTS model.pth DATALOADER.ON_BAD_IMAGE skip

Deployment without the PyTorch model: ``--onnx model.onnx`` (``--runtime onnxruntime``) runs a
file written by ``cdnet-reid export`` (fp32, or int8 with ``--int8``) in onnxruntime instead
(``cdnet_reid.engine.predictor.OnnxPredictor``; input size, flip averaging and L2 normalisation
are those the file was exported with, MODEL.WEIGHTS is not read).

Backbones of projects: add ``--import-module projects/<Name>/<package>`` (repeatable; the
package's ``add_*_config`` functions are applied before the YAML), e.g.

    cdnet-reid extract --import-module projects/MobileNetV2/mobilenetv2_reid \\
        --input crops/ --output f.npy MODEL.WEIGHTS logs/synthetic/mobilenetv2/model_final.pth
"""

import csv
import os
import time
from collections.abc import Sequence

import numpy as np

from ..config import ConfigError
from ..data.datasets.layout import list_image_files
from ..engine.file_embedding import embed_files, skipped_summary
from ..engine.runtimes import create_predictor
from ..utils.file_io import InputFileError, atomic_write, spreadsheet_safe
from .args import add_config_arguments, add_output, add_runtime, model_options, setup_tool_cfg, tool_parser

#: ``--output`` suffix -> what is written.
OUTPUT_FORMATS = {
    ".npy": "the N x D float32 features, and <stem>.paths.txt with the N paths",
    ".npz": "one file with the arrays feats (N x D) and paths (N)",
    ".csv": "a header path,f0,f1,..., then one row per image: its path and its D feature values",
}


def list_images(source: str):
    """``(paths to read, paths to record)`` of a folder or a list file (see the docstring)."""
    return list_image_files(source, what="--input")


# --------------------------------------------------------------------------------------- output
def output_format(path: str) -> str:
    """The format (a key of :data:`OUTPUT_FORMATS`) of an ``--output`` name, by its suffix;
    :class:`ConfigError` naming the accepted suffixes for any other name."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in OUTPUT_FORMATS:
        raise ConfigError(f"--output {path}: give a name ending with {', '.join(OUTPUT_FORMATS)} "
                          f"(the suffix says the format written)")
    return suffix


def check_names(path: str, names: Sequence[str]) -> None:
    """A paths file has one path per line: a name with a line break would shift every later row
    against the features, so it is refused (:class:`InputFileError`) for ``.npy`` output."""
    if output_format(path) != ".npy":
        return
    bad = [n for n in names if "\n" in n or "\r" in n]
    if bad:
        raise InputFileError(f"{bad[0]!r}: a file name with a line break cannot be listed in "
                             f"{os.path.splitext(path)[0]}.paths.txt (one path per line); write .npz or "
                             f".csv output instead ({len(bad)} such name(s))")


def write_features(path: str, feats: np.ndarray, names: Sequence[str]) -> list[str]:
    """Write the N x D ``feats`` of the images ``names`` in the format of ``path``'s suffix
    (:data:`OUTPUT_FORMATS`), each file atomically; returns the files written."""
    fmt = output_format(path)
    check_names(path, names)
    if fmt == ".npz":
        with atomic_write(path, "wb") as f:
            np.savez(f, feats=feats, paths=np.asarray(names))
        return [path]
    if fmt == ".csv":
        with atomic_write(path, "w") as f:
            w = csv.writer(f)
            w.writerow(["path"] + [f"f{j}" for j in range(feats.shape[1])])
            for name, row in zip(names, feats):
                w.writerow([spreadsheet_safe(name)] + [f"{v:.9g}" for v in row])  # 9 digits: float32 exactly
        return [path]
    with atomic_write(path, "wb") as f:
        np.save(f, feats)
    paths_file = os.path.splitext(path)[0] + ".paths.txt"
    with atomic_write(paths_file, "w") as f:
        f.write("".join(n + "\n" for n in names))
    return [path, paths_file]


def main(argv: Sequence[str] | None = None, prog: str | None = None):
    parser = tool_parser(prog, __doc__)
    parser.add_argument("--input", required=True, help="folder of images, or a text file of paths")
    add_output(parser, "feats.npy (+ feats.paths.txt), feats.npz or feats.csv")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_runtime(parser)
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    output_format(args.output)  # before anything slow is built
    cfg = setup_tool_cfg(args)
    paths, names = list_images(args.input)
    if not paths:
        raise InputFileError(f"no images found in {args.input}")
    check_names(args.output, names)
    predictor = create_predictor(cfg, **model_options(args))
    start = time.perf_counter()
    feats, kept, skipped = embed_files(predictor, paths, cfg, progress=not args.no_progress)
    elapsed = time.perf_counter() - start
    written = write_features(args.output, feats, [names[i] for i in kept])
    if skipped:
        print(skipped_summary(skipped))
    print(f"{feats.shape[0]} images -> {feats.shape[1]}-d features in {elapsed:.1f}s "
          f"({feats.shape[0] / max(elapsed, 1e-9):.1f} images/s); wrote {' and '.join(written)}")
