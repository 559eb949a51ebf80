"""Heads (necks): turn backbone maps into embeddings (eval) or (logits, feature) pairs (training)."""

from .bl_neck import BLNeck, fc_block, init_linear

__all__ = ["BLNeck", "fc_block", "init_linear"]
