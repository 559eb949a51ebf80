"""Building blocks of CNet and CDNet (Sec. 3.1-3.2 of arXiv 2104.04163), shared by the final networks and
the search supernets. Every block takes plain integers; none reads the config.

Shapes are N×C×H×W. All convolutions are bias-free except the gate's.
"""

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def conv1x1_bn(c_in: int, c_out: int, relu: bool = True) -> nn.Sequential:
    """1×1 conv -> BN [-> ReLU]."""
    layers = [nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class LiteConv3x3(nn.Sequential):
    """OSNet's lite 3×3 unit, C -> C: 1×1 conv -> depthwise 3×3 conv -> BN -> ReLU (C² + 11C params)."""

    def __init__(self, channels: int):
        super().__init__(
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )


class ChannelGate(nn.Module):
    """SE-style gate: x * sigmoid(fc2(relu(fc1(gap(x))))), with 1×1 convs (with bias), C -> C/r -> C."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = channels // reduction
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        g = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(g))))


class CBlock(nn.Module):
    """Combined block: two parallel lite-3×3 stacks of different depth on a shared bottleneck.

    ``squeeze`` (1×1, C_in -> m = C_out/4) feeds branch ``conv1`` (k1//2 lite units) and branch
    ``conv2`` (k2//2 units), so a "kernel" k means a k×k receptive field. With ``adaptive_fusion``
    ONE gate (shared weights) rescales each branch before they are summed. ``restore`` (1×1, linear)
    maps back to C_out, a residual (through the linear 1×1 ``expand`` when C_in != C_out) is added,
    then ReLU. Stride 1: H and W are unchanged.
    """

    def __init__(self, c_in: int, c_out: int, k1: int, k2: int, *, adaptive_fusion: bool = True,
                 reduction: int = 4):
        super().__init__()
        if k1 < 3 or k2 < 3 or k1 % 2 == 0 or k2 % 2 == 0:
            raise ValueError(f"CBlock kernels must be odd and >= 3, got ({k1}, {k2})")
        mid = c_out // reduction
        self.squeeze = conv1x1_bn(c_in, mid)
        self.conv1 = nn.Sequential(*[LiteConv3x3(mid) for _ in range(k1 // 2)])
        self.conv2 = nn.Sequential(*[LiteConv3x3(mid) for _ in range(k2 // 2)])
        self.gate = ChannelGate(mid, reduction) if adaptive_fusion else None
        self.restore = conv1x1_bn(mid, c_out, relu=False)
        self.expand = conv1x1_bn(c_in, c_out, relu=False) if c_in != c_out else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        s = self.squeeze(x)
        b1, b2 = self.conv1(s), self.conv2(s)
        fused = self.gate(b1) + self.gate(b2) if self.gate is not None else b1 + b2
        shortcut = self.expand(x) if self.expand is not None else x
        return self.relu(self.restore(fused) + shortcut)


class CDBlock(nn.Module):
    """Combined-depth block: ``repeats`` CBlocks (k1, k2) in sequence, C_in -> C_out -> ... -> C_out."""

    def __init__(self, c_in: int, c_out: int, k1: int, k2: int, repeats: int, *,
                 adaptive_fusion: bool = True, reduction: int = 4):
        super().__init__()
        if repeats < 1:
            raise ValueError(f"CDBlock needs repeats >= 1, got {repeats}")
        self.blocks = nn.Sequential(*[
            CBlock(c_in if i == 0 else c_out, c_out, k1, k2, adaptive_fusion=adaptive_fusion,
                   reduction=reduction) for i in range(repeats)])

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(x)


def build_block(entry: Sequence[int], c_in: int, c_out: int, *, adaptive_fusion: bool = True) -> nn.Module:
    """The block of one genotype entry: ``(k1, k2)`` -> CBlock, ``(k1, k2, r)`` -> CDBlock."""
    if len(entry) == 2:
        return CBlock(c_in, c_out, entry[0], entry[1], adaptive_fusion=adaptive_fusion)
    k1, k2, r = entry
    return CDBlock(c_in, c_out, k1, k2, r, adaptive_fusion=adaptive_fusion)


class DownSample(nn.Sequential):
    """1×1 conv-BN-ReLU (C -> C) then 2×2 average pooling: halves H and W."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = conv1x1_bn(channels, channels)
        self.pool = nn.AvgPool2d(2, 2)


class Stem(nn.Sequential):
    """``"imagenet"``: 7×7/2 conv-BN-ReLU + 3×3/2 max-pool (stride 4);
    ``"cifar"``: 3×3/1 conv-BN-ReLU, no pooling (stride 1)."""

    STRIDES = {"imagenet": 4, "cifar": 1}

    def __init__(self, c_out: int, kind: str = "imagenet"):
        super().__init__()
        if kind == "imagenet":
            self.conv = nn.Sequential(nn.Conv2d(3, c_out, 7, 2, 3, bias=False), nn.BatchNorm2d(c_out),
                                      nn.ReLU(inplace=True))
            self.pool = nn.MaxPool2d(3, 2, 1)
        elif kind == "cifar":
            self.conv = nn.Sequential(nn.Conv2d(3, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out),
                                      nn.ReLU(inplace=True))
        else:
            raise ValueError(f"MODEL.BACKBONE.STEM must be 'imagenet' or 'cifar', got {kind!r}")
        self.stride = self.STRIDES[kind]


def init_weights(module: nn.Module) -> None:
    """The paper's initialisation: convs Kaiming-normal (fan-in, ReLU gain) with zero bias, BN
    weight 1 / bias 0, Linear N(0, 0.001²) with zero bias."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.001)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
