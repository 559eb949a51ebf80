"""Heads (necks): turn backbone maps into embeddings (eval) or (logits, feature) pairs (training).
Each module registers its classes in ``HEAD_REGISTRY`` when imported."""

from .bl_neck import BLNeck, fc_block, init_linear
from .fbl_neck import FBLNeck
from .search_head import SearchHead

__all__ = ["BLNeck", "FBLNeck", "SearchHead", "fc_block", "init_linear"]
