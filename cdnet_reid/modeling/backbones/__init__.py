"""Backbones: ``forward(images) -> OrderedDict[name, map]``. Each module registers its classes in
``BACKBONE_REGISTRY`` when imported."""

from .base import Backbone, ShapeSpec
from .cdnet import CDNet, CNet, SearchedNet, StagedNet, make_divisible
from .supernet import CDNetSupernet, CNetSupernet, Supernet

__all__ = ["Backbone", "CDNet", "CDNetSupernet", "CNet", "CNetSupernet", "SearchedNet", "ShapeSpec",
           "StagedNet", "Supernet", "make_divisible"]
