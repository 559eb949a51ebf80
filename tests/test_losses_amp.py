"""Mixed precision must not change the objective: the losses under CPU bf16 autocast equal the
float32 losses (distances and mining run with autocast disabled)."""

import functools

import torch

from cdnet_reid.modeling.losses import triplet_loss


def _batch(scale: float, dim: int = 256, ids: int = 8, per_id: int = 4, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(ids, dim, generator=gen)
    feats = 0.25 * centres.repeat_interleave(per_id, 0) + torch.randn(ids * per_id, dim, generator=gen)
    return (scale * feats).requires_grad_(), torch.arange(ids).repeat_interleave(per_id)


def _loss_and_grad(fn, x, amp: bool):
    x = x.detach().clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        loss = fn(x)
    loss.backward()
    return loss.detach(), x.grad


def test_triplet_loss_same_with_bf16_autocast():
    # hard batches (every anchor violates the margin); scale 1: ordinary features; scale 20: dot
    # products of ~1e5 (above fp16's 65,504), where a bf16 distance is off by more than the margin
    for scale in (1.0, 20.0):
        x, y = _batch(scale)
        for margin, norm in ((0.3, False), (0.0, False), (0.3, True)):
            fn = functools.partial(triplet_loss, targets=y, margin=margin, norm_feat=norm)
            ref, gref = _loss_and_grad(fn, x, amp=False)
            amp, gamp = _loss_and_grad(fn, x, amp=True)
            assert amp.dtype == torch.float32
            assert torch.allclose(amp, ref, rtol=1e-3, atol=1e-3), (scale, margin, norm, amp, ref)
            assert torch.allclose(gamp, gref, rtol=1e-3, atol=1e-5), (scale, margin, norm)


def test_triplet_loss_of_bf16_features_is_the_fp32_loss_of_their_values():
    # features leaving a bf16 layer: the loss is that of the same values in float32
    x, y = _batch(20.0)
    xb = x.detach().bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        amp = triplet_loss(xb, y, margin=0.3)
    ref = triplet_loss(xb.float(), y, margin=0.3)
    assert torch.allclose(amp, ref, rtol=1e-4, atol=1e-4), (amp, ref)
