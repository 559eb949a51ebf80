"""Optimizers and learning-rate schedules."""

from .lr_scheduler import (
                           LRMultiplier,
                           WarmupParamScheduler,
                           build_lr_multiplier,
                           build_lr_scheduler,
                           check_lr_schedule,
                           epoch_iterations,
                           epoch_multistep,
)
from .optimizer import build_optimizer, get_param_groups

__all__ = ["LRMultiplier", "WarmupParamScheduler", "build_lr_multiplier", "build_lr_scheduler",
           "build_optimizer", "check_lr_schedule", "epoch_iterations", "epoch_multistep", "get_param_groups"]
