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


def test_a_numbered_gpu_becomes_the_current_device(monkeypatch):
    from cdnet_reid.engine.defaults import select_device

    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: chosen.append(d))
    assert select_device("cuda:1") == torch.device("cuda", 1)
    assert chosen == [torch.device("cuda", 1)]
    select_device("cuda")  # the current device stays as launch() set it
    assert chosen == [torch.device("cuda", 1)]


def test_a_numbered_gpu_with_several_processes_is_refused(monkeypatch):
    import pytest

    from cdnet_reid.config import ConfigError
    from cdnet_reid.engine import defaults

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: None)
    monkeypatch.setattr(defaults.comm, "get_world_size", lambda: 2)
    with pytest.raises(ConfigError, match="MODEL.DEVICE cuda:1: with 2 processes"):
        defaults.select_device("cuda:1")


def test_a_device_that_is_not_there_is_a_config_error(monkeypatch):
    import pytest

    from cdnet_reid.config import ConfigError
    from cdnet_reid.engine.defaults import select_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="CUDA is not available"):
        select_device("cuda")
    with pytest.raises(ConfigError, match="'gpu0' is not a device"):
        select_device("gpu0")


def test_deterministic_raises_instead_of_warning():
    from cdnet_reid.config import get_cfg
    from cdnet_reid.engine.defaults import set_determinism

    cfg = get_cfg()
    cfg.DETERMINISTIC = True
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    try:
        set_determinism(cfg)
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[2:]


def test_the_neck_pools_with_a_mean_not_an_adaptive_pooling_layer():
    """AdaptiveAvgPool2d's CUDA backward has no deterministic implementation; a mean has."""
    model = _tiny_cdnet()
    assert not any(isinstance(m, torch.nn.AdaptiveAvgPool2d) for m in model.modules())
