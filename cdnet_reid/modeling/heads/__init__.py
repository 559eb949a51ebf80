"""Heads: turn backbone maps into embeddings (eval) or (logits, feature) pairs (training), chosen
by ``MODEL.HEADS.NAME`` in ``HEAD_REGISTRY``. ``BLNeck`` and ``FBLNeck`` keep the paper's names
("neck" is the paper's word for these heads); their files say what they are here: ``*_head.py``.
Each module registers its classes when imported."""

from .bl_head import BLNeck, fc_block, init_linear
from .fbl_head import FBLNeck
from .search_head import SearchHead

__all__ = ["BLNeck", "FBLNeck", "SearchHead", "fc_block", "init_linear"]
