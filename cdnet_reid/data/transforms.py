"""Image transforms (the re-ID, CIFAR-100 and ImageNet recipes) and reusable augmentations.

Following the fast-reid convention the model normalises pixels itself, so every pipeline here ends
with :class:`ToUint8Tensor` and produces a ``torch.uint8`` CHW tensor with 0-255 RGB values. The
erasing augmentations (:class:`RandomErasing`, :class:`Cutout`) therefore run on uint8 tensors and
fill with the pixel mean (``MODEL.PIXEL_MEAN`` rounded to integers), which is the value that
becomes zero after the model's normalisation.

All randomness comes from torch's RNG, which ``DataLoader`` seeds differently in every worker.
"""

import math
from collections.abc import Sequence

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image
from torchvision.transforms import InterpolationMode

from ..utils.image import to_rgb

__all__ = ["RESIZE_BACKENDS", "CV2Resize", "build_transforms", "build_resize", "ToUint8Tensor",
           "RandomErasing", "Cutout"]

#: Values of ``INPUT.RESIZE_BACKEND``.
RESIZE_BACKENDS = ("pil", "cv2")

# ImageNet mean in 0-255 units (the default of MODEL.PIXEL_MEAN).
_IMAGENET_MEAN = (123.675, 116.28, 103.53)

Fill = float | Sequence[float]


class ToUint8Tensor:
    """PIL image or HWC ``uint8`` array -> ``torch.uint8`` CHW tensor with 0-255 values.

    PIL images that are not RGB are converted to RGB (16-bit grey ones correctly, see
    :func:`~cdnet_reid.utils.image.to_rgb`); 2-D arrays become a single channel. A uint8
    tensor that is already CHW is returned unchanged. No scaling or normalisation happens.
    """

    def __call__(self, img) -> torch.Tensor:
        if isinstance(img, torch.Tensor):
            if img.dtype != torch.uint8 or img.dim() != 3:
                raise TypeError(f"ToUint8Tensor expects a uint8 CHW tensor, got "
                                f"{img.dtype} with shape {tuple(img.shape)}")
            return img
        if isinstance(img, Image.Image):
            arr = np.asarray(img if img.mode == "RGB" else to_rgb(img))
        elif isinstance(img, np.ndarray):
            arr = img
        else:
            raise TypeError(f"ToUint8Tensor expects a PIL image or numpy array, got {type(img)}")
        if arr.dtype != np.uint8:
            raise TypeError(f"ToUint8Tensor expects uint8 pixels, got {arr.dtype}")
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3:
            raise ValueError(f"ToUint8Tensor expects an HWC image, got shape {arr.shape}")
        # HWC -> CHW copy in numpy: torch's (multi-threaded) copy of such a small tensor costs ~100x
        # more when the cores are busy (main-process loading, DATALOADER.NUM_WORKERS 0). The copy
        # is always writeable, so torch.from_numpy does not warn about read-only arrays.
        return torch.from_numpy(arr.transpose(2, 0, 1).copy())

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class CV2Resize:
    """Resize a PIL image (or HWC uint8 array) to exactly ``size`` (H, W) with OpenCV's
    ``INTER_LINEAR`` (no antialiasing), as trackers such as boxmot resize detection crops; returns
    an RGB PIL image."""

    def __init__(self, size: Sequence[int]):
        self.size = (int(size[0]), int(size[1]))

    def __call__(self, img):
        import cv2

        arr = np.asarray(img if not isinstance(img, Image.Image) or img.mode == "RGB" else to_rgb(img))
        h, w = self.size
        return Image.fromarray(cv2.resize(arr, (w, h), interpolation=cv2.INTER_LINEAR))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


def build_resize(size: Sequence[int], backend: str = "pil"):
    """The exact resize to ``size`` (H, W) of ``INPUT.RESIZE_BACKEND`` ``backend``: ``"pil"``
    (bilinear with antialiasing) or ``"cv2"`` (:class:`CV2Resize`)."""
    size = tuple(int(s) for s in size)
    if backend == "pil":
        return T.Resize(size, interpolation=InterpolationMode.BILINEAR)
    if backend == "cv2":
        return CV2Resize(size)
    raise ValueError(f"INPUT.RESIZE_BACKEND must be one of {RESIZE_BACKENDS}, got {backend!r}")


def _fill_tensor(fill: Fill, img: torch.Tensor) -> torch.Tensor:
    """Per-channel fill value shaped ``(C, 1, 1)`` in the dtype of ``img``.

    For integer images the values are rounded and clamped to the dtype's range.
    """
    values = [float(fill)] if isinstance(fill, (int, float)) else [float(v) for v in fill]
    channels = img.shape[-3]
    if len(values) == 1:
        values = values * channels
    if len(values) != channels:
        raise ValueError(f"fill has {len(values)} values but the image has {channels} channels")
    t = torch.tensor(values, dtype=torch.float64)
    if not img.dtype.is_floating_point:
        info = torch.iinfo(img.dtype)
        t = t.round().clamp(info.min, info.max)
    return t.to(img.dtype).view(channels, 1, 1)


