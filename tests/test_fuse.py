"""The inference fast path: BatchNorm folding and channels-last give the same embeddings."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cdnet_reid.config import get_cfg
from cdnet_reid.modeling import build_model
from cdnet_reid.modeling.fuse import fold_batchnorm, fuse_for_inference


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


@pytest.mark.parametrize("opts", [(), ("MODEL.BACKBONE.NAME", "CNet", "MODEL.BACKBONE.GENOTYPE", "cnet_top2"),
                                  ("MODEL.HEADS.CLASSIFICATION", "True")])
@pytest.mark.parametrize("channels_last", [False, True])
def test_folded_model_gives_the_same_outputs(opts, channels_last):
    model = _model("MODEL.BACKBONE.WIDTH_MULT", "0.5", *opts)
    fast = fuse_for_inference(model, channels_last=channels_last)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)) for m in fast.modules())
    x = torch.rand(3, 3, 64, 32) * 255
    with torch.no_grad():
        ref, out = model(x), fast(x)
    assert F.normalize(ref, dim=1).sub(F.normalize(out, dim=1)).abs().max() <= 1e-5
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original is untouched


def test_fold_counts_every_batchnorm_and_refuses_training_mode():
    model = _model()
    n_bn = sum(isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)) for m in model.modules())
    assert fold_batchnorm(model) == n_bn
    with pytest.raises(RuntimeError, match="eval mode"):
        fold_batchnorm(_model().train())
