"""``DefaultTrainer``: the standard recipe assembled from overridable ``build_*`` methods."""

import logging
import os
from collections import OrderedDict
from typing import List, Optional

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..config import CfgNode
from ..data import (build_cls_test_loader, build_cls_train_loader, build_reid_test_loader,
                    build_reid_train_loader, dataset_task, train_task)
from ..data.common import SeededSampler
from ..evaluation import ClassificationEvaluator, ReidEvaluator, inference_on_dataset, print_results
from ..modeling import build_model
from ..solver import build_lr_scheduler, build_optimizer
from ..utils import comm
from ..utils.checkpoint import Checkpointer
from ..utils.pretrain import load_pretrained
from ..utils.events import CommonMetricPrinter, JSONWriter, build_tensorboard_writer
from . import hooks
from .defaults import write_config
from .train_loop import HookBase, SimpleTrainer

logger = logging.getLogger(__name__)


def create_ddp_model(model: nn.Module, **kwargs) -> nn.Module:
    """Wrap ``model`` in DistributedDataParallel when more than one process runs."""
    if comm.get_world_size() == 1:
        return model
    if next(model.parameters()).device.type == "cuda":
        kwargs.setdefault("device_ids", [torch.cuda.current_device()])
    # broadcast_buffers (DDP's default) keeps BN statistics identical on every rank, so the
    # sharded evaluation uses exactly the statistics of the checkpoint that rank 0 saves.
    return DistributedDataParallel(model, **kwargs)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


