"""Architecture gradients: first-order (the paper's) and DARTS' second-order (unrolled) one."""

from typing import Callable, List, Sequence

import torch
from torch import Tensor, nn


def first_order_grads(loss: Tensor, alphas: Sequence[Tensor]) -> List[Tensor]:
    """∇α L_val(w, α); no weight gradient is computed."""
    return list(torch.autograd.grad(loss, list(alphas)))


class _Restore:
    """Snapshot of parameters and buffers (BN statistics), restored on exit."""

    def __init__(self, module: nn.Module):
        self.module = module

    def __enter__(self):
        self.state = {k: v.detach().clone() for k, v in self.module.state_dict(keep_vars=True).items()}
        return self

    def __exit__(self, *exc):
        with torch.no_grad():
            for k, v in self.module.state_dict(keep_vars=True).items():
                v.copy_(self.state[k])


def unrolled_grads(module: nn.Module, loss_fn: Callable[[dict], Tensor], train_batch: dict,
                   arch_batch: dict, alphas: Sequence[nn.Parameter], weights: Sequence[nn.Parameter],
                   optimizer: torch.optim.Optimizer) -> List[Tensor]:
    """DARTS' second-order architecture gradient (Liu et al. 2019, eq. 6-8).

    w' = w - η (μ·m + ∇w L_train + λ w) with the weight optimizer's LR η, momentum μ (buffer m)
    and weight decay λ; then ∇α L_val(w', α) - η · [∇α L_train(w⁺, α) - ∇α L_train(w⁻, α)] / 2ε
    with w± = w ± ε v, v = ∇w' L_val(w', α), ε = 0.01 / ‖v‖. The weights and the BN statistics
    are restored afterwards, so the call has no side effect on the model.
    """
    group = optimizer.param_groups[0]
    lr, momentum, wd = group["lr"], group.get("momentum", 0.0), group.get("weight_decay", 0.0)
    alphas, weights = list(alphas), list(weights)
    with _Restore(module):
        g_train = torch.autograd.grad(loss_fn(train_batch), weights, allow_unused=True)
        with torch.no_grad():
            for w, g in zip(weights, g_train):
                step = wd * w if g is None else g + wd * w
                buf = optimizer.state.get(w, {}).get("momentum_buffer")
                if buf is not None:
                    step = step + momentum * buf
                w.sub_(lr * step)
        grads = torch.autograd.grad(loss_fn(arch_batch), alphas + weights, allow_unused=True)
    d_alpha = grads[:len(alphas)]
    v = [torch.zeros_like(w) if g is None else g for w, g in zip(weights, grads[len(alphas):])]
    eps = 0.01 / torch.sqrt(sum((g * g).sum() for g in v)).clamp_min(1e-12)
    hessian = []
    for sign in (1.0, -1.0):
        with _Restore(module):
            with torch.no_grad():
                for w, g in zip(weights, v):
                    w.add_(sign * eps * g)
            hessian.append(torch.autograd.grad(loss_fn(train_batch), alphas))
    return [da - lr * (hp - hn) / (2 * eps) for da, hp, hn in zip(d_alpha, hessian[0], hessian[1])]
