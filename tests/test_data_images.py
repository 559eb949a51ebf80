"""Image decoding of the data pipeline: 16-bit grey images become correct 8-bit RGB, not white."""

import numpy as np
import pytest
import torch
from datagen import write_image
from PIL import Image

from cdnet_reid.data import ImageDataset, load_image, read_image
from cdnet_reid.data.common import to_rgb
from cdnet_reid.data.transforms import ToUint8Tensor

# 16-bit values over the whole range, including ones below 256 and the maximum
VALUES16 = np.array([[0, 255, 256, 4095, 32768, 40000, 65280, 65535]] * 3, dtype=np.uint16)


def _rgb_of(grey8: np.ndarray) -> np.ndarray:
    return np.repeat(grey8[:, :, None], 3, axis=2)


@pytest.fixture
def png16(tmp_path):
    path = str(tmp_path / "0001_c1_depth.png")
    Image.fromarray(VALUES16).save(path)
    with open(path, "rb") as f:
        assert f.read(25)[24] == 16  # the IHDR bit depth: a real 16-bit PNG
    return path


def test_16bit_png_is_scaled_to_8bit(png16):
    expected = _rgb_of((VALUES16 >> 8).astype(np.uint8))
    img = read_image(png16)
    assert img.mode == "RGB" and np.array_equal(np.asarray(img), expected)
    assert np.array_equal(np.asarray(load_image(png16)), expected)
    # PIL alone clips every value above 255 to white: what this guards against
    with Image.open(png16) as raw:
        assert raw.mode.startswith("I")
        assert (np.asarray(raw.convert("RGB"))[:, 2:] == 255).all()


def test_16bit_modes_arrays_and_transform(png16):
    expected = _rgb_of((VALUES16 >> 8).astype(np.uint8))
    with Image.open(png16) as raw:
        as_i = raw.convert("I")  # 32-bit integer mode, as older Pillow versions open 16-bit PNGs
    assert as_i.mode == "I" and np.array_equal(np.asarray(to_rgb(as_i)), expected)
    assert np.array_equal(np.asarray(load_image(VALUES16)), expected)  # a uint16 array in memory
    tensor = ToUint8Tensor()(Image.fromarray(VALUES16))
    assert torch.equal(tensor, torch.from_numpy(expected.transpose(2, 0, 1).copy()))
    item = ImageDataset([(png16, 1, 0)], ToUint8Tensor())[0]
    assert item["valid"] and torch.equal(item["images"], tensor)


def test_8bit_images_unchanged(tmp_path):
    grey = np.arange(0, 256, 8, dtype=np.uint8).reshape(4, 8)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    assert np.array_equal(np.asarray(read_image(str(tmp_path / "grey.png"))), _rgb_of(grey))
    write_image(str(tmp_path / "x.jpg"), 0)
    with Image.open(tmp_path / "x.jpg") as raw:
        ref = np.asarray(raw.convert("RGB"))
    assert np.array_equal(np.asarray(read_image(str(tmp_path / "x.jpg"))), ref)
    rgb = np.random.RandomState(0).randint(0, 256, (5, 6, 3)).astype(np.uint8)
    assert np.array_equal(np.asarray(load_image(rgb)), rgb)


def test_rank_pictures_read_16bit_pngs_like_the_data_pipeline(png16):
    """The rank-list pictures (utils.visualizer) use the same 16-bit rule as training and evaluation."""
    from cdnet_reid.utils.visualizer import _load_rgb

    expected = _rgb_of((VALUES16 >> 8).astype(np.uint8))
    h, w = expected.shape[:2]
    assert np.array_equal(_load_rgb(png16, (h, w)), expected)
