"""``DefaultPredictor``: embed person crops with a trained model (feature extraction)."""

import logging
import os
from typing import Iterable, Iterator, List, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..data.common import load_image
from ..data.transforms import build_transforms
from ..evaluation.evaluator import embed, inference_context

logger = logging.getLogger(__name__)

__all__ = ["DefaultPredictor", "ImageLike"]

ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray, torch.Tensor]


class DefaultPredictor:
    """A trained re-ID model behind a simple call: images in, L2-normalised embeddings out.

    * the model is built from ``cfg`` and loads ``MODEL.WEIGHTS`` exactly like
      ``DefaultTrainer.build_model_for_eval`` (weights only; the classifier size comes from the
      checkpoint), in eval mode on ``MODEL.DEVICE``. An empty ``MODEL.WEIGHTS`` gives a randomly
      initialised model (with a warning);
    * every image is converted to RGB and resized by the test transform (``INPUT.SIZE_TEST``),
      so crops of any size can be mixed;
    * images run in batches of ``TEST.IMS_PER_BATCH``; with ``TEST.FLIP.ENABLED`` the embeddings
      of each image and of its mirror are averaged; with ``TEST.FEAT_NORM`` (default) the result
      is L2-normalised -- the same embedding the evaluator ranks.

    Example::

        predictor = DefaultPredictor(cfg)
        feats = predictor(["a.jpg", pil_image, hwc_uint8_array])   # (3, D) float32 CPU tensor

    Accepted images: file paths, PIL images, numpy ``HxWx3`` (RGB), ``HxWx4`` (alpha dropped) or
    ``HxW`` uint8 arrays, and ``3xHxW`` uint8 tensors. To use a faster or exported model,
    subclass and override :meth:`build_model`.
    """

    def __init__(self, cfg):
        self.cfg = cfg.clone()
        self.model = self.build_model(self.cfg)
        self.model.eval()
        self.transform = build_transforms(self.cfg, is_train=False)
        self.batch_size = max(1, int(self.cfg.TEST.IMS_PER_BATCH))
        self.flip = bool(self.cfg.TEST.FLIP.ENABLED)
        self.feat_norm = bool(self.cfg.TEST.FEAT_NORM)

    @classmethod
    def build_model(cls, cfg) -> nn.Module:
        from .trainer import DefaultTrainer

        if cfg.MODEL.WEIGHTS:
            return DefaultTrainer.build_model_for_eval(cfg)
        logger.warning("MODEL.WEIGHTS is empty: the predictor uses a randomly initialised model")
        return DefaultTrainer.build_model(cfg)

    # ------------------------------------------------------------------ steps
    def preprocess(self, image: ImageLike) -> torch.Tensor:
        """One image -> the ``3 x H x W`` uint8 tensor of the test transform."""
        return self.transform(to_pil_rgb(image))

    @torch.no_grad()
    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        """A preprocessed ``N x 3 x H x W`` batch -> ``N x D`` float32 CPU embeddings."""
        with inference_context(self.model):
            out = embed(self.model, batch, self.flip).float()
        if self.feat_norm:
            out = F.normalize(out, dim=1)
        return out.cpu()

    def iter_batches(self, images: Iterable[ImageLike]) -> Iterator[torch.Tensor]:
        """Embeddings of ``images`` one batch at a time (images are read lazily)."""
        batch: List[torch.Tensor] = []
        for img in images:
            batch.append(self.preprocess(img))
            if len(batch) == self.batch_size:
                yield self.embed(torch.stack(batch))
                batch = []
        if batch:
            yield self.embed(torch.stack(batch))

    def __call__(self, images: Union[ImageLike, Sequence[ImageLike]]) -> torch.Tensor:
        """Embeddings (``N x D`` float32, CPU) of a list of images, or ``1 x D`` for one image."""
        if _is_single_image(images):
            images = [images]
        parts = list(self.iter_batches(images))
        return torch.cat(parts) if parts else torch.zeros(0, 0)


def _is_single_image(x) -> bool:
    if isinstance(x, (str, os.PathLike, Image.Image)):
        return True
    return isinstance(x, (np.ndarray, torch.Tensor)) and x.ndim in (2, 3) and x.dtype in (
        np.uint8, torch.uint8)


def to_pil_rgb(image: ImageLike) -> Image.Image:
    """A path, PIL image, HWC/HW uint8 array or CHW uint8 tensor as an RGB PIL image, read by the
    data pipeline's ``load_image`` (what the test loader feeds the test transform, so the
    predictor reproduces evaluation exactly); alpha channels are dropped."""
    if isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] not in (1, 3):
            raise TypeError(f"tensor images must be 3 x H x W (or 1 x H x W) uint8, got "
                            f"{image.dtype} {tuple(image.shape)}")
        image = image.permute(1, 2, 0).cpu().numpy()
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise TypeError(f"array images must be uint8 (0-255 RGB), got {image.dtype}")
        if image.ndim == 3 and image.shape[2] in (1, 4):
            image = image[:, :, 0] if image.shape[2] == 1 else image[:, :, :3]
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            raise ValueError(f"array images must be H x W x 3 RGB, got shape {image.shape}")
        image = np.ascontiguousarray(image)
    elif not isinstance(image, (str, os.PathLike, Image.Image)):
        raise TypeError(f"unsupported image type {type(image).__name__}: pass a path, a PIL image, "
                        f"a numpy uint8 array or a uint8 tensor")
    return load_image(image)
