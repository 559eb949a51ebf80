"""``build_model``: the model a config describes (weights not loaded)."""


import torch

from ..utils.env import resolve_device
from ..utils.registry import build
from .registry import META_ARCH_REGISTRY


def build_model(cfg, stored: dict | None = None) -> torch.nn.Module:
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
