"""DARTS' second-order architecture gradient against the exact gradient of the unrolled
validation loss (finite differences through a real ``torch.optim.SGD`` step), in double precision,
with per-group LR, momentum, Nesterov and weight decay that differ."""

import copy

import pytest
import torch
from torch import nn

from cdnet_reid.modeling.space import MixedOp
from cdnet_reid.search.architect import UnrolledOptimizerError, unrolled_grads


class TinySupernet(nn.Module):
    """Two searchable layers of three convolution candidates (DARTS softmax mixture) and BN."""

    def __init__(self, c: int = 3):
        super().__init__()
        self.layers = nn.ModuleList(MixedOp([nn.Conv2d(c, c, k, padding=k // 2) for k in (1, 3, 5)])
                                    for _ in range(2))
        self.norm = nn.BatchNorm2d(c)
        self.alphas = nn.Parameter(torch.zeros(2, 3))

    def weight_parameters(self):
        return [p for p in self.parameters() if p is not self.alphas]

    def forward(self, x):
        for layer, a in zip(self.layers, torch.softmax(self.alphas, -1)):
            x = torch.tanh(layer(x, a))
        return self.norm(x)


class TinySearch(nn.Module):
    """The supernet with a linear regression head."""

    def __init__(self):
        super().__init__()
        self.backbone = TinySupernet()
        self.head = nn.Linear(3, 2)

    def forward(self, batch):
        feat = self.backbone(batch["images"]).mean((2, 3))
        return ((self.head(feat) - batch["targets"]) ** 2).mean()


def _optimizer(model):
    bb = model.backbone
    conv = [p for n, p in bb.named_parameters() if p is not bb.alphas and p.dim() > 1]
    other = [p for n, p in bb.named_parameters() if p is not bb.alphas and p.dim() <= 1]
    return torch.optim.SGD([
        {"params": conv, "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-3},
        {"params": other, "lr": 0.04, "momentum": 0.0, "weight_decay": 0.0},
        {"params": list(model.head.parameters()), "lr": 0.3, "momentum": 0.5, "nesterov": True,
         "weight_decay": 1e-2},
    ], lr=0.1)


def _unrolled_val_loss(model, opt_state, alphas, train, val):
    """L_val(w', α) with w' the real SGD step from (model, opt_state) at architecture ``alphas``."""
    m = copy.deepcopy(model)
    with torch.no_grad():
        m.backbone.alphas.copy_(alphas)
    opt = _optimizer(m)
    opt.load_state_dict(copy.deepcopy(opt_state))  # load_state_dict keeps the tensors: step() would change them
    opt.zero_grad()
    m(train).backward()
    opt.step()
    return float(m(val).detach())


@pytest.fixture
def setup():
    torch.manual_seed(0)
    model = TinySearch().double()
    with torch.no_grad():
        model.backbone.alphas.normal_(0, 0.5)

    def batch():
        return {"images": torch.randn(4, 3, 5, 5, dtype=torch.double),
                "targets": torch.randn(4, 2, dtype=torch.double)}

    train, val = batch(), batch()
    opt = _optimizer(model)
    model(batch()).backward()  # one real step: momentum buffers exist
    opt.step()
    opt.zero_grad(set_to_none=True)
    model.backbone.alphas.grad = None
    return model, opt, train, val


@pytest.mark.slow
def test_unrolled_gradient_matches_finite_differences_of_the_unrolled_loss(setup):
    model, opt, train, val = setup
    alphas = model.backbone.alphas
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = copy.deepcopy(opt.state_dict())
    (grad,) = unrolled_grads(model, model, train, val, [alphas], opt)
    for k, v in model.state_dict().items():  # no side effect on the model ...
        assert torch.equal(v, before[k]), k
    assert str(opt.state_dict()) == str(state)  # ... or on the optimizer

    a0, h = alphas.detach().clone(), 1e-5
    ref = torch.zeros_like(a0)
    for i in range(a0.numel()):
        e = torch.zeros_like(a0).view(-1)
        e[i] = h
        e = e.view_as(a0)
        ref.view(-1)[i] = (_unrolled_val_loss(model, state, a0 + e, train, val)
                           - _unrolled_val_loss(model, state, a0 - e, train, val)) / (2 * h)
    first_order = torch.autograd.grad(model(val), [alphas])[0]
    # the second-order term matters here, and the DARTS approximation recovers it
    assert (ref - first_order).abs().max() > 10 * (ref - grad).abs().max()
    torch.testing.assert_close(grad, ref, rtol=1e-3, atol=1e-6)


def test_unrolled_gradient_refuses_adaptive_optimizers(setup):
    model, _, train, val = setup
    adam = torch.optim.Adam(model.backbone.weight_parameters() + list(model.head.parameters()))
    with pytest.raises(UnrolledOptimizerError, match="SGD"):
        unrolled_grads(model, model, train, val, [model.backbone.alphas], adam)
