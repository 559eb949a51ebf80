"""Model registries and their builders, all by the one protocol of ``utils.registry.build``
(``from_config(cls, cfg, **context) -> dict``):

* ``BACKBONE_REGISTRY``: a :class:`Backbone`; context ``stored`` (the entries of the checkpoint the
  model is rebuilt for, or None: see :meth:`Backbone.checkpoint_extra`).
* ``HEAD_REGISTRY``: heads (the re-ID necks among them); context ``input_shape`` (the backbone's
  ``output_shape()``).
* ``META_ARCH_REGISTRY``: whole models; context ``stored``.

An unknown name raises a ``KeyError`` that lists the registered names.
"""

import logging

from ..utils.registry import Registry, build

logger = logging.getLogger(__name__)

BACKBONE_REGISTRY = Registry("BACKBONE")
BACKBONE_REGISTRY.__doc__ = "Backbones: ``forward(images) -> Dict[str, Tensor]``, ``output_shape()``."
HEAD_REGISTRY = Registry("HEADS")
HEAD_REGISTRY.__doc__ = "Heads/necks: ``forward(features: Dict[str, Tensor], targets=None)``."
META_ARCH_REGISTRY = Registry("META_ARCH")
META_ARCH_REGISTRY.__doc__ = "Meta-architectures: the whole model (normalisation, backbone, head, losses)."


#: The config key of the number of classes the heads' classifiers predict (0: from the data).
NUM_CLASSES_KEY = "MODEL.HEADS.NUM_CLASSES"


def num_classes(cfg) -> int:
    """The number of classes ``cfg`` builds the classifiers for (:data:`NUM_CLASSES_KEY`)."""
    return int(cfg.MODEL.HEADS.NUM_CLASSES)


def set_num_classes(cfg, value: int) -> None:
    """Set :data:`NUM_CLASSES_KEY` of a defrosted ``cfg``."""
    cfg.MODEL.HEADS.NUM_CLASSES = int(value)


def with_num_classes(cfg, found: int):
    """``cfg`` (frozen) with the number of classes ``found`` in the training set: unchanged when
    it says so already, filled in when it says 0, overridden with a warning otherwise."""
    asked = num_classes(cfg)
    if asked == found:
        return cfg
    cfg = cfg.clone()
    cfg.defrost()
    if asked != 0:
        logger.warning("%s=%d but the training set has %d identities; using %d", NUM_CLASSES_KEY,
                       asked, found, found)
    set_num_classes(cfg, found)
    cfg.freeze()
    return cfg


def build_backbone(cfg, stored: dict | None = None):
    """The backbone named by ``cfg.MODEL.BACKBONE.NAME`` (rebuilt from ``stored``, when given)."""
    return build(BACKBONE_REGISTRY, cfg.MODEL.BACKBONE.NAME, "MODEL.BACKBONE.NAME", cfg, stored=stored)


def build_head(cfg, input_shape: dict):
    """The head named by ``cfg.MODEL.HEADS.NAME`` for backbone outputs of ``input_shape``."""
    return build(HEAD_REGISTRY, cfg.MODEL.HEADS.NAME, "MODEL.HEADS.NAME", cfg, input_shape=input_shape)
