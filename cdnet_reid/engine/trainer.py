"""``DefaultTrainer``: the standard recipe assembled from overridable ``build_*`` methods."""

import logging
import os
from collections import OrderedDict

import torch
from torch import nn

from ..config import CfgNode, ConfigError
from ..data import TestLoader, build_test_loader, build_train_loader, dataset_task, iters_per_epoch
from ..evaluation import DatasetEvaluator, build_evaluator, evaluate_datasets
from ..modeling import build_model, inference_config, load_model, num_classes, with_num_classes
from ..solver import build_lr_scheduler, build_optimizer, check_lr_schedule
from ..utils import comm
from ..utils.checkpoint import Checkpointer, find_last_checkpoint
from ..utils.events import CommonMetricPrinter, JSONWriter, build_tensorboard_writer
from ..utils.registry import Registry
from . import hooks
from .parallel import create_ddp_model, sync_batchnorm, unwrap
from .resume import (  # noqa: F401  (ResumeMismatchError re-exported)
    ResumeMismatchError,
    ResumeState,
    finish_checkpointed_epoch,
    resume_or_initialise,
    rng_state,
)
from .train_loop import HookBase, SimpleTrainer

logger = logging.getLogger(__name__)

TRAINER_REGISTRY = Registry("TRAINER")
TRAINER_REGISTRY.__doc__ = """Trainer classes, chosen by ``TRAINER.NAME`` (``run_main``); a
subclass registers itself with ``@TRAINER_REGISTRY.register()`` where it is defined."""


