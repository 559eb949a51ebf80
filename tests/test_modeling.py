"""Model building blocks: losses, the BL neck, the Baseline meta-architecture, registries."""

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tiny import TinyNet, tiny_cfg

from cdnet_reid.modeling import build_model
from cdnet_reid.modeling.heads import BLNeck
from cdnet_reid.modeling.losses import cross_entropy_loss, triplet_loss
from cdnet_reid.modeling.meta_arch import Baseline

ROOT = Path(__file__).resolve().parents[1]


def test_triplet_loss_hand_computed():
    # 1-D features: ids a = {0, 1}, b = {3, 5}. Hardest positive/negative per anchor:
    # 0: d_ap 1, d_an 3 -> 0 ; 1: d_ap 1, d_an 2 -> 0 ; 3: d_ap 2, d_an 2 -> 0.3 ; 5: d_ap 2, d_an 4 -> 0
    x = torch.tensor([[0.0], [1.0], [3.0], [5.0]])
    y = torch.tensor([0, 0, 1, 1])
    assert triplet_loss(x, y, margin=0.3).item() == pytest.approx(0.3 / 4, abs=1e-5)
    soft = triplet_loss(x, y, margin=0.0).item()
    expected = sum(F.softplus(torch.tensor(float(v))).item() for v in (1 - 3, 1 - 2, 2 - 2, 2 - 4)) / 4
    assert soft == pytest.approx(expected, abs=1e-5)


def test_triplet_loss_ignores_anchors_without_negatives():
    x = torch.randn(4, 8, requires_grad=True)
    loss = triplet_loss(x, torch.zeros(4, dtype=torch.long))
    loss.backward()
    assert loss.item() == 0.0 and x.grad is not None


def test_label_smoothing_formula():
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    target = torch.tensor([0])
    eps = 0.1
    q = torch.tensor([[1 - eps + eps / 3, eps / 3, eps / 3]])
    expected = -(q * F.log_softmax(logits, 1)).sum()
    assert cross_entropy_loss(logits, target, eps).item() == pytest.approx(expected.item(), abs=1e-6)


def test_bl_neck_modes():
    feats = {"res": torch.randn(4, 32, 8, 4)}
    neck = BLNeck(in_channels=32, num_classes=7, fc_dims=[16], dropout=0.0)
    neck.train()
    (logits, feat), = neck(feats)
    assert logits.shape == (4, 7) and feat.shape == (4, 32)
    neck.eval()
    assert torch.allclose(neck(feats), feats["res"].mean((2, 3)), atol=1e-6)
    neck.classification = True
    assert neck(feats).shape == (4, 7)
    assert sum(p.numel() for p in neck.parameters()) == 32 * 16 + 16 + 2 * 16 + 16 * 7 + 7
    embed_only = BLNeck(in_channels=32, num_classes=0).eval()
    assert embed_only(feats).shape == (4, 32)


def test_baseline_normalises_inside_without_touching_input(tmp_path, data_root):
    model = Baseline(backbone=TinyNet(), head=BLNeck(in_channels=32, num_classes=5, fc_dims=[8]),
                     pixel_mean=[100.0, 110.0, 120.0], pixel_std=[50.0, 60.0, 70.0]).eval()
    images = torch.randint(0, 256, (2, 3, 32, 16), dtype=torch.uint8)
    out_u8 = model(images)
    floats = images.float()
    copy = floats.clone()
    out_f = model(floats)
    assert torch.equal(floats, copy)  # not normalised in place
    assert out_u8.shape == (2, 32) and torch.allclose(out_u8, out_f)
    model.train()
    losses = model({"images": images, "targets": torch.tensor([0, 1])})
    assert set(losses) == {"loss_cls", "loss_triplet"}
    with pytest.raises(ValueError, match="targets"):
        model(images)


def test_build_model_from_config_and_unknown_names(tmp_path, data_root):
    cfg = tiny_cfg(tmp_path, data_root, MODEL__HEADS__NUM_CLASSES="3")
    model = build_model(cfg)
    assert isinstance(model, Baseline) and model.device.type == "cpu"
    cfg.MODEL.BACKBONE.NAME = "NoSuchNet"
    with pytest.raises(KeyError, match=r"MODEL.BACKBONE.NAME='NoSuchNet'.*TinyNet"):
        build_model(cfg)


def test_mobilenetv2_project_registers_through_public_api(tmp_path, data_root):
    sys.path.insert(0, str(ROOT / "projects" / "MobileNetV2"))
    import mobilenetv2_reid

    from cdnet_reid.config import get_cfg
    cfg = get_cfg()
    mobilenetv2_reid.add_mobilenetv2_config(cfg)
    cfg.merge_from_file(str(ROOT / "projects" / "MobileNetV2" / "configs" / "synthetic.yml"))
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.HEADS.NUM_CLASSES", "751"])
    model = build_model(cfg).eval()
    # torchvision MobileNetV2 features (2,223,872) + BL neck 1280->512->751 (1,041,903)
    assert sum(p.numel() for p in model.parameters()) == 2_223_872 + 1280 * 512 + 512 + 1024 + 512 * 751 + 751
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 128, 64)).shape == (2, 1280)


def test_channels_last_weights_give_nhwc_activations_and_the_same_model(tmp_path):
    """MODEL.CHANNELS_LAST: 4-D weights NHWC, convolutions then compute NHWC, the values are those
    of the NCHW model (same seed, same weights) up to float rounding, and the state dicts match."""
    from cdnet_reid.config import get_cfg

    def built(flag):
        cfg = get_cfg()
        cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.BACKBONE.WIDTH_MULT", "0.25",
                             "MODEL.HEADS.NUM_CLASSES", "8", "MODEL.CHANNELS_LAST", str(flag)])
        torch.manual_seed(0)
        return build_model(cfg).eval()

    nhwc, nchw = built(True), built(False)
    convs = [m for m in nhwc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    assert all(m.weight.is_contiguous() for m in nchw.modules() if isinstance(m, torch.nn.Conv2d))
    seen = []
    convs[0].register_forward_hook(lambda m, i, o: seen.append(o.is_contiguous(memory_format=torch.channels_last)))
    x = torch.rand(2, 3, 64, 32) * 255
    with torch.no_grad():
        a, b = nhwc(x), nchw(x)
    assert seen == [True]
    assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)
    sa, sb = nhwc.state_dict(), nchw.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
