"""Tests of cdnet_reid.data.transforms: pipeline outputs, RandomErasing, flip and Cutout."""

import numpy as np
import pytest
import torch
from PIL import Image

from cdnet_reid.config import get_cfg
from cdnet_reid.data.transforms import Cutout, RandomErasing, ToUint8Tensor, build_transforms

MEAN_U8 = torch.tensor([124, 116, 104], dtype=torch.uint8)  # round(ImageNet mean)


def _random_image(h=80, w=40, seed=0):
    rng = np.random.RandomState(seed)
    return Image.fromarray(rng.randint(0, 256, size=(h, w, 3), dtype=np.uint8), mode="RGB")


def _small_cfg():
    cfg = get_cfg()
    cfg.INPUT.SIZE_TRAIN = [64, 32]
    cfg.INPUT.SIZE_TEST = [64, 32]
    return cfg


def test_to_uint8_tensor():
    arr = np.random.RandomState(0).randint(0, 256, size=(5, 7, 3), dtype=np.uint8)
    t = ToUint8Tensor()(Image.fromarray(arr))
    assert t.dtype == torch.uint8 and t.shape == (3, 5, 7) and t.is_contiguous()
    assert torch.equal(t, torch.from_numpy(arr).permute(2, 0, 1))
    assert torch.equal(ToUint8Tensor()(arr), t)
    gray = ToUint8Tensor()(Image.fromarray(arr[:, :, 0], mode="L"))
    assert gray.shape == (3, 5, 7)  # PIL images are converted to RGB


@pytest.mark.parametrize("is_train", [True, False])
def test_pipeline_output(is_train):
    cfg = _small_cfg()
    cfg.INPUT.SIZE_TEST = [48, 24]
    cfg.INPUT.REA.ENABLED = True
    tf = build_transforms(cfg, is_train=is_train)
    out = tf(_random_image())
    assert out.dtype == torch.uint8
    assert tuple(out.shape) == ((3, 64, 32) if is_train else (3, 48, 24))
    assert int(out.min()) >= 0 and int(out.max()) <= 255 and int(out.max()) > 1  # 0-255 range


def test_train_equals_test_without_augmentation():
    cfg = _small_cfg()
    cfg.INPUT.FLIP.ENABLED = False
    cfg.INPUT.PADDING.ENABLED = False
    cfg.INPUT.REA.ENABLED = False
    img = _random_image()
    assert torch.equal(build_transforms(cfg, True)(img), build_transforms(cfg, False)(img))


def test_train_pipeline_order():
    cfg = _small_cfg()
    cfg.INPUT.REA.ENABLED = True
    names = [type(t).__name__ for t in build_transforms(cfg, True).transforms]
    assert names == ["Resize", "RandomHorizontalFlip", "Pad", "RandomCrop", "ToUint8Tensor",
                     "RandomErasing"]
    rea = build_transforms(cfg, True).transforms[-1]
    assert tuple(rea.fill) == (124, 116, 104)
    assert [type(t).__name__ for t in build_transforms(cfg, False).transforms] == [
        "Resize", "ToUint8Tensor"]


def test_flip_prob_one_mirrors():
    cfg = _small_cfg()
    cfg.INPUT.PADDING.ENABLED = False
    cfg.INPUT.FLIP.ENABLED = True
    cfg.INPUT.FLIP.PROB = 1.0
    img = _random_image()
    flipped = build_transforms(cfg, True)(img)
    plain = build_transforms(cfg, False)(img)
    assert torch.equal(flipped, plain.flip(-1))


def test_padding_crop_keeps_size_and_content():
    cfg = _small_cfg()
    cfg.INPUT.FLIP.ENABLED = False
    cfg.INPUT.PADDING.SIZE = 4
    img = _random_image()
    plain = build_transforms(cfg, False)(img)
    padded = torch.nn.functional.pad(plain, (4, 4, 4, 4))
    torch.manual_seed(0)
    for _ in range(5):
        out = build_transforms(cfg, True)(img)
        assert out.shape == plain.shape
        # the output is some 64x32 window of the zero-padded image
        found = any(torch.equal(out, padded[:, i:i + 64, j:j + 32])
                    for i in range(9) for j in range(9))
        assert found


def _erased_mask(out, fill):
    return (out == fill.view(3, 1, 1)).all(0)


