"""torchvision's MobileNetV2 (randomly initialised) as a registered backbone."""

from collections import OrderedDict

from torch import Tensor, nn
from torchvision.models import mobilenet_v2

from cdnet_reid.modeling import BACKBONE_REGISTRY, Backbone, ShapeSpec


@BACKBONE_REGISTRY.register()
class MobileNetV2(Backbone):
    """MobileNetV2 feature extractor (no classifier): one map of ``last_channel`` × H/32 × W/32."""

    def __init__(self, *, width_mult: float = 1.0, last_channel: int = 1280):
        super().__init__()
        net = mobilenet_v2(weights=None, width_mult=width_mult)
        features = list(net.features.children())
        if last_channel != net.last_channel:
            # Replace the final 1x1 conv-BN-ReLU6 to change the embedding width.
            in_ch = features[-1][0].in_channels
            features[-1] = nn.Sequential(nn.Conv2d(in_ch, last_channel, 1, bias=False),
                                         nn.BatchNorm2d(last_channel), nn.ReLU6(inplace=True))
        self.features = nn.Sequential(*features)
        self.out_channels = last_channel

    @classmethod
    def from_config(cls, cfg, **context) -> dict:
        return dict(width_mult=cfg.MODEL.BACKBONE.WIDTH_MULT,
                    last_channel=cfg.MODEL.BACKBONE.MOBILENETV2.LAST_CHANNEL)

    def forward(self, x: Tensor):
        return OrderedDict(features=self.features(x))

    def output_shape(self):
        return OrderedDict(features=ShapeSpec(channels=self.out_channels, stride=32))
