"""Config keys of this project (added before any YAML is merged)."""

from cdnet_reid.config import CfgNode as CN


def add_mobilenetv2_config(cfg: CN) -> None:
    """Adds ``MODEL.BACKBONE.MOBILENETV2.LAST_CHANNEL`` (width of the final 1x1 conv)."""
    cfg.MODEL.BACKBONE.MOBILENETV2 = CN()
    # Channels of the last 1x1 convolution (torchvision's default is 1280).
    cfg.MODEL.BACKBONE.MOBILENETV2.LAST_CHANNEL = 1280
