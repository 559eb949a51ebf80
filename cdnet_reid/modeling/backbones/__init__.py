"""Backbones. Each module registers its classes in ``BACKBONE_REGISTRY`` when imported."""

from .base import Backbone, ShapeSpec

__all__ = ["Backbone", "ShapeSpec"]
