"""Optimizer construction with per-parameter options (weight decay of norms/biases, LR factors)."""

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

_NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm,
               nn.modules.instancenorm._InstanceNorm, nn.LocalResponseNorm)


def get_param_groups(model: nn.Module, *, base_lr: float, weight_decay: float,
                     weight_decay_norm: float | None = None,
                     weight_decay_bias: float | None = None, bias_lr_factor: float = 1.0,
                     overrides: dict[str, dict[str, float]] | None = None,
                     exclude: Iterable[nn.Parameter] = ()) -> list[dict[str, Any]]:
    """Parameter groups of ``model`` with per-parameter hyper-parameters.

    * ``weight_decay_norm`` applies to the parameters of normalisation layers and
      ``weight_decay_bias`` to biases; ``None`` means "same as ``weight_decay``".
    * ``overrides`` maps a parameter name (as in ``named_parameters``) to ``{"lr": .., ...}``.
    * ``exclude`` parameters (by identity, e.g. architecture logits) and frozen ones are skipped;
      shared parameters are counted once.

    Parameters with identical hyper-parameters are merged into one group.
    """
    overrides = overrides or {}
    wd_norm = weight_decay if weight_decay_norm is None else weight_decay_norm
    wd_bias = weight_decay if weight_decay_bias is None else weight_decay_bias
    seen = {id(p) for p in exclude}
    groups: dict[tuple, dict[str, Any]] = {}
    for module_name, module in model.named_modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            hp = {"lr": base_lr, "weight_decay": weight_decay}
            if isinstance(module, _NORM_TYPES):
                hp["weight_decay"] = wd_norm
            elif name == "bias":
                hp = {"lr": base_lr * bias_lr_factor, "weight_decay": wd_bias}
            hp.update(overrides.get(f"{module_name}.{name}" if module_name else name, {}))
            key = tuple(sorted(hp.items()))
            groups.setdefault(key, {"params": [], **hp})["params"].append(p)
    return list(groups.values())


def build_optimizer(cfg, model: nn.Module, exclude: Iterable[nn.Parameter] = ()) -> torch.optim.Optimizer:
    """The optimizer of ``cfg.SOLVER`` over ``model``'s parameters (minus ``exclude``)."""
    s = cfg.SOLVER
    params = get_param_groups(model, base_lr=s.BASE_LR, weight_decay=s.WEIGHT_DECAY,
                              weight_decay_norm=s.WEIGHT_DECAY_NORM,
                              weight_decay_bias=s.WEIGHT_DECAY_BIAS,
                              bias_lr_factor=s.BIAS_LR_FACTOR, exclude=exclude)
    if s.OPT == "SGD":
        return torch.optim.SGD(params, lr=s.BASE_LR, momentum=s.MOMENTUM, nesterov=s.NESTEROV)
    if s.OPT == "Adam":
        return torch.optim.Adam(params, lr=s.BASE_LR)
    if s.OPT == "AdamW":
        return torch.optim.AdamW(params, lr=s.BASE_LR)
    raise ValueError(f"SOLVER.OPT must be one of SGD, Adam, AdamW; got {s.OPT!r}")