class RandomErasing:
    """Random erasing (Zhong et al., 2017) on a CHW tensor (uint8 or float).

    With probability ``p`` one rectangle is erased: up to ``max_attempts`` times, draw a target
    area uniformly in ``[sl, sh]`` times the image area and an aspect ratio (h / w) log-uniformly
    in ``[r1, 1 / r1]``; the box sides are the rounded ``sqrt(area * ratio)`` and
    ``sqrt(area / ratio)``. The first box that fits strictly inside the image and whose rounded
    area is still within ``[sl, sh]`` of the image area is placed uniformly at random and filled
    with ``fill`` per channel (for uint8 images the rounded mean, e.g. ``MODEL.PIXEL_MEAN``). If no
    attempt fits, the image is returned unchanged.

    (The original CDNet code forgot to multiply the fraction by the image area, so its boxes were
    always empty: it erased nothing.)

    Args:
        p: probability of erasing.
        fill: per-channel fill value (or one value for all channels), in the image's units.
        sl, sh: bounds of the erased area fraction.
        r1: lower bound of the aspect ratio; the upper bound is ``1 / r1``.
        max_attempts: tries to find a fitting box.
        inplace: modify the input tensor instead of a copy.
    """

    def __init__(self, p: float = 0.5, fill: Fill = _IMAGENET_MEAN, sl: float = 0.02,
                 sh: float = 0.4, r1: float = 0.3, max_attempts: int = 100,
                 inplace: bool = False):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomErasing probability must be in [0, 1], got {p}")
        if not 0.0 < sl <= sh <= 1.0:
            raise ValueError(f"RandomErasing needs 0 < sl <= sh <= 1, got sl={sl}, sh={sh}")
        if not 0.0 < r1 <= 1.0:
            raise ValueError(f"RandomErasing needs 0 < r1 <= 1, got {r1}")
        self.p = float(p)
        self.fill = fill
        self.sl, self.sh = float(sl), float(sh)
        self.r1 = float(r1)
        self.max_attempts = int(max_attempts)
        self.inplace = bool(inplace)

    def get_params(self, height: int, width: int):
        """``(top, left, h, w)`` of a box to erase, or None when no attempt fits."""
        area = height * width
        log_lo, log_hi = math.log(self.r1), math.log(1.0 / self.r1)
        for _ in range(self.max_attempts):
            target = area * torch.empty(1).uniform_(self.sl, self.sh).item()
            ratio = math.exp(torch.empty(1).uniform_(log_lo, log_hi).item())
            h = int(round(math.sqrt(target * ratio)))
            w = int(round(math.sqrt(target / ratio)))
            if not (0 < h < height and 0 < w < width):
                continue
            if not self.sl <= h * w / area <= self.sh:
                continue
            top = int(torch.randint(0, height - h + 1, (1,)).item())
            left = int(torch.randint(0, width - w + 1, (1,)).item())
            return top, left, h, w
        return None

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if not isinstance(img, torch.Tensor) or img.dim() < 3:
            raise TypeError("RandomErasing expects a CHW tensor (put it after ToUint8Tensor)")
        if self.p <= 0.0 or torch.rand(1).item() >= self.p:
            return img
        height, width = img.shape[-2], img.shape[-1]
        params = self.get_params(height, width)
        if params is None:
            return img
        top, left, h, w = params
        if not self.inplace:
            img = img.clone()
        img[..., top:top + h, left:left + w] = _fill_tensor(self.fill, img)
        return img

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(p={self.p}, fill={self.fill}, sl={self.sl}, sh={self.sh}, "
                f"r1={self.r1}, max_attempts={self.max_attempts})")


class Cutout:
    """Cutout (DeVries & Taylor, 2017) on a CHW tensor, applied to every image.

    A centre ``(y, x)`` is drawn uniformly over the pixels; the box
    ``[y - length // 2, y - length // 2 + length) x [x - length // 2, x - length // 2 + length)``
    clipped to the image is filled with ``fill`` per channel. The box is ``length`` x ``length``
    away from the borders and smaller near them. The original multiplied the normalised tensor by a
    zero mask, i.e. erased pixels equal the dataset mean; so ``fill`` should be the mean in the
    image's units (0-255 for uint8 tensors; e.g. CIFAR-100's (129.3, 124.1, 112.4)).

    Args:
        length: side of the (unclipped) square box, in pixels.
        fill: per-channel fill value; None = the ImageNet mean (123.675, 116.28, 103.53).
        inplace: modify the input tensor instead of a copy.
    """

    def __init__(self, length: int, fill: Fill | None = None, inplace: bool = False):
        if int(length) < 0:
            raise ValueError(f"Cutout length must be >= 0, got {length}")
        self.length = int(length)
        self.fill = _IMAGENET_MEAN if fill is None else fill
        self.inplace = bool(inplace)

    def get_params(self, height: int, width: int):
        """``(y1, y2, x1, x2)`` of the clipped box."""
        y = int(torch.randint(0, height, (1,)).item())
        x = int(torch.randint(0, width, (1,)).item())
        return self.box(y, x, height, width)

    def box(self, y: int, x: int, height: int, width: int):
        """The clipped box ``(y1, y2, x1, x2)`` for centre ``(y, x)``."""
        half = self.length // 2
        y1, x1 = y - half, x - half
        y2, x2 = y1 + self.length, x1 + self.length
        return (min(max(y1, 0), height), min(max(y2, 0), height),
                min(max(x1, 0), width), min(max(x2, 0), width))

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if not isinstance(img, torch.Tensor) or img.dim() < 3:
            raise TypeError("Cutout expects a CHW tensor (put it after ToUint8Tensor)")
        height, width = img.shape[-2], img.shape[-1]
        y1, y2, x1, x2 = self.get_params(height, width)
        if not self.inplace:
            img = img.clone()
        if y2 > y1 and x2 > x1:
            img[..., y1:y2, x1:x2] = _fill_tensor(self.fill, img)
        return img

    def __repr__(self) -> str:
        return f"{type(self).__name__}(length={self.length}, fill={self.fill})"


