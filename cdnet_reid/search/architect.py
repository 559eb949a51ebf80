"""Architecture gradients: first-order (the paper's) and DARTS' second-order (unrolled) one."""

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn


class UnrolledOptimizerError(TypeError):
    """The weight optimizer's step cannot be unrolled (only ``torch.optim.SGD`` steps can)."""


def first_order_grads(loss: Tensor, alphas: Sequence[Tensor]) -> list[Tensor]:
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


def check_unrollable(optimizer: torch.optim.Optimizer) -> None:
    """Raise :class:`UnrolledOptimizerError` unless ``optimizer`` is ``torch.optim.SGD``: the
    unrolled step reproduces SGD's update (per group: LR, momentum, dampening, Nesterov, weight
    decay, maximize); an adaptive optimizer's step is not linear in the gradient."""
    if type(optimizer) is not torch.optim.SGD:
        raise UnrolledOptimizerError(
            "the second-order (unrolled) architecture gradient needs an SGD weight optimizer "
            f"(SOLVER.OPT SGD), got {type(optimizer).__name__}")


def _sgd_step(w: Tensor, g: Tensor, group: dict, buf: Tensor = None):
    """``(Δ, c)``: the update ``w ← w - Δ`` that ``torch.optim.SGD`` makes for parameter ``w``
    with gradient ``g`` in ``group`` (momentum buffer ``buf``), and ``c = ∂Δ/∂g`` (a scalar:
    the step is linear in ``g``)."""
    lr, mu = group["lr"], group.get("momentum", 0.0)
    damp, wd = group.get("dampening", 0.0), group.get("weight_decay", 0.0)
    sign = -1.0 if group.get("maximize", False) else 1.0
    d, c = sign * g + wd * w, sign
    if mu:
        if buf is None:  # SGD's first step: the buffer is the gradient, undampened
            new_buf, cb = d, c
        else:
            new_buf, cb = mu * buf + (1 - damp) * d, (1 - damp) * c
        if group.get("nesterov", False):
            d, c = d + mu * new_buf, c + mu * cb
        else:
            d, c = new_buf, cb
    return lr * d, lr * c


def unrolled_grads(module: nn.Module, loss_fn: Callable[[dict], Tensor], train_batch: dict,
                   arch_batch: dict, alphas: Sequence[nn.Parameter],
                   optimizer: torch.optim.Optimizer) -> list[Tensor]:
    """DARTS' second-order architecture gradient (Liu et al. 2019, eq. 6-8) for the weights of
    ``optimizer``, each stepped with the settings of its own parameter group.

    w' = w - Δ(w, ∇w L_train(w, α)) is the step ``optimizer`` would make (:func:`_sgd_step`: LR,
    momentum with the optimizer's buffer, dampening, Nesterov, weight decay of the parameter's
    group). With v = ∇w' L_val(w', α) and u_i = c_i v_i (c_i = ∂Δ_i/∂g_i, the LR for plain SGD)
    the result is ∇α L_val(w', α) - [∇α L_train(w + ε u, α) - ∇α L_train(w - ε u, α)] / 2ε with
    ε = 0.01 / ‖u‖. The weights and the BN statistics are restored afterwards: the call changes
    neither ``module`` nor ``optimizer``. Raises :class:`UnrolledOptimizerError` when
    ``optimizer`` is not SGD.
    """
    check_unrollable(optimizer)
    alphas = list(alphas)
    alpha_ids = {id(a) for a in alphas}
    groups: dict[int, dict] = {}
    weights: list[Tensor] = []
    for group in optimizer.param_groups:
        for w in group["params"]:
            if id(w) in alpha_ids:
                raise ValueError("the architecture parameters must not be in the weight optimizer")
            if w.requires_grad and id(w) not in groups:
                groups[id(w)] = group
                weights.append(w)
    with _Restore(module):
        g_train = torch.autograd.grad(loss_fn(train_batch), weights, allow_unused=True)
        coef = []
        with torch.no_grad():
            for w, g in zip(weights, g_train):
                if g is None:  # SGD skips a parameter without gradient
                    coef.append(0.0)
                    continue
                step, c = _sgd_step(w, g, groups[id(w)], optimizer.state.get(w, {}).get("momentum_buffer"))
                w.sub_(step)
                coef.append(c)
        grads = torch.autograd.grad(loss_fn(arch_batch), alphas + weights, allow_unused=True)
    d_alpha = grads[:len(alphas)]
    u = [torch.zeros_like(w) if g is None else c * g for w, g, c in zip(weights, grads[len(alphas):], coef)]
    eps = 0.01 / torch.sqrt(sum((x * x).sum() for x in u)).clamp_min(1e-12)
    hessian = []
    for sign in (1.0, -1.0):
        with _Restore(module):
            with torch.no_grad():
                for w, x in zip(weights, u):
                    w.add_(sign * eps * x)
            hessian.append(torch.autograd.grad(loss_fn(train_batch), alphas))
    return [da - (hp - hn) / (2 * eps) for da, hp, hn in zip(d_alpha, hessian[0], hessian[1])]
