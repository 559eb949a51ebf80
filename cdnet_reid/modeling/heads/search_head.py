"""The head of the search network: a 1x1 conv on the last map in front of the BL neck."""


from torch import Tensor

from ..registry import HEAD_REGISTRY
from ..space.ops import conv1x1_bn, init_weights
from .bl_head import BLNeck


@HEAD_REGISTRY.register()
class SearchHead(BLNeck):
    """The search head of the original code: 1×1 conv-BN-ReLU on the last map, then the
    BL neck (GAP -> dropout -> FC block -> classifier). Training: ``[(logits, feat)]``; eval: the
    pooled feature."""

    def __init__(self, *, in_channels: int, **kwargs):
        super().__init__(in_channels=in_channels, **kwargs)
        self.conv1x1 = conv1x1_bn(in_channels, in_channels)
        init_weights(self.conv1x1)

    def forward(self, features: dict[str, Tensor]):
        last = list(features.values())[-1]
        return super().forward({"last": self.conv1x1(last)})
