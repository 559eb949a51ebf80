"""The inference fast path: BatchNorm folding, fused convolution epilogues, channels-last and
torch.compile give the same embeddings."""

import functools
import shutil

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cdnet_reid.config import get_cfg
from cdnet_reid.modeling import build_model
from cdnet_reid.modeling.fuse import (
    ConvReLU,
    FusedCBlock,
    count_fused,
    fold_batchnorm,
    fuse_epilogues,
    fuse_for_inference,
)
from cdnet_reid.modeling.space.ops import CBlock


@functools.cache
def _cached_model(*opts):
    return _model(*opts)


def _model(*opts):
    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.HEADS.NUM_CLASSES", "10", *opts])
    model = build_model(cfg)
    model.train()
    with torch.no_grad():  # non-trivial BN statistics and affine parameters
        for _ in range(3):
            model.backbone(torch.rand(4, 3, 64, 32) * 255)
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model.eval()


def _max_diff(a, b):
    return F.normalize(a, dim=1).sub(F.normalize(b, dim=1)).abs().max().item()


CNET = ("MODEL.BACKBONE.NAME", "CNet", "MODEL.BACKBONE.GENOTYPE", "cnet_top2")


@pytest.mark.parametrize("opts, channels_last, epilogues", [
    ((), False, False), ((), True, False), ((), False, True), ((), True, True),
    (CNET, True, True), (("MODEL.HEADS.CLASSIFICATION", "True"), True, True),
    (("MODEL.BACKBONE.ADAPTIVE_FUSION", "False"), True, True)])
def test_folded_model_gives_the_same_outputs(opts, channels_last, epilogues):
    model = _cached_model("MODEL.BACKBONE.WIDTH_MULT", "0.5", *opts)  # fuse_for_inference copies it
    fast = fuse_for_inference(model, channels_last=channels_last, epilogues=epilogues)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)) for m in fast.modules())
    fused = count_fused(fast)
    if epilogues and torch.backends.mkldnn.is_available():
        # every combined block's tail, and the stem / squeeze / depthwise convs with their ReLU
        assert sum(isinstance(m, FusedCBlock) for m in fast.modules()) == sum(
            isinstance(m, CBlock) for m in model.modules())
        assert not any(isinstance(m, CBlock) for m in fast.modules())
        assert sum(isinstance(m, ConvReLU) for m in fast.modules()) > 10
    else:
        assert fused == []
    x = torch.rand(3, 3, 64, 32) * 255
    with torch.no_grad():
        ref, out = model(x), fast(x)
    assert _max_diff(ref, out) <= 1e-5
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    with torch.inference_mode():  # other batch sizes, inference mode
        y = torch.rand(5, 3, 64, 32) * 255
        assert _max_diff(model(y), fast(y)) <= 1e-5


def test_fold_counts_every_batchnorm_and_refuses_training_mode():
    model = _model()
    n_bn = sum(isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)) for m in model.modules())
    assert fold_batchnorm(model) == n_bn
    with pytest.raises(RuntimeError, match="eval mode"):
        fold_batchnorm(_model().train())


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="needs oneDNN")
def test_epilogues_need_folded_blocks_and_fuse_only_relu_runs():
    model = _model("MODEL.BACKBONE.WIDTH_MULT", "0.25")
    # BN not folded: the blocks' tails cannot be fused, and a conv followed by BN is no conv-ReLU run
    assert not any(isinstance(m, FusedCBlock) for m in _fused_copy(model, fold=False).modules())
    seq = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Identity(), nn.ReLU(),
                        nn.Conv2d(4, 4, 1), nn.Sigmoid(), nn.Conv2d(4, 4, 1, padding_mode="zeros"))
    ref_in = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        ref = seq(ref_in)
        assert fuse_epilogues(seq) == 1
        assert isinstance(seq[0], ConvReLU) and isinstance(seq[2], nn.Identity)
        assert isinstance(seq[3], nn.Conv2d)  # followed by a sigmoid: left alone
        torch.testing.assert_close(seq(ref_in), ref, atol=1e-5, rtol=1e-5)


def _fused_copy(model, fold):
    import copy

    m = copy.deepcopy(model).eval()
    if fold:
        fold_batchnorm(m)
    fuse_epilogues(m)
    return m


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None, reason="needs a C compiler")
def test_compiled_fast_path_gives_the_same_outputs():
    model = _model("MODEL.BACKBONE.WIDTH_MULT", "0.25", *CNET)
    fast = fuse_for_inference(model, compile=True)
    x = torch.rand(4, 3, 64, 32) * 255
    with torch.inference_mode():
        assert _max_diff(model(x), fast(x)) <= 1e-5
