"""Models: registries, ``build_model`` and the built-in components.

Importing this package registers the built-in backbones, heads and meta-architectures.
"""

import logging
from typing import Optional

import torch

from . import backbones, heads, meta_arch  # noqa: F401  (registration side effects)
from .backbones import Backbone, ShapeSpec
from .norm import GlobalBatchNorm, convert_sync_batchnorm
from ..utils.env import resolve_device
from .registry import (BACKBONE_REGISTRY, HEAD_REGISTRY, META_ARCH_REGISTRY, NUM_CLASSES_KEY, build_backbone,
                       build_head, num_classes, set_num_classes, with_num_classes)
from ..utils.registry import build

logger = logging.getLogger(__name__)


def build_model(cfg, stored: Optional[dict] = None) -> torch.nn.Module:
    """The model of ``cfg.MODEL.META_ARCHITECTURE`` on ``cfg.MODEL.DEVICE`` (channels-last weights
    with ``MODEL.CHANNELS_LAST``); weights not loaded.

    ``stored``: the entries of a checkpoint the model is rebuilt for, so that components whose
    structure the checkpoint records (``checkpoint_extra()``) are built as they were trained."""
    model = build(META_ARCH_REGISTRY, cfg.MODEL.META_ARCHITECTURE, "MODEL.META_ARCHITECTURE", cfg,
                  stored=stored).to(resolve_device(cfg.MODEL.DEVICE))
    if cfg.MODEL.CHANNELS_LAST:
        # NHWC weights are enough: a convolution with NHWC weights writes NHWC outputs
        model = model.to(memory_format=torch.channels_last)
    return model


__all__ = ["GlobalBatchNorm", "convert_sync_batchnorm", "BACKBONE_REGISTRY", "HEAD_REGISTRY",
           "META_ARCH_REGISTRY", "Backbone", "ShapeSpec",
           "NUM_CLASSES_KEY", "build_backbone", "build_head", "build_model", "num_classes", "set_num_classes",
           "with_num_classes"]
