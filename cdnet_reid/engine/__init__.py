"""Training engine: the loop, hooks, ``DefaultTrainer``, CLI helpers and the launcher."""

from . import hooks
from .defaults import default_argument_parser, default_setup, run_main, setup_cfg
from .launch import launch
from .predictor import DefaultPredictor
from .train_loop import HookBase, SimpleTrainer, TrainerBase
from .trainer import DefaultTrainer, create_ddp_model

__all__ = ["DefaultPredictor", "DefaultTrainer", "HookBase", "SimpleTrainer", "TrainerBase",
           "create_ddp_model", "default_argument_parser", "default_setup", "hooks", "launch",
           "run_main", "setup_cfg"]
