"""INPUT.RESIZE_BACKEND: the exact train/test resize with PIL (antialiased) or OpenCV (linear)."""

import cv2
import numpy as np
import pytest
from PIL import Image

from cdnet_reid.config import get_cfg
from cdnet_reid.data.transforms import build_transforms


def _image(seed=0):
    # a high-frequency 200 x 90 crop: downscaling to 64 x 32 is where the two resizes differ
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (200, 90, 3), dtype=np.uint8)


def _cfg(backend):
    cfg = get_cfg()
    cfg.INPUT.SIZE_TEST = [64, 32]
    cfg.INPUT.SIZE_TRAIN = [64, 32]
    cfg.INPUT.RESIZE_BACKEND = backend
    return cfg


def test_cv2_backend_is_opencv_linear_and_pil_is_not():
    arr = _image()
    cv2_out = build_transforms(_cfg("cv2"), is_train=False)(Image.fromarray(arr))
    expected = cv2.resize(arr, (32, 64), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)
    assert cv2_out.shape == (3, 64, 32)
    assert np.array_equal(cv2_out.numpy(), expected)
    pil_out = build_transforms(_cfg("pil"), is_train=False)(Image.fromarray(arr))
    assert pil_out.shape == (3, 64, 32)
    # antialiasing averages the noise away: far smaller spread than OpenCV's point samples
    assert pil_out.float().std() < 0.7 * cv2_out.float().std()


def test_cv2_backend_in_the_training_resize():
    cfg = _cfg("cv2")
    cfg.INPUT.FLIP.ENABLED = False
    cfg.INPUT.PADDING.ENABLED = False
    arr = _image(1)
    out = build_transforms(cfg, is_train=True)(Image.fromarray(arr))
    assert np.array_equal(out.numpy(), cv2.resize(arr, (32, 64), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1))


def test_unknown_backend_is_an_error_naming_the_key():
    with pytest.raises(ValueError, match="INPUT.RESIZE_BACKEND"):
        build_transforms(_cfg("bicubic"), is_train=False)