def build_transforms(cfg, is_train: bool = True) -> T.Compose:
    """The transform pipeline from ``cfg.INPUT``: the re-ID, CIFAR-100 and
    ImageNet recipes are configurations of it.

    Train: Resize to exactly ``INPUT.SIZE_TRAIN`` (H, W) with bilinear interpolation (or, with
    ``INPUT.RANDOM_RESIZED_CROP.ENABLED``, a RandomResizedCrop to SIZE_TRAIN) ->
    RandomHorizontalFlip(``INPUT.FLIP.PROB``) if ``INPUT.FLIP.ENABLED`` -> zero Pad
    (``INPUT.PADDING.SIZE``) + RandomCrop(SIZE_TRAIN) if ``INPUT.PADDING.ENABLED`` ->
    :class:`ToUint8Tensor` -> :class:`RandomErasing` (``INPUT.REA.PROB``, filled with
    ``MODEL.PIXEL_MEAN`` rounded to uint8) if ``INPUT.REA.ENABLED`` -> :class:`Cutout`
    (``INPUT.CUTOUT.LENGTH``, filled with the rounded ``MODEL.PIXEL_MEAN``) if ``INPUT.CUTOUT.ENABLED``.

    The exact resizes (train without RandomResizedCrop, test without RESIZE_SHORT_TEST) use
    ``INPUT.RESIZE_BACKEND``: ``"pil"`` (bilinear, antialiased) or ``"cv2"`` (OpenCV INTER_LINEAR).

    Test: Resize to ``INPUT.SIZE_TEST`` (or, with ``INPUT.RESIZE_SHORT_TEST`` > 0, resize the shorter
    side to it and centre-crop SIZE_TEST) -> :class:`ToUint8Tensor`.

    The result is a ``torch.uint8`` CHW tensor with 0-255 RGB values; the model normalises it, so
    the erasing fills (the pixel mean) become ~0, as in the original, which erased after normalising.
    """
    mean_fill = tuple(int(min(255, max(0, round(float(m))))) for m in cfg.MODEL.PIXEL_MEAN)
    backend = str(cfg.INPUT.RESIZE_BACKEND)
    if backend not in RESIZE_BACKENDS:
        raise ValueError(f"INPUT.RESIZE_BACKEND must be one of {RESIZE_BACKENDS}, got {backend!r}")
    if is_train:
        size = tuple(int(s) for s in cfg.INPUT.SIZE_TRAIN)
        rrc = cfg.INPUT.RANDOM_RESIZED_CROP
        if rrc.ENABLED:
            res = [T.RandomResizedCrop(size, scale=tuple(float(x) for x in rrc.SCALE),
                                       ratio=tuple(float(x) for x in rrc.RATIO),
                                       interpolation=InterpolationMode.BILINEAR)]
        else:
            res = [build_resize(size, backend)]
        if cfg.INPUT.FLIP.ENABLED:
            res.append(T.RandomHorizontalFlip(p=float(cfg.INPUT.FLIP.PROB)))
        if cfg.INPUT.PADDING.ENABLED:
            res.extend([T.Pad(int(cfg.INPUT.PADDING.SIZE), fill=0, padding_mode="constant"),
                        T.RandomCrop(size)])
        res.append(ToUint8Tensor())
        if cfg.INPUT.REA.ENABLED:
            res.append(RandomErasing(p=float(cfg.INPUT.REA.PROB), fill=mean_fill))
        if cfg.INPUT.CUTOUT.ENABLED:
            res.append(Cutout(int(cfg.INPUT.CUTOUT.LENGTH), fill=mean_fill))
    else:
        size = tuple(int(s) for s in cfg.INPUT.SIZE_TEST)
        short = int(cfg.INPUT.RESIZE_SHORT_TEST)
        if short > 0:
            res = [T.Resize(short, interpolation=InterpolationMode.BILINEAR), T.CenterCrop(size)]
        else:
            res = [build_resize(size, backend)]
        res.append(ToUint8Tensor())
    return T.Compose(res)
