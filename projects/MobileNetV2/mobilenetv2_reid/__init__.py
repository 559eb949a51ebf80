"""MobileNetV2 for re-ID, registered from outside the core using only the public API.

Importing this package registers the ``MobileNetV2`` backbone; a YAML selects it with
``MODEL.BACKBONE.NAME: MobileNetV2``.
"""

from .backbone import MobileNetV2
from .config import add_mobilenetv2_config

__all__ = ["MobileNetV2", "add_mobilenetv2_config"]
