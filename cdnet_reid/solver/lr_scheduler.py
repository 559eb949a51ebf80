"""Learning-rate schedules, stepped every iteration, built from fvcore param schedulers.

Every schedule is a multiplier ``m(where)`` of the optimizer's base LR, with ``where = iter /
max_iter`` in [0, 1). All epoch-based settings are converted to iterations once, here.
"""

import logging
from typing import List, Sequence

import torch
from fvcore.common.param_scheduler import (
    CompositeParamScheduler,
    ConstantParamScheduler,
    CosineParamScheduler,
    LinearParamScheduler,
    MultiStepParamScheduler,
    ParamScheduler,
)

logger = logging.getLogger(__name__)


class EpochExponentialParamScheduler(ParamScheduler):
    """``gamma ** E`` during 1-based epoch E (constant within an epoch): the ImageNet recipe."""

    def __init__(self, gamma: float, num_epochs: int):
        self.gamma = gamma
        self.num_epochs = num_epochs

    def __call__(self, where: float) -> float:
        epoch = int(where * self.num_epochs + self.WHERE_EPSILON)  # 0-based
        return self.gamma ** (epoch + 1)


class WarmupParamScheduler(CompositeParamScheduler):
    """Prepends a warm-up of ``warmup_length`` (fraction of training) to ``scheduler``.

    The warm-up overlaps the start of ``scheduler`` (its milestones are not shifted): during it
    the value goes from ``warmup_factor * scheduler(0)`` to ``scheduler(warmup_length)``,
    linearly, or stays at ``warmup_factor * scheduler(0)`` for the "constant" method.
    """

    def __init__(self, scheduler: ParamScheduler, warmup_factor: float, warmup_length: float,
                 warmup_method: str = "linear"):
        start = warmup_factor * scheduler(0.0)
        if warmup_method == "linear":
            warmup = LinearParamScheduler(start, scheduler(warmup_length))
        elif warmup_method == "constant":
            warmup = ConstantParamScheduler(start)
        else:
            raise ValueError(f"SOLVER.WARMUP_METHOD must be 'linear' or 'constant', got {warmup_method!r}")
        super().__init__([warmup, scheduler], interval_scaling=["rescaled", "fixed"],
                         lengths=[warmup_length, 1 - warmup_length])


class LRMultiplier(torch.optim.lr_scheduler.LRScheduler):
    """``lr = base_lr * multiplier(iter / max_iter)`` for every param group; step every iteration.

    Its ``state_dict`` holds only ``base_lrs`` and ``last_epoch`` (plain data), so checkpoints load
    with ``weights_only=True``; the multiplier itself is rebuilt from the config.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, multiplier: ParamScheduler, max_iter: int,
                 last_iter: int = -1):
        if not isinstance(multiplier, ParamScheduler):
            raise TypeError(f"multiplier must be an fvcore ParamScheduler, got {type(multiplier)}")
        self._multiplier = multiplier
        self._max_iter = max_iter
        super().__init__(optimizer, last_epoch=last_iter)

    def state_dict(self):
        return {"base_lrs": self.base_lrs, "last_epoch": self.last_epoch}

    def get_lr(self) -> List[float]:
        where = min(self.last_epoch / self._max_iter, 1.0)
        m = self._multiplier(where)
        return [base_lr * m for base_lr in self.base_lrs]


def epoch_iterations(epochs: Sequence[int], iters_per_epoch: int) -> List[int]:
    """The first iteration of each 1-based epoch: epoch ``m`` starts at ``(m - 1) * iters_per_epoch``.
    Every epoch-based setting of a schedule goes through here."""
    return [(m - 1) * iters_per_epoch for m in epochs]


def epoch_multistep(values: Sequence[float], milestones: Sequence[int], iters_per_epoch: int,
                    max_epoch: int) -> MultiStepParamScheduler:
    """``values[k]`` once ``k`` of the 1-based epoch ``milestones`` are reached, per iteration;
    milestones at or beyond the end of training are dropped (logged)."""
    max_iter = max_epoch * iters_per_epoch
    its = [it for it in epoch_iterations(milestones, iters_per_epoch) if 0 < it < max_iter]
    if len(its) < len(milestones):
        logger.info("LR milestones %s (epochs) are never reached in %d epochs",
                    [m for m in milestones if not 0 < (m - 1) * iters_per_epoch < max_iter], max_epoch)
    return MultiStepParamScheduler(list(values)[: len(its) + 1], num_updates=max_iter, milestones=its)


def build_lr_multiplier(cfg, iters_per_epoch: int) -> ParamScheduler:
    """The schedule of ``cfg.SOLVER`` as a multiplier of ``SOLVER.BASE_LR`` (see defaults.py)."""
    s = cfg.SOLVER
    max_epoch = s.MAX_EPOCH
    max_iter = max_epoch * iters_per_epoch
    if s.SCHED == "MultiStep":
        milestones = list(s.MILESTONES)
        if list(sorted(set(milestones))) != milestones or (milestones and milestones[0] < 2):
            raise ValueError(f"SOLVER.MILESTONES must be strictly increasing 1-based epochs >= 2, "
                             f"got {milestones}")
        if s.LR_LIST:
            if len(s.LR_LIST) != len(milestones) + 1:
                raise ValueError(f"SOLVER.LR_LIST needs len(SOLVER.MILESTONES) + 1 = "
                                 f"{len(milestones) + 1} values, got {len(s.LR_LIST)}: {list(s.LR_LIST)}")
            values = [lr / s.BASE_LR for lr in s.LR_LIST]
        else:
            values = [s.GAMMA ** k for k in range(len(milestones) + 1)]
        sched = epoch_multistep(values, milestones, iters_per_epoch, max_epoch)
    elif s.SCHED == "Cosine":
        sched = CosineParamScheduler(1.0, s.ETA_MIN_LR / s.BASE_LR)
    elif s.SCHED == "Exponential":
        sched = EpochExponentialParamScheduler(s.GAMMA, max_epoch)
    else:
        raise ValueError(f"SOLVER.SCHED must be 'MultiStep', 'Cosine' or 'Exponential', got {s.SCHED!r}")
    if s.WARMUP_ITERS > 0:
        if s.WARMUP_ITERS >= max_iter:
            raise ValueError(f"SOLVER.WARMUP_ITERS={s.WARMUP_ITERS} must be below the total number of "
                             f"iterations ({max_iter})")
        sched = WarmupParamScheduler(sched, s.WARMUP_FACTOR, s.WARMUP_ITERS / max_iter, s.WARMUP_METHOD)
    return sched


def build_lr_scheduler(cfg, optimizer: torch.optim.Optimizer, iters_per_epoch: int) -> LRMultiplier:
    """An :class:`LRMultiplier` over ``optimizer`` following ``cfg.SOLVER``; step it every iteration."""
    max_iter = cfg.SOLVER.MAX_EPOCH * iters_per_epoch
    return LRMultiplier(optimizer, build_lr_multiplier(cfg, iters_per_epoch), max_iter)


__all__ = ["LRMultiplier", "WarmupParamScheduler", "EpochExponentialParamScheduler",
           "build_lr_multiplier", "build_lr_scheduler", "epoch_iterations", "epoch_multistep"]
