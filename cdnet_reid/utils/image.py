"""Image helpers shared by the data pipeline and the pictures: one rule for turning any PIL image
into 8-bit RGB."""

import numpy as np
from PIL import Image

__all__ = ["to_rgb"]


def to_rgb(img: Image.Image) -> Image.Image:
    """``img`` as a new 8-bit RGB image.

    16-bit grey images (PIL modes ``I;16*`` and ``I``, e.g. from 16-bit PNGs) keep the high byte of
    each value (``value >> 8``); PIL's own conversion would clip every value above 255 to white.
    """
    if img.mode == "I" or img.mode.startswith("I;16"):
        high = np.clip(np.asarray(img), 0, 65535).astype(np.uint16) >> 8
        img = Image.fromarray(high.astype(np.uint8))  # 2-D uint8: mode "L"
    return img.convert("RGB")
