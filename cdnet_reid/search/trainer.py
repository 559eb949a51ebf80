"""``SearchTrainer``: the top-k sample architecture search (or DARTS) as a DefaultTrainer."""

import logging
import time

import torch
import torch.distributed as dist

from ..config import ConfigError
from ..data.build import build_reid_train_set
from ..data.common import ImageDataset
from ..engine import hooks
from ..engine.parallel import create_ddp_model, unwrap
from ..engine.trainer import TRAINER_REGISTRY, DefaultTrainer
from ..solver import LRMultiplier, epoch_multistep
from ..utils import comm
from .architect import first_order_grads, unrolled_grads
from .cost import build_cost_term
from .data import build_pk_loader, split_per_identity, subset
from .hooks import CURVE_PANELS, GenotypeHook
from .supernet import Supernet

logger = logging.getLogger(__name__)


def _search_seed(cfg) -> int:
    return cfg.SEED if cfg.SEED >= 0 else 0


@TRAINER_REGISTRY.register()
class SearchTrainer(DefaultTrainer):
    """Alternates, every iteration, a weight step on a batch of the weight part of the training
    set and an architecture step on a batch of the architecture part (weights first, as in the
    paper). The architecture step computes gradients for the logits α only and updates them with
    their own optimizer and schedule; the weight optimizer never sees α.
    """

    curve_panels = CURVE_PANELS
    resume_critical = DefaultTrainer.resume_critical + ("SEARCH.",)
    resume_harmless = DefaultTrainer.resume_harmless + ("SEARCH.GENOTYPE_PERIOD", "SEARCH.AUTHORS_FORMAT")

    def __init__(self, cfg):
        if cfg.SEARCH.UNROLLED and cfg.SEARCH.MODE != "softmax":
            raise ConfigError("SEARCH.UNROLLED (second-order DARTS) needs SEARCH.MODE softmax, "
                              f"got {cfg.SEARCH.MODE!r}")
        if cfg.SEARCH.UNROLLED and cfg.SOLVER.OPT != "SGD":
            raise ConfigError("SEARCH.UNROLLED (second-order DARTS) unrolls an SGD step of the weights: "
                              f"it needs SOLVER.OPT SGD, got {cfg.SOLVER.OPT!r}")
        self.search_data = self.split_data(cfg)
        super().__init__(cfg)
        model = unwrap(self.model)
        self.alphas = getattr(model, "arch_parameters", list)()
        if not self.alphas:
            raise ConfigError("TRAINER.NAME SearchTrainer needs a model with architecture parameters "
                              f"(a supernet backbone: CDNetSupernet or CNetSupernet), got "
                              f"MODEL.BACKBONE.NAME={cfg.MODEL.BACKBONE.NAME!r}")
        self.supernet = next(m for m in model.modules() if isinstance(m, Supernet))
        self.arch_loader = self.build_arch_loader(cfg)
        self.arch_optimizer = self.build_arch_optimizer(cfg, self.alphas)
        self.arch_scheduler = self.build_arch_scheduler(cfg, self.arch_optimizer, self.iters_per_epoch)
        self.checkpointer.add_checkpointable("arch_optimizer", self.arch_optimizer)
        self.checkpointer.add_checkpointable("arch_scheduler", self.arch_scheduler)
        self.register_hooks([hooks.LRScheduler(self.arch_optimizer, self.arch_scheduler, name="arch_lr")],
                            before=hooks.EvalHook)
        self.cost_term = build_cost_term(cfg, self.supernet)  # SEARCH.COST (None: the paper's search)
        self.register_hooks([GenotypeHook(self.supernet, cfg.OUTPUT_DIR, cfg.SEARCH.GENOTYPE_PERIOD,
                                          authors_format=cfg.SEARCH.AUTHORS_FORMAT, cost=self.cost_term,
                                          meta={"search": f"{cfg.SEARCH.MODE} (k={cfg.SEARCH.TOPK})",
                                                "datasets": list(cfg.DATASETS.NAMES)})],
                            before=hooks.PeriodicWriter)

    # ------------------------------------------------------------------ construction
    @staticmethod
    def split_data(cfg) -> tuple[ImageDataset, list[int], list[int]]:
        """``(training set, weight-part indices, architecture-part indices)``, split and logged once."""
        full = build_reid_train_set(cfg)
        weight_idx, arch_idx = split_per_identity(full.pids, cfg.SEARCH.ARCH_IMAGES_PER_ID,
                                                  cfg.SEARCH.SPLIT, seed=_search_seed(cfg))
        if comm.is_main_process():
            shared = len(set(weight_idx) & set(arch_idx))
            logger.info("Search split (%s): %d images for the weights, %d for the architecture "
                        "(%d in both)", cfg.SEARCH.SPLIT, len(weight_idx), len(arch_idx), shared)
        return full, weight_idx, arch_idx

    def build_train_loader(self, cfg):
        """P×K loader over the weight part of the split."""
        full, weight_idx, _ = self.search_data
        return build_pk_loader(cfg, subset(full, weight_idx), seed=_search_seed(cfg))

    def build_arch_loader(self, cfg):
        """P×K loader over the architecture part (its own sampler stream, cycled forever)."""
        full, _, arch_idx = self.search_data
        return build_pk_loader(cfg, subset(full, arch_idx), seed=_search_seed(cfg) + 1)

    @classmethod
    def build_optimizer(cls, cfg, model):
        """The weight optimizer of ``cfg.SOLVER``; α is excluded (by identity)."""
        from ..solver import build_optimizer

        return build_optimizer(cfg, model, exclude=getattr(model, "arch_parameters", list)())

    @classmethod
    def build_arch_optimizer(cls, cfg, alphas) -> torch.optim.Optimizer:
        """Adam over the architecture parameters ``alphas`` (``SEARCH.ARCH_*``)."""
        s = cfg.SEARCH
        return torch.optim.Adam(alphas, lr=s.ARCH_LR, betas=tuple(s.ARCH_BETAS),
                                weight_decay=s.ARCH_WEIGHT_DECAY)

    @classmethod
    def build_arch_scheduler(cls, cfg, optimizer, iters_per_epoch: int) -> LRMultiplier:
        """α's LR: ``ARCH_LR × ARCH_GAMMA^k`` after k of ``ARCH_MILESTONES`` (1-based epochs)."""
        s = cfg.SEARCH
        values = [s.ARCH_GAMMA ** k for k in range(len(s.ARCH_MILESTONES) + 1)]
        sched = epoch_multistep(values, list(s.ARCH_MILESTONES), iters_per_epoch, cfg.SOLVER.MAX_EPOCH)
        return LRMultiplier(optimizer, sched, cfg.SOLVER.MAX_EPOCH * iters_per_epoch)

    def wrap_model(self, cfg, model):
        # top-k runs only k candidates per layer: the others have no gradient in a step
        return create_ddp_model(model, find_unused_parameters=cfg.SEARCH.MODE == "topk")

    def resume_or_load(self, resume: bool = True, allow_changed: bool = False) -> None:
        super().resume_or_load(resume, allow_changed)
        self.arch_loader.set_start_iter(self.start_iter)

    # ------------------------------------------------------------------ one iteration
    def run_step(self) -> None:
        start = time.perf_counter()
        data, arch_data = self.next_batch(), self.next_batch(self.arch_loader)
        data_time = time.perf_counter() - start

        # 1. weight step on the weight part (α is not in this optimizer)
        loss_dict = self.forward_losses(data)
        self.optimizer.zero_grad(set_to_none=True)
        self.backward_and_step(sum(loss_dict.values()), self.optimizer)

        # 2. architecture step on the architecture part: gradients for α only
        arch_losses = self.arch_step(data, arch_data)
        self.write_metrics(loss_dict, data_time, prefixed={"arch/": arch_losses})

    def arch_step(self, train_data, arch_data):
        """One update of α; returns the architecture batch's losses. Runs in full precision on the
        unwrapped model (no DDP hooks); α's gradient is averaged over ranks explicitly."""
        module = unwrap(self.model)
        alphas = self.alphas
        if self.cfg.SEARCH.UNROLLED:
            box = {}

            def loss_fn(batch):
                out = module(batch)
                if batch is arch_data:
                    box["losses"] = out
                return sum(out.values())

            grads = unrolled_grads(module, loss_fn, train_data, arch_data, alphas, self.optimizer)
            arch_losses = box["losses"]
        else:
            arch_losses = module(arch_data)
            grads = first_order_grads(sum(arch_losses.values()), alphas)
        if self.cost_term is not None:  # + the gradient of the budget penalty (search/cost.py)
            grads = self.cost_term.add_to_grads(grads, alphas, arch_losses, self.storage)
        if comm.get_world_size() > 1:
            for g in grads:
                dist.all_reduce(g)
                g /= comm.get_world_size()
        for a, g in zip(alphas, grads):
            a.grad = g
        self.arch_optimizer.step()
        self.arch_optimizer.zero_grad(set_to_none=True)
        return arch_losses