class DefaultTrainer(SimpleTrainer):
    """Trainer with the standard recipe: data, model, optimizer, LR schedule, checkpoints, hooks.

    Customise by overriding a ``build_*`` method, or filter/extend ``build_hooks()``::

        class Trainer(DefaultTrainer):
            def build_hooks(self):
                return super().build_hooks() + [MyHook()]

    or, without subclassing, ``trainer.register_hooks([MyHook()], before=hooks.PeriodicWriter)``.
    """

    def __init__(self, cfg: CfgNode):
        data_loader = self.build_train_loader(cfg)
        cfg = self.auto_scale_hyperparams(cfg, data_loader)
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
        self._last_eval_results: Optional[OrderedDict] = None
        self.register_hooks(self.build_hooks())

    # ------------------------------------------------------------------ construction
    @classmethod
    def build_train_loader(cls, cfg):
        """The infinite training loader, by the task of ``DATASETS.NAMES`` (the datasets' ``task``
        attribute): ``build_reid_train_loader`` (re-ID) or ``build_cls_train_loader``
        (classification). Override for other data."""
        if train_task(cfg) == "classification":
            return build_cls_train_loader(cfg)
        return build_reid_train_loader(cfg)

    @classmethod
    def build_model(cls, cfg) -> nn.Module:
        """``build_model(cfg)``, logged. Override to build another model."""
        model = build_model(cfg)
        logger.debug("Model:\n%s", model)
        n = sum(p.numel() for p in model.parameters())
        logger.info("Model parameters: %s", f"{n:,}")
        return model

    def wrap_model(self, cfg, model: nn.Module) -> nn.Module:
        """DDP wrapping for multi-process runs. Override to pass other DDP options."""
        return create_ddp_model(model)

    @classmethod
    def build_optimizer(cls, cfg, model: nn.Module) -> torch.optim.Optimizer:
        """``solver.build_optimizer`` over the model's parameters. Override for other optimizers."""
        return build_optimizer(cfg, model)

    @classmethod
    def build_lr_scheduler(cls, cfg, optimizer, iters_per_epoch: int):
        """Per-iteration LR schedule of ``cfg.SOLVER``. Override for another schedule."""
        return build_lr_scheduler(cfg, optimizer, iters_per_epoch)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name: str):
        """``(loader, num_query)`` over query + gallery of ``dataset_name``."""
        return build_reid_test_loader(cfg, dataset_name)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name: str):
        """``(loader, evaluator)`` for ``dataset_name``: re-ID ranking metrics, or exact top-1/top-5
        for a classification dataset. Override for other tasks or metrics."""
        if dataset_task(dataset_name) == "classification":
            return build_cls_test_loader(cfg, dataset_name), ClassificationEvaluator(topk=(1, 5))
        loader, num_query = cls.build_test_loader(cfg, dataset_name)
        rr, qe = cfg.TEST.RERANK, cfg.TEST.AQE
        evaluator = ReidEvaluator(num_query, metric=cfg.TEST.METRIC, feat_norm=cfg.TEST.FEAT_NORM,
                                  max_rank=cfg.TEST.MAX_RANK, rerank=rr.ENABLED, rerank_k1=rr.K1,
                                  rerank_k2=rr.K2, rerank_lambda=rr.LAMBDA, aqe=qe.ENABLED,
                                  aqe_times=qe.QE_TIME, aqe_k=qe.QE_K, aqe_alpha=qe.ALPHA)
        return loader, evaluator

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
        """Plain data stored in every checkpoint besides the state dicts (config, classes and,
        for searched backbones, the genotype the network was built from)."""
        extra = {"config": self.cfg.dump(), "num_classes": self.cfg.MODEL.HEADS.NUM_CLASSES}
        genotype = getattr(getattr(unwrap(self.model), "backbone", None), "genotype", None)
        if callable(genotype):  # a supernet derives its current genotype
            genotype = genotype()
        if genotype is not None:
            extra["genotype"] = genotype.to_dict()
        return extra

    def build_hooks(self) -> List[HookBase]:
        """The default hooks, in order. Evaluation runs before the checkpointers, so a checkpoint
        holds the state after that epoch's evaluation (exact resume); writers come last so they
        see every metric of the iteration."""
        cfg = self.cfg
        hook_list: List[HookBase] = [
            hooks.IterationTimer(),
            hooks.LRScheduler(self.optimizer, self.scheduler),
            hooks.EvalHook(cfg.TEST.EVAL_PERIOD, self._evaluate, at_start=cfg.TEST.EVAL_AT_START),
        ]
        if cfg.TEST.BEST_METRIC:
            hook_list.append(hooks.BestCheckpointer(self.checkpointer, cfg.TEST.BEST_METRIC,
                                                    extra=self.checkpoint_extra))
        hook_list.append(hooks.PeriodicCheckpointer(self.checkpointer, cfg.SOLVER.CHECKPOINT_PERIOD,
                                                    max_to_keep=cfg.SOLVER.MAX_TO_KEEP,
                                                    extra=self.checkpoint_extra))
        if comm.is_main_process():
            hook_list.append(hooks.PeriodicWriter(self.build_writers(), period=cfg.LOG_PERIOD))
            hook_list.append(hooks.PlotTrainingCurves(  # OUTPUT_DIR/training_curves.png
                os.path.join(cfg.OUTPUT_DIR, "metrics.json"),
                os.path.join(cfg.OUTPUT_DIR, "training_curves.png")))
        return hook_list

    # ------------------------------------------------------------------ configuration helpers
    @classmethod
    def auto_scale_hyperparams(cls, cfg, data_loader):
        """Fill ``MODEL.HEADS.NUM_CLASSES`` from the training set when it is 0."""
        num_classes = data_loader.dataset.num_classes
        if cfg.MODEL.HEADS.NUM_CLASSES == num_classes:
            return cfg
        cfg = cfg.clone()
        cfg.defrost()
        if cfg.MODEL.HEADS.NUM_CLASSES not in (0, num_classes):
            logger.warning("MODEL.HEADS.NUM_CLASSES=%d but the training set has %d identities; using %d",
                           cfg.MODEL.HEADS.NUM_CLASSES, num_classes, num_classes)
        cfg.MODEL.HEADS.NUM_CLASSES = num_classes
        cfg.freeze()
        if cfg.OUTPUT_DIR:
            write_config(cfg)
        return cfg

    @staticmethod
    def compute_iters_per_epoch(cfg, data_loader) -> int:
        if cfg.SOLVER.ITERS_PER_EPOCH > 0:
            return cfg.SOLVER.ITERS_PER_EPOCH
        return max(1, len(data_loader.dataset) // cfg.SOLVER.IMS_PER_BATCH)

    # ------------------------------------------------------------------ running
    def resume_or_load(self, resume: bool = True) -> None:
        """``resume``: restore everything from the last checkpoint of ``OUTPUT_DIR`` (if any).
        Otherwise initialise from ``MODEL.PRETRAIN_PATH`` (if set: matching non-classifier
        tensors), then load the weights of ``MODEL.WEIGHTS`` (if set), and start from iteration 0."""
        if resume and self.checkpointer.has_checkpoint():
            path = self.checkpointer.get_checkpoint_file()
            extra = self.checkpointer.load(path)
            self.start_iter = int(extra.get("iteration", 0))
            logger.info("Resumed from %s at iteration %d (epoch %d)", path, self.start_iter,
                        self.start_iter // self.iters_per_epoch)
            if self.cfg.MODEL.PRETRAIN_PATH:
                logger.info("MODEL.PRETRAIN_PATH is not applied when resuming")
        else:
            if resume:
                logger.info("--resume: no checkpoint in %s, starting from scratch", self.cfg.OUTPUT_DIR)
            if self.cfg.MODEL.PRETRAIN_PATH:
                load_pretrained(unwrap(self.model), self.cfg.MODEL.PRETRAIN_PATH)
            if self.cfg.MODEL.WEIGHTS:
                self.checkpointer.load(self.cfg.MODEL.WEIGHTS, checkpointables=[])
            self.start_iter = 0
        sampler = getattr(getattr(self.data_loader, "batch_sampler", None), "sampler", None)
        if isinstance(sampler, SeededSampler):
            sampler.set_start(self.start_iter * self.data_loader.batch_sampler.batch_size)
        elif self.start_iter > 0:
            logger.warning("The training loader has no SeededSampler: the resumed data order "
                           "will differ from an uninterrupted run")

    def train(self):
        """Train from ``start_iter`` to the end; return the last evaluation results."""
        if self.start_iter >= self.max_iter:
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
        results = OrderedDict()
        for name in cfg.DATASETS.TESTS:
            loader, evaluator = cls.build_evaluator(cfg, name)
            res = inference_on_dataset(model, loader, evaluator, flip_test=cfg.TEST.FLIP.ENABLED)
            if comm.is_main_process():
                results[name] = res
        if comm.is_main_process():
            print_results(results)
        return results

    @classmethod
    def build_model_for_eval(cls, cfg, resume: bool = False) -> nn.Module:
        """The model with trained weights for ``--eval-only``: ``MODEL.WEIGHTS``, or with
        ``resume`` the last checkpoint of ``OUTPUT_DIR``. The classifier size comes from the
        checkpoint when ``MODEL.HEADS.NUM_CLASSES`` is 0, and a searched backbone is built from the
        genotype stored in the checkpoint (so evaluation does not depend on the genotype file)."""
        path = cfg.MODEL.WEIGHTS
        if resume:
            ck = Checkpointer(nn.Linear(1, 1), cfg.OUTPUT_DIR)
            if ck.has_checkpoint():
                path = ck.get_checkpoint_file()
        if not path:
            raise ValueError("--eval-only needs MODEL.WEIGHTS (or --resume with a checkpoint in OUTPUT_DIR)")
        extra = Checkpointer(nn.Linear(1, 1))._load_file(path)
        cfg = cfg.clone()
        cfg.defrost()
        if cfg.MODEL.HEADS.NUM_CLASSES == 0 and extra.get("num_classes"):
            cfg.MODEL.HEADS.NUM_CLASSES = int(extra["num_classes"])
        genotype = extra.get("genotype")
        if genotype and cfg.MODEL.BACKBONE.NAME in ("CDNet", "CNet"):
            cfg.MODEL.BACKBONE.GENOTYPE = _genotype_file(genotype, path)
        cfg.freeze()
        model = cls.build_model(cfg)
        Checkpointer(model).load(path, checkpointables=[])
        return model


def _genotype_file(genotype: dict, checkpoint: str) -> str:
    """A genotype file (in the temp folder, named by content) holding a checkpoint's genotype."""
    import hashlib
    import json
    import tempfile

    from ..modeling.cdnet import Genotype, save_genotype

    geno = Genotype.from_dict(genotype, source=f"checkpoint {checkpoint}")
    digest = hashlib.sha1(json.dumps(geno.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
    target = os.path.join(tempfile.gettempdir(), f"cdnet_reid_genotype_{digest}.json")
    if not os.path.exists(target):
        save_genotype(geno, target)
    logger.info("Building the backbone from the genotype stored in %s: %s", checkpoint,
                [list(e) for e in geno.layers])
    return target
