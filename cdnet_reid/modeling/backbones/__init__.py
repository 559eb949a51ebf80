"""Backbones: ``forward(images) -> OrderedDict[name, map]``. Each module registers its classes in
``BACKBONE_REGISTRY`` when imported. (The search supernets, CDNetSupernet and CNetSupernet, are
registered by ``cdnet_reid.search``.)"""

from .base import Backbone, ShapeSpec
from .cdnet import CDNet, CNet, SearchedNet, StagedNet, make_divisible

__all__ = ["Backbone", "CDNet", "CNet", "SearchedNet", "ShapeSpec", "StagedNet", "make_divisible"]
