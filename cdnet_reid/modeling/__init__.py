"""Models: registries, ``build_model`` and the built-in components.

Importing this package registers the built-in backbones, heads and meta-architectures.
"""

import logging

import torch

from . import backbones, cdnet, heads, meta_arch  # noqa: F401  (registration side effects)
from .backbones import Backbone, ShapeSpec
from .registry import (BACKBONE_REGISTRY, HEAD_REGISTRY, META_ARCH_REGISTRY, build_backbone,
                       build_head, lookup)

logger = logging.getLogger(__name__)


def build_model(cfg) -> torch.nn.Module:
    """The model of ``cfg.MODEL.META_ARCHITECTURE`` on ``cfg.MODEL.DEVICE``; weights not loaded."""
    from ..utils.env import resolve_device

    cls = lookup(META_ARCH_REGISTRY, cfg.MODEL.META_ARCHITECTURE, "MODEL.META_ARCHITECTURE")
    model = cls(**cls.from_config(cfg))
    return model.to(resolve_device(cfg.MODEL.DEVICE))


__all__ = ["BACKBONE_REGISTRY", "HEAD_REGISTRY", "META_ARCH_REGISTRY", "Backbone", "ShapeSpec",
           "build_backbone", "build_head", "build_model"]