def test_random_erasing_erases_with_correct_area_and_fill():
    torch.manual_seed(0)
    h, w = 128, 64
    img = torch.zeros(3, h, w, dtype=torch.uint8)  # no pixel equals the fill beforehand
    rea = RandomErasing(p=1.0, fill=(124, 116, 104))
    fracs = []
    for _ in range(200):
        out = rea(img)
        assert not torch.equal(out, img)
        assert torch.equal(img, torch.zeros_like(img))  # input untouched (not in place)
        mask = _erased_mask(out, MEAN_U8)
        changed = (out != img).any(0)
        assert torch.equal(mask, changed)  # every changed pixel holds exactly the fill
        ys, xs = torch.nonzero(mask, as_tuple=True)
        bh = int(ys.max() - ys.min() + 1)
        bw = int(xs.max() - xs.min() + 1)
        assert int(mask.sum()) == bh * bw  # one rectangle
        frac = bh * bw / (h * w)
        assert 0.02 <= frac <= 0.4
        assert 0.3 - 0.05 <= bh / bw <= 1 / 0.3 + 0.5
        fracs.append(frac)
    assert min(fracs) < 0.1 and max(fracs) > 0.25  # spread over the range


def test_random_erasing_from_config_fill():
    cfg = _small_cfg()
    cfg.INPUT.FLIP.ENABLED = False
    cfg.INPUT.PADDING.ENABLED = False
    cfg.INPUT.REA.ENABLED = True
    cfg.INPUT.REA.PROB = 1.0
    black = Image.new("RGB", (32, 64))
    torch.manual_seed(1)
    out = build_transforms(cfg, True)(black)
    mask = _erased_mask(out, MEAN_U8)
    assert 0.02 <= mask.float().mean().item() <= 0.4
    assert torch.equal(out[:, ~mask], torch.zeros_like(out[:, ~mask]))


def test_random_erasing_prob_zero_is_identity():
    img = torch.randint(0, 256, (3, 32, 16), dtype=torch.uint8)
    rea = RandomErasing(p=0.0)
    for _ in range(20):
        assert torch.equal(rea(img), img)


def test_random_erasing_float_and_validation():
    img = torch.zeros(3, 40, 20)
    out = RandomErasing(p=1.0, fill=(0.5, 0.25, -1.0))(img)
    mask = out[0] != 0
    assert mask.any()
    assert torch.all(out[1][mask] == 0.25) and torch.all(out[2][mask] == -1.0)
    with pytest.raises(ValueError):
        RandomErasing(p=1.5)
    with pytest.raises(ValueError):
        RandomErasing(sl=0.5, sh=0.2)


def test_cutout_box_and_fill():
    torch.manual_seed(0)
    img = torch.zeros(3, 32, 32, dtype=torch.uint8)
    cut = Cutout(16, fill=(129.3, 124.1, 112.4))
    fill = torch.tensor([129, 124, 112], dtype=torch.uint8)
    sizes = set()
    for _ in range(100):
        out = cut(img)
        mask = _erased_mask(out, fill)
        assert torch.equal(mask, (out != 0).any(0))
        ys, xs = torch.nonzero(mask, as_tuple=True)
        bh, bw = int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)
        assert int(mask.sum()) == bh * bw and bh <= 16 and bw <= 16
        sizes.add((bh, bw))
    assert (16, 16) in sizes and any(s != (16, 16) for s in sizes)


def test_cutout_clipped_at_borders():
    cut = Cutout(16)
    assert cut.box(0, 0, 32, 32) == (0, 8, 0, 8)
    assert cut.box(31, 31, 32, 32) == (23, 32, 23, 32)
    assert cut.box(16, 3, 32, 32) == (8, 24, 0, 11)
    assert cut.box(10, 10, 32, 32) == (2, 18, 2, 18)
    # a corner centre gives the clipped box on the image, filled with the default (ImageNet) mean
    torch.manual_seed(0)
    img = torch.zeros(3, 32, 32, dtype=torch.uint8)
    cut.get_params = lambda h, w: cut.box(0, 31, h, w)
    out = cut(img)
    mask = _erased_mask(out, MEAN_U8)
    assert int(mask.sum()) == 8 * 9
    assert mask[:8, 23:].all()
