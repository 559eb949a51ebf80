"""Model registries and the builders that look names up in them.

* ``BACKBONE_REGISTRY``: classes ``Cls(**Cls.from_config(cfg))`` returning a :class:`Backbone`.
* ``HEAD_REGISTRY``: heads/necks ``Cls(**Cls.from_config(cfg, input_shape))``.
* ``META_ARCH_REGISTRY``: whole models ``Cls(**Cls.from_config(cfg))``.

An unknown name raises a ``KeyError`` that lists the registered names.
"""

from typing import Dict

from fvcore.common.registry import Registry

BACKBONE_REGISTRY = Registry("BACKBONE")
BACKBONE_REGISTRY.__doc__ = "Backbones: ``forward(images) -> Dict[str, Tensor]``, ``output_shape()``."
HEAD_REGISTRY = Registry("HEADS")
HEAD_REGISTRY.__doc__ = "Heads/necks: ``forward(features: Dict[str, Tensor], targets=None)``."
META_ARCH_REGISTRY = Registry("META_ARCH")
META_ARCH_REGISTRY.__doc__ = "Meta-architectures: the whole model (normalisation, backbone, head, losses)."


def lookup(registry: Registry, name: str, key: str):
    """``registry.get(name)`` with an error naming the config key and the available names."""
    try:
        return registry.get(name)
    except KeyError:
        names = sorted(k for k, _ in registry)
        raise KeyError(f"{key}={name!r} is not registered in {registry._name}; available: {names}. "
                       "(Components from a project must be imported before the model is built.)") from None


def build_backbone(cfg):
    """The backbone named by ``cfg.MODEL.BACKBONE.NAME``."""
    cls = lookup(BACKBONE_REGISTRY, cfg.MODEL.BACKBONE.NAME, "MODEL.BACKBONE.NAME")
    return cls(**cls.from_config(cfg))


def build_head(cfg, input_shape: Dict):
    """The head named by ``cfg.MODEL.HEADS.NAME`` for backbone outputs of ``input_shape``."""
    cls = lookup(HEAD_REGISTRY, cfg.MODEL.HEADS.NAME, "MODEL.HEADS.NAME")
    return cls(**cls.from_config(cfg, input_shape))
