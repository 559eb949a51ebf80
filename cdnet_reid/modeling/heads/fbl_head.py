"""The paper's re-ID neck (CDNet, arXiv 2104.04163, Sec. 3.4): FBLNeck. Its global-only ImageNet
variant is ``BLNeck``, registered also as ``GlobalNeck``."""

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..registry import HEAD_REGISTRY
from ..space.ops import init_weights
from .bl_head import fc_block


@HEAD_REGISTRY.register()
class FBLNeck(nn.Module):
    """Fine-grained partition + BaLance neck.

    * global: GAP of the last map (C_g = 512) -> global feature;
    * local: 1×1 conv (``part_dim`` = 128, no BN/ReLU) on the second-to-last map, cut along the
      height into ``num_parts`` = 2 strips, each GAP-ed -> local feature (256);
    * dropout (one module, independent masks) on both; per branch FC block -> classifier.

    Training: ``[(global_logits, global_feat), (local_logits, local_feat)]`` (features before the
    FC blocks: the triplet loss sees them, CE sees the logits). Eval, re-ID: ``cat(global, local)``
    (768-d; the FC blocks are not run). Eval, ``classification``: ``global_logits + local_logits``.
    A global-only neck's FC block (``fcs``, e.g. of our ImageNet model) loads into ``global_fcs``
    (:attr:`state_dict_aliases`); the local branch has no ImageNet counterpart.
    """

    #: submodules whose classes are the training set's (see ``utils.checkpoint.StateDictRules``)
    classifier_names = ("global_classifier", "local_classifier")
    #: (checkpoint prefix, this module's prefix): another layout of the same computation
    state_dict_aliases = (("fcs.", "global_fcs."),)

    def __init__(self, *, local_channels: int, global_channels: int, num_classes: int,
                 fc_dims: Sequence[int] = (512,), dropout: float = 0.2, num_parts: int = 2,
                 part_dim: int = 128, classification: bool = False):
        super().__init__()
        if num_parts < 1:
            raise ValueError(f"MODEL.HEADS.NUM_PARTS must be >= 1, got {num_parts}")
        self.num_parts = num_parts
        self.classification = classification
        self.squeeze = nn.Conv2d(local_channels, part_dim, 1, bias=False)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.local_fcs = fc_block(part_dim * num_parts, fc_dims)
        self.global_fcs = fc_block(global_channels, fc_dims)
        local_out = fc_dims[-1] if len(fc_dims) else part_dim * num_parts
        global_out = fc_dims[-1] if len(fc_dims) else global_channels
        self.local_classifier = nn.Linear(local_out, num_classes) if num_classes > 0 else None
        self.global_classifier = nn.Linear(global_out, num_classes) if num_classes > 0 else None
        self.embedding_dim = global_channels + part_dim * num_parts
        init_weights(self)

    @classmethod
    def from_config(cls, cfg, *, input_shape: dict, **context) -> dict:
        shapes = list(input_shape.values())
        if len(shapes) < 2:
            raise ValueError("FBLNeck needs a backbone with at least two output maps")
        h = cfg.MODEL.HEADS
        return dict(local_channels=shapes[-2].channels, global_channels=shapes[-1].channels,
                    num_classes=h.NUM_CLASSES, fc_dims=list(h.FC_DIMS), dropout=h.DROPOUT,
                    num_parts=h.NUM_PARTS, part_dim=h.PART_DIM, classification=h.CLASSIFICATION)

    def forward(self, features: dict[str, Tensor]):
        maps = list(features.values())
        local_map, global_map = maps[-2], maps[-1]
        glob = self.drop(global_map.mean((2, 3)))
        parts = self.squeeze(local_map).chunk(self.num_parts, dim=2)  # along the height
        local = self.drop(torch.cat([p.mean((2, 3)) for p in parts], dim=1))
        if not self.training and not self.classification:
            return torch.cat([glob, local], dim=1)
        if self.global_classifier is None:
            raise RuntimeError("this FBLNeck has no classifiers (num_classes=0): it can only embed")
        g_logits = self.global_classifier(self.global_fcs(glob))
        l_logits = self.local_classifier(self.local_fcs(local))
        if self.training:
            return [(g_logits, glob), (l_logits, local)]
        return g_logits + l_logits
