"""Training engine: the loop, hooks, ``DefaultTrainer``, the command line and the launcher.

It knows no particular model or trainer subclass: models describe what they need stored
(``checkpoint_extra``), and trainers register in ``TRAINER_REGISTRY`` (``TRAINER.NAME``).
"""

from . import hooks
from .defaults import (
                       add_config_arguments,
                       default_argument_parser,
                       default_setup,
                       main,
                       run_main,
                       setup_cfg,
                       setup_tool_cfg,
)
from .launch import launch
from .parallel import create_ddp_model, sync_batchnorm, unwrap
from .predictor import DefaultPredictor, OnnxPredictor, Predictor
from .runtimes import Bf16TorchPredictor, OpenVinoPredictor, create_predictor
from .train_loop import HookBase, SimpleTrainer, TrainerBase
from .trainer import TRAINER_REGISTRY, DefaultTrainer

__all__ = ["Bf16TorchPredictor", "DefaultPredictor", "OnnxPredictor", "OpenVinoPredictor", "Predictor",
           "create_predictor",
           "DefaultTrainer", "HookBase", "SimpleTrainer", "TRAINER_REGISTRY",
           "TrainerBase", "add_config_arguments", "create_ddp_model", "default_argument_parser",
           "default_setup", "hooks", "launch", "main", "run_main", "setup_cfg", "setup_tool_cfg", "sync_batchnorm",
           "unwrap"]
