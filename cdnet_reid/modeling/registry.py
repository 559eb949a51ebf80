"""Model registries and the builders that look names up in them.

* ``BACKBONE_REGISTRY``: classes ``Cls(**Cls.from_config(cfg))`` returning a :class:`Backbone`.
* ``HEAD_REGISTRY``: heads/necks ``Cls(**Cls.from_config(cfg, input_shape))``.
* ``META_ARCH_REGISTRY``: whole models ``Cls(**Cls.from_config(cfg))``.

An unknown name raises a ``KeyError`` that lists the registered names.
"""

import inspect
from typing import Dict, Optional

from ..utils.registry import Registry, lookup

BACKBONE_REGISTRY = Registry("BACKBONE")
BACKBONE_REGISTRY.__doc__ = "Backbones: ``forward(images) -> Dict[str, Tensor]``, ``output_shape()``."
HEAD_REGISTRY = Registry("HEADS")
HEAD_REGISTRY.__doc__ = "Heads/necks: ``forward(features: Dict[str, Tensor], targets=None)``."
META_ARCH_REGISTRY = Registry("META_ARCH")
META_ARCH_REGISTRY.__doc__ = "Meta-architectures: the whole model (normalisation, backbone, head, losses)."


def from_config_kwargs(cls, cfg, *args, stored: Optional[dict] = None) -> dict:
    """``cls.from_config(cfg, *args)``, passing ``stored`` (a checkpoint's entries, see
    :meth:`Backbone.checkpoint_extra`) when given and when ``from_config`` accepts it."""
    if stored is not None and "stored" in inspect.signature(cls.from_config).parameters:
        return cls.from_config(cfg, *args, stored=stored)
    return cls.from_config(cfg, *args)


def build_backbone(cfg, stored: Optional[dict] = None):
    """The backbone named by ``cfg.MODEL.BACKBONE.NAME`` (rebuilt from ``stored``, when given)."""
    cls = lookup(BACKBONE_REGISTRY, cfg.MODEL.BACKBONE.NAME, "MODEL.BACKBONE.NAME")
    return cls(**from_config_kwargs(cls, cfg, stored=stored))


def build_head(cfg, input_shape: Dict):
    """The head named by ``cfg.MODEL.HEADS.NAME`` for backbone outputs of ``input_shape``."""
    cls = lookup(HEAD_REGISTRY, cfg.MODEL.HEADS.NAME, "MODEL.HEADS.NAME")
    return cls(**cls.from_config(cfg, input_shape))
