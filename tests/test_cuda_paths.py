"""CUDA paths checked without a GPU: a fused model off the CPU computes with F.conv2d; per-sample
seeding in the main process leaves the CUDA generators alone."""

import torch

from cdnet_reid.data.common import _seeded_call
from cdnet_reid.modeling.fuse import count_fused, fuse_for_inference


def _tiny_cdnet():
    from cdnet_reid.config import get_cfg
    from cdnet_reid.modeling import build_model

    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.BACKBONE.NAME = "CDNet"
    cfg.MODEL.BACKBONE.WIDTH_MULT = 0.25
    cfg.MODEL.HEADS.NUM_CLASSES = 10
    torch.manual_seed(0)
    return build_model(cfg).eval()


def test_fused_model_runs_off_onednn_with_the_same_outputs():
    model = _tiny_cdnet()
    fast = fuse_for_inference(model)
    assert count_fused(fast)  # oneDNN epilogues are in the model
    x = torch.rand(2, 3, 64, 32) * 255
    with torch.no_grad():
        ref = fast(x)
        # a device or dtype the oneDNN kernels do not take (as after .cuda()): float64 on the CPU
        # goes through the same fallback
        other = fast.double()(x.double())
    assert torch.allclose(other.float(), ref, atol=1e-4, rtol=1e-4)


def test_per_sample_seeding_leaves_cuda_generators_alone(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: calls.append(seed))
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda seed: calls.append(seed))
    before = torch.random.get_rng_state()
    out = [_seeded_call(lambda _: torch.rand(1).item(), None, 123) for _ in range(2)]
    assert out[0] == out[1]  # the sample's seed decides its randomness
    assert torch.equal(torch.random.get_rng_state(), before)  # the training stream is untouched
    assert calls == []  # no CUDA generator was reseeded
