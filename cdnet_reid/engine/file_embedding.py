"""Embed image files with a predictor, read as the test loader reads them: the loop behind
``cdnet-reid extract`` and ``cdnet-reid search-gallery`` (and any script that embeds crops)."""

import re
import sys
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..data.common import ImageDataset
from ..utils.file_io import InputFileError

__all__ = ["Embeddings", "embed_files", "error_line", "image_loader", "skipped_summary"]


class Embeddings(NamedTuple):
    """What :func:`embed_files` returns.

    ``features``: K x D float32, row i the embedding of ``paths[kept[i]]``; ``kept``: the indices
    (into the input paths, ascending) of the images read; ``skipped``: the input paths that could
    not be read (``DATALOADER.ON_BAD_IMAGE=skip``; empty under ``fail``)."""
    features: np.ndarray
    kept: list[int]
    skipped: list[str]


def image_loader(predictor, paths: Sequence[str], cfg) -> DataLoader:
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
    """The loader's batches; an unreadable image ("fail" policy) raises :class:`InputFileError`
    with one line naming the file, whichever process read it."""
    it = iter(loader)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except OSError as e:
            raise InputFileError(f"{error_line(e)} (DATALOADER.ON_BAD_IMAGE=fail; "
                                 f"DATALOADER.ON_BAD_IMAGE skip leaves unreadable images out)") from None
        yield batch


def embed_files(predictor, paths: Sequence[str], cfg=None, *, progress: bool = False) -> Embeddings:
    """The predictor's embeddings of the image files ``paths``, unreadable images handled by
    ``DATALOADER.ON_BAD_IMAGE`` of ``cfg`` (default: the predictor's config), see
    :func:`image_loader`: "fail" raises :class:`InputFileError` naming the file, "skip" leaves
    it out. ``DATALOADER.NUM_WORKERS`` processes read the images; ``progress`` draws a bar on
    stderr. Raises :class:`InputFileError` when no image at all can be read."""
    from tqdm import tqdm

    cfg = predictor.cfg if cfg is None else cfg
    parts: list[torch.Tensor] = []
    valid: list[bool] = []
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
        raise InputFileError(f"none of the {len(paths)} images could be read: {skipped_summary(skipped)}")
    return Embeddings(torch.cat(parts).numpy().astype(np.float32), kept, skipped)


def skipped_summary(skipped: Sequence[str], limit: int = 5) -> str:
    """``"2 unreadable image(s) left out (DATALOADER.ON_BAD_IMAGE=skip): a.jpg, b.png"``, naming
    the first ``limit``."""
    names = ", ".join(skipped[:limit])
    if len(skipped) > limit:
        names += f" and {len(skipped) - limit} more"
    return f"{len(skipped)} unreadable image(s) left out (DATALOADER.ON_BAD_IMAGE=skip): {names}"
