"""Models: registries, ``build_model``, ``load_model`` (a trained model from its checkpoint) and
the built-in components.

Importing this package registers the built-in backbones, heads and meta-architectures.
"""

from . import backbones, heads, meta_arch  # noqa: F401  (registration side effects)
from .backbones import Backbone, ShapeSpec
from .build import build_model
from .load import ModelConfigMismatchError, inference_config, load_model, resolve_model_config
from .norm import GlobalBatchNorm, convert_sync_batchnorm
from .registry import (
                       BACKBONE_REGISTRY,
                       HEAD_REGISTRY,
                       META_ARCH_REGISTRY,
                       NUM_CLASSES_KEY,
                       build_backbone,
                       build_head,
                       num_classes,
                       set_num_classes,
                       with_num_classes,
)

__all__ = ["ModelConfigMismatchError", "inference_config", "load_model", "resolve_model_config",
           "GlobalBatchNorm", "convert_sync_batchnorm", "BACKBONE_REGISTRY", "HEAD_REGISTRY",
           "META_ARCH_REGISTRY", "Backbone", "ShapeSpec",
           "NUM_CLASSES_KEY", "build_backbone", "build_head", "build_model", "num_classes", "set_num_classes",
           "with_num_classes"]