@TRAINER_REGISTRY.register()
class DefaultTrainer(SimpleTrainer):
    """Trainer with the standard recipe: data, model, optimizer, LR schedule, checkpoints, hooks.

    Customise by overriding a ``build_*`` method, or filter/extend ``build_hooks()``::

        class Trainer(DefaultTrainer):
            def build_hooks(self):
                return super().build_hooks() + [MyHook()]

    or, without subclassing, ``trainer.register_hooks([MyHook()], before=hooks.PeriodicWriter)``.
    """

    #: Panels of ``training_curves.png`` besides losses, LR and evaluation: ``{title: key prefix}``
    #: of the scalars this trainer's hooks publish.
    curve_panels: dict[str, str] = {}
    #: Config keys whose change makes a resumed run train something else than the checkpoint's
    #: run (shapes, the data stream, the objective); everything under a prefix counts.
    #: ``--resume-changed`` allows them. A trainer with its own config section adds it.
    resume_critical: tuple[str, ...] = ("MODEL.", "INPUT.", "DATASETS.", "DATALOADER.SAMPLER_TRAIN",
                                        "DATALOADER.NUM_INSTANCE", "SOLVER.IMS_PER_BATCH",
                                        "SOLVER.ITERS_PER_EPOCH", "SEED", "TRAINER.")
    #: ... except these, which do not change what is trained.
    resume_harmless: tuple[str, ...] = ("MODEL.WEIGHTS", "MODEL.PRETRAIN_PATH", "MODEL.DEVICE",
                                        "DATASETS.TESTS", "DATASETS.ROOT")

    def __init__(self, cfg: CfgNode):
        check_lr_schedule(cfg)  # before the data are read
        data_loader = self.build_train_loader(cfg)
        cfg = self.auto_scale_hyperparams(cfg, data_loader)
        self.validate_test_sets(cfg)
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        clip = cfg.SOLVER.CLIP_GRADIENTS
        super().__init__(self.wrap_model(cfg, model), data_loader, optimizer,
                         amp=cfg.SOLVER.AMP.ENABLED,
                         grad_clip=dict(type=clip.TYPE, value=clip.VALUE, norm_type=clip.NORM_TYPE)
                         if clip.ENABLED else None)
        self.cfg = cfg
        self.iters_per_epoch = self.compute_iters_per_epoch(cfg, data_loader)
        self.max_iter = cfg.SOLVER.MAX_EPOCH * self.iters_per_epoch
        self.scheduler = self.build_lr_scheduler(cfg, optimizer, self.iters_per_epoch)
        self.checkpointer = self.build_checkpointer(cfg)
        self._last_eval_results: OrderedDict | None = None
        self._rng_states: list[dict] = []
        self.resumed = ResumeState()  # where resume_or_load continues from
        self.sync_period = cfg.LOG_PERIOD  # metrics and the stop signal are agreed this often
        self.register_hooks(self.build_hooks())

    # ------------------------------------------------------------------ construction
    @classmethod
    def build_train_loader(cls, cfg):
        """The infinite training loader, by the task of ``DATASETS.NAMES`` (the datasets' ``task``
        attribute, see ``data.register_task``). Override for other data."""
        return build_train_loader(cfg)

    @classmethod
    def build_model(cls, cfg, stored: dict | None = None) -> nn.Module:
        """``build_model(cfg)``, logged; ``stored``: the entries of the checkpoint the model is
        rebuilt for (see ``Backbone.checkpoint_extra``). Override to build another model."""
        model = build_model(cfg, stored=stored)
        n = sum(p.numel() for p in model.parameters())
        parts = ", ".join(f"{name}={type(m).__name__}" for name, m in model.named_children())
        logger.info("Model: %s(%s), %s parameters", type(model).__name__, parts, f"{n:,}")
        return model

    def wrap_model(self, cfg, model: nn.Module) -> nn.Module:
        """For multi-process runs: BatchNorm statistics over the global batch
        (``MODEL.NORM.SYNC``), then DDP. Override to pass other DDP options."""
        return create_ddp_model(sync_batchnorm(cfg, model))

    @classmethod
    def build_optimizer(cls, cfg, model: nn.Module) -> torch.optim.Optimizer:
        """``solver.build_optimizer`` over the model's parameters. Override for other optimizers."""
        return build_optimizer(cfg, model)

    @classmethod
    def build_lr_scheduler(cls, cfg, optimizer, iters_per_epoch: int):
        """Per-iteration LR schedule of ``cfg.SOLVER``. Override for another schedule."""
        return build_lr_scheduler(cfg, optimizer, iters_per_epoch)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name: str) -> TestLoader:
        """The :class:`~cdnet_reid.data.TestLoader` (loader, meta) of ``dataset_name``, by its task."""
        return build_test_loader(cfg, dataset_name)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name: str, meta: dict) -> DatasetEvaluator:
        """The evaluator of ``dataset_name``'s task, given its test loader's ``meta``. Override for
        other metrics."""
        return build_evaluator(cfg, dataset_task(dataset_name).evaluator, **meta)

    def build_checkpointer(self, cfg) -> Checkpointer:
        """Checkpointer over model, optimizer, scheduler and this trainer's state."""
        return Checkpointer(unwrap(self.model), cfg.OUTPUT_DIR, save_to_disk=comm.is_main_process(),
                            optimizer=self.optimizer, scheduler=self.scheduler, trainer=self)

    def build_writers(self) -> list:
        """Console line, ``metrics.json`` and (when installed) TensorBoard, in ``OUTPUT_DIR``."""
        writers = [CommonMetricPrinter(self.max_iter, ims_per_batch=self.cfg.SOLVER.IMS_PER_BATCH),
                   JSONWriter(os.path.join(self.cfg.OUTPUT_DIR, "metrics.json"))]
        tb = build_tensorboard_writer(self.cfg.OUTPUT_DIR)
        return writers + ([tb] if tb is not None else [])

    def checkpoint_extra(self) -> dict:
        """Plain data stored in every checkpoint besides the state dicts: the config, the number
        of classes and what the model needs to be rebuilt (its ``checkpoint_extra()``, e.g. the
        genotype of a searched backbone)."""
        model = unwrap(self.model)
        extra = model.checkpoint_extra() if hasattr(model, "checkpoint_extra") else {}
        return {**extra, "config": self.cfg.dump(), "inference_config": inference_config(self.cfg),
                "num_classes": num_classes(self.cfg),
                "rng_states": self._rng_states or [rng_state()]}

    def after_epoch(self):
        # every rank's RNG state (dropout draws), gathered before the checkpointers run, which
        # write on the main process only
        self._rng_states = comm.all_gather(rng_state())
        super().after_epoch()

    def on_interrupt(self) -> str:
        """Write ``model_interrupted.pth`` after the current iteration (every rank takes part)."""
        self._rng_states = comm.all_gather(rng_state())
        path = os.path.join(self.cfg.OUTPUT_DIR, "model_interrupted.pth")
        if comm.is_main_process():
            self.checkpointer.save("model_interrupted", **hooks.training_state(self),
                                   **self.checkpoint_extra())
        comm.synchronize()
        return path

    @classmethod
    def validate_test_sets(cls, cfg) -> None:
        """Build every ``DATASETS.TESTS`` loader once before training, so a missing or malformed
        test set stops the run at start-up instead of after the first training epochs."""
        for name in cfg.DATASETS.TESTS:
            cls.build_test_loader(cfg, name)

    def build_hooks(self) -> list[HookBase]:
        """The default hooks, in order. The periodic checkpoint is written before the evaluation,
        so a failing evaluation cannot lose the epoch; a resume from it runs the hooks after it
        (evaluation, best checkpoint, writers) for that epoch first (exact resume). Writers come
        last so they see every metric of the iteration."""
        cfg = self.cfg
        hook_list: list[HookBase] = [
            hooks.IterationTimer(),
            hooks.LRScheduler(self.optimizer, self.scheduler),
            hooks.PeriodicCheckpointer(self.checkpointer, cfg.SOLVER.CHECKPOINT_PERIOD,
                                       max_to_keep=cfg.SOLVER.MAX_TO_KEEP, extra=self.checkpoint_extra),
            hooks.EvalHook(cfg.TEST.EVAL_PERIOD, self._evaluate, at_start=cfg.TEST.EVAL_AT_START),
        ]
        if cfg.TEST.BEST_METRIC:
            hook_list.append(hooks.BestCheckpointer(self.checkpointer, cfg.TEST.BEST_METRIC,
                                                    extra=self.checkpoint_extra))
        if comm.is_main_process():
            hook_list.append(hooks.PeriodicWriter(self.build_writers(), period=cfg.LOG_PERIOD))
            hook_list.append(hooks.PlotTrainingCurves(  # OUTPUT_DIR/training_curves.png
                os.path.join(cfg.OUTPUT_DIR, "metrics.json"),
                os.path.join(cfg.OUTPUT_DIR, "training_curves.png"), panels=self.curve_panels))
        return hook_list

    # ------------------------------------------------------------------ configuration helpers
    @classmethod
    def auto_scale_hyperparams(cls, cfg, data_loader):
        """``cfg`` with the number of classes of the training set (``modeling.with_num_classes``)."""
        return with_num_classes(cfg, data_loader.dataset.num_classes)

    @staticmethod
    def compute_iters_per_epoch(cfg, data_loader) -> int:
        """Iterations per epoch (:func:`~cdnet_reid.data.iters_per_epoch`)."""
        return iters_per_epoch(cfg, data_loader)

    # ------------------------------------------------------------------ running
    def resume_or_load(self, resume: bool = True, allow_changed: bool = False) -> None:
        """``resume``: restore everything from the last checkpoint of ``OUTPUT_DIR``; keys of the
        config that differ from the checkpoint's in :attr:`resume_critical` stop the run unless
        ``allow_changed``. Otherwise start from iteration 0 after ``MODEL.PRETRAIN_PATH`` and
        ``MODEL.WEIGHTS`` (:func:`~.resume.resume_or_initialise`)."""
        self.resumed = resume_or_initialise(self.cfg, self.checkpointer, resume=resume,
                                            allow_changed=allow_changed, critical=self.resume_critical,
                                            harmless=self.resume_harmless, device=self.device,
                                            iters_per_epoch=self.iters_per_epoch)
        self.start_iter = self.resumed.start_iter
        if hasattr(self.data_loader, "set_start_iter"):
            self.data_loader.set_start_iter(self.start_iter)
        elif self.start_iter > 0:
            logger.warning("The training loader has no set_start_iter(): the resumed data order "
                           "will differ from an uninterrupted run")

    def before_train(self):
        super().before_train()
        finish_checkpointed_epoch(self, self.resumed)

    def train(self):
        """Train from ``start_iter`` to the end; return the last evaluation results."""
        if self.start_iter >= self.max_iter and not self.resumed.written_by:
            logger.info("Training already finished (iteration %d of %d)", self.start_iter, self.max_iter)
            return self._last_eval_results
        super().train(self.start_iter, self.max_iter)
        return self._last_eval_results

    def _evaluate(self):
        self._last_eval_results = self.test(self.cfg, self.model)
        return self._last_eval_results

    @classmethod
    def test(cls, cfg, model: nn.Module) -> "OrderedDict[str, dict]":
        """Evaluate ``model`` on every ``DATASETS.TESTS`` dataset; log and return the results."""
        return evaluate_datasets(model, cfg.DATASETS.TESTS, lambda name: cls.build_test_loader(cfg, name),
                                 lambda name, meta: cls.build_evaluator(cfg, name, meta),
                                 flip_test=cfg.TEST.FLIP.ENABLED)

    @classmethod
    def build_model_for_eval(cls, cfg, resume: bool = False) -> nn.Module:
        """The model with trained weights for ``--eval-only`` (see :meth:`load_model_for_eval`;
        ``cfg`` must agree with the checkpoint on every key that changes the embeddings)."""
        return cls.load_model_for_eval(cfg, resume=resume)[0]

    @classmethod
    def load_model_for_eval(cls, cfg, resume: bool = False, *, config_keys=None, explicit=()) -> tuple:
        """``(model, cfg)``: the model with trained weights, ``MODEL.WEIGHTS`` or with ``resume``
        the last checkpoint of ``OUTPUT_DIR``, rebuilt by :func:`~cdnet_reid.modeling.load_model`
        from what the checkpoint stores (its inference config, genotype, number of classes), and
        the config to evaluate it with. ``config_keys`` and ``explicit``: see
        :func:`~cdnet_reid.modeling.resolve_model_config`."""
        path = (find_last_checkpoint(cfg.OUTPUT_DIR) if resume else None) or cfg.MODEL.WEIGHTS
        if not path:
            raise ConfigError("evaluation needs MODEL.WEIGHTS (or a checkpoint in OUTPUT_DIR to resume from)")
        return load_model(cfg, checkpoint=path, config_keys=config_keys,
                          explicit=explicit, build=cls.build_model)
