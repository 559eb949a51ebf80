"""Learning-rate schedules, stepped every iteration, built from fvcore param schedulers.

Every schedule is a multiplier ``m(where)`` of the optimizer's base LR, with ``where = iter /
max_iter`` in [0, 1). All epoch-based settings are converted to iterations once, here.
"""

import logging
import math
from collections.abc import Sequence

import torch
from fvcore.common.param_scheduler import (
    CompositeParamScheduler,
    ConstantParamScheduler,
    CosineParamScheduler,
    LinearParamScheduler,
    MultiStepParamScheduler,
    ParamScheduler,
)

from ..config import ConfigError

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

    def get_lr(self) -> list[float]:
        where = min(self.last_epoch / self._max_iter, 1.0)
        m = self._multiplier(where)
        return [base_lr * m for base_lr in self.base_lrs]


def epoch_iterations(epochs: Sequence[int], iters_per_epoch: int) -> list[int]:
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


def _positive(key: str, value, *, zero: bool = False) -> None:
    """``value`` of config key ``key`` is a finite number > 0 (>= 0 with ``zero``)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not zero):
        raise ConfigError(f"{key} must be a finite number {'>= 0' if zero else '> 0'}, got {value!r}")


def check_lr_schedule(cfg, iters_per_epoch: int | None = None) -> None:
    """Every rule of the ``SOLVER`` schedule keys, in one place; a :class:`ConfigError` names the
    key and its value. Called at start-up (before the data are read, ``iters_per_epoch`` unknown
    unless ``SOLVER.ITERS_PER_EPOCH`` sets it) and again when the schedule is built.

    With ``SCHED MultiStep`` and a non-empty ``LR_LIST``, the list is the LR of every step and its
    first value must equal ``BASE_LR`` (the LR the optimizer starts from): a ``BASE_LR`` that
    disagrees would otherwise be ignored."""
    s = cfg.SOLVER
    if not isinstance(s.MAX_EPOCH, int) or s.MAX_EPOCH < 1:
        raise ConfigError(f"SOLVER.MAX_EPOCH must be an integer >= 1, got {s.MAX_EPOCH!r}")
    if s.ITERS_PER_EPOCH < 0:
        raise ConfigError(f"SOLVER.ITERS_PER_EPOCH must be >= 0 (0: the sampler's epoch), got {s.ITERS_PER_EPOCH}")
    _positive("SOLVER.BASE_LR", s.BASE_LR)
    if s.SCHED == "MultiStep":
        milestones = list(s.MILESTONES)
        if list(sorted(set(milestones))) != milestones or (milestones and milestones[0] < 2):
            raise ConfigError(f"SOLVER.MILESTONES must be strictly increasing 1-based epochs >= 2, "
                              f"got {milestones}")
        lrs = list(s.LR_LIST)
        if lrs:
            if len(lrs) != len(milestones) + 1:
                raise ConfigError(f"SOLVER.LR_LIST needs len(SOLVER.MILESTONES) + 1 = {len(milestones) + 1} "
                                  f"values, got {len(lrs)}: {lrs}")
            for i, lr in enumerate(lrs):
                _positive(f"SOLVER.LR_LIST[{i}]", lr)
            if not math.isclose(lrs[0], s.BASE_LR, rel_tol=1e-9):
                scaled = "[" + ",".join(f"{lr * s.BASE_LR / lrs[0]:.6g}" for lr in lrs) + "]"
                raise ConfigError(
                    f"SOLVER.BASE_LR is {s.BASE_LR:g} but SOLVER.LR_LIST {lrs} starts at {lrs[0]:g}: with "
                    f"SCHED MultiStep the LR follows LR_LIST, so set SOLVER.LR_LIST too (e.g. {scaled}), or "
                    f"SOLVER.LR_LIST [] for BASE_LR x SOLVER.GAMMA at each of SOLVER.MILESTONES")
        else:
            _positive("SOLVER.GAMMA", s.GAMMA)
    elif s.SCHED == "Cosine":
        _positive("SOLVER.ETA_MIN_LR", s.ETA_MIN_LR, zero=True)
    elif s.SCHED == "Exponential":
        _positive("SOLVER.GAMMA", s.GAMMA)
    else:
        raise ConfigError(f"SOLVER.SCHED must be 'MultiStep', 'Cosine' or 'Exponential', got {s.SCHED!r}")
    if s.WARMUP_METHOD not in ("linear", "constant"):
        raise ConfigError(f"SOLVER.WARMUP_METHOD must be 'linear' or 'constant', got {s.WARMUP_METHOD!r}")
    _positive("SOLVER.WARMUP_FACTOR", s.WARMUP_FACTOR, zero=True)
    if not isinstance(s.WARMUP_ITERS, int) or s.WARMUP_ITERS < 0:
        raise ConfigError(f"SOLVER.WARMUP_ITERS must be an integer >= 0, got {s.WARMUP_ITERS!r}")
    iters_per_epoch = iters_per_epoch or s.ITERS_PER_EPOCH
    if iters_per_epoch and s.WARMUP_ITERS >= s.MAX_EPOCH * iters_per_epoch:
        raise ConfigError(f"SOLVER.WARMUP_ITERS {s.WARMUP_ITERS} is not shorter than the run: "
                          f"SOLVER.MAX_EPOCH {s.MAX_EPOCH} x {iters_per_epoch} iterations per epoch = "
                          f"{s.MAX_EPOCH * iters_per_epoch} iterations")


def build_lr_multiplier(cfg, iters_per_epoch: int) -> ParamScheduler:
    """The schedule of ``cfg.SOLVER`` as a multiplier of ``SOLVER.BASE_LR`` (see defaults.py),
    checked by :func:`check_lr_schedule`."""
    check_lr_schedule(cfg, iters_per_epoch)
    s = cfg.SOLVER
    max_epoch = s.MAX_EPOCH
    max_iter = max_epoch * iters_per_epoch
    if s.SCHED == "MultiStep":
        milestones = list(s.MILESTONES)
        if s.LR_LIST:
            values = [lr / s.BASE_LR for lr in s.LR_LIST]
        else:
            values = [s.GAMMA ** k for k in range(len(milestones) + 1)]
        sched = epoch_multistep(values, milestones, iters_per_epoch, max_epoch)
    elif s.SCHED == "Cosine":
        sched = CosineParamScheduler(1.0, s.ETA_MIN_LR / s.BASE_LR)
    else:  # "Exponential"
        sched = EpochExponentialParamScheduler(s.GAMMA, max_epoch)
    if s.WARMUP_ITERS > 0:
        sched = WarmupParamScheduler(sched, s.WARMUP_FACTOR, s.WARMUP_ITERS / max_iter, s.WARMUP_METHOD)
    return sched


def build_lr_scheduler(cfg, optimizer: torch.optim.Optimizer, iters_per_epoch: int) -> LRMultiplier:
    """An :class:`LRMultiplier` over ``optimizer`` following ``cfg.SOLVER``; step it every iteration."""
    max_iter = cfg.SOLVER.MAX_EPOCH * iters_per_epoch
    return LRMultiplier(optimizer, build_lr_multiplier(cfg, iters_per_epoch), max_iter)


__all__ = ["LRMultiplier", "WarmupParamScheduler", "EpochExponentialParamScheduler",
           "build_lr_multiplier", "check_lr_schedule", "build_lr_scheduler", "epoch_iterations", "epoch_multistep"]
