"""Data loaders for training (infinite, P x K or shuffled) and testing (query then gallery)."""

import logging
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch.utils.data import BatchSampler, DataLoader

from ..utils import comm
from ..utils.registry import Registry, build, lookup
from .common import ImageDataset, SeededSampler, concat_train_items
from .datasets import DATASET_REGISTRY
from .samplers import IdentitySampler, InferenceSampler, TrainingSampler
from .transforms import build_transforms

logger = logging.getLogger(__name__)

ENV_DATA_ROOT = "CDNET_DATASETS"
DATASET_KEY = "DATASETS.NAMES/TESTS entry"


def resolve_data_root(cfg) -> str:
    """``DATASETS.ROOT``, else ``$CDNET_DATASETS``, else ``datasets`` (relative to the cwd)."""
    return cfg.DATASETS.ROOT or os.environ.get(ENV_DATA_ROOT, "") or "datasets"


def dataset_class(name: str):
    """The class registered as ``name`` in ``DATASET_REGISTRY`` (an error lists the names)."""
    return lookup(DATASET_REGISTRY, name, DATASET_KEY)


def build_dataset(cfg, name: str):
    """The registered dataset ``name`` under the configured data root.

    Built by the one protocol (``utils.registry.build``) with context ``root``: the dataset's
    ``from_config(cfg, root=...)`` returns the root and its own options read from the config
    (e.g. MSMT17's ``DATASETS.MSMT17_COMBINE_VAL``).
    """
    return build(DATASET_REGISTRY, name, DATASET_KEY, cfg, root=resolve_data_root(cfg))


def _loader_kwargs(cfg) -> dict:
    workers = cfg.DATALOADER.NUM_WORKERS
    # A private generator: creating a loader iterator must not consume the global torch RNG
    # (augmentations are seeded per sample anyway, see SeededSampler), or resuming would shift
    # the dropout masks of the training step.
    return dict(num_workers=workers, pin_memory=torch.cuda.is_available(),
                persistent_workers=workers > 0, generator=torch.Generator().manual_seed(0))


def build_reid_train_set(cfg) -> ImageDataset:
    """The training items of every ``DATASETS.NAMES`` dataset (pids namespaced), transformed."""
    splits = []
    for name in cfg.DATASETS.NAMES:
        task = getattr(dataset_class(name), "task", "reid")
        if task != "reid":
            raise ValueError(f"DATASETS.NAMES: {name} is a {task} dataset; it cannot be "
                             f"combined with re-ID datasets ({list(cfg.DATASETS.NAMES)})")
        ds = build_dataset(cfg, name)
        if comm.is_main_process():
            ds.log_summary()
        splits.append((name, ds.train))
    items = concat_train_items(splits)
    if not items:
        raise ValueError(f"the training sets {list(cfg.DATASETS.NAMES)} contain no images")
    if len(splits) > 1 and comm.is_main_process():
        logger.info("Training on %d datasets %s together: %d identities (namespaced), %d images",
                    len(splits), [n for n, _ in splits], len({p for _, p, _ in items}), len(items))
    return ImageDataset(items, build_transforms(cfg, is_train=True),
                        on_bad_image=cfg.DATALOADER.ON_BAD_IMAGE, replace="same_id")


def build_train_sampler(cfg, dataset: ImageDataset):
    """The index sampler named by ``DATALOADER.SAMPLER_TRAIN`` (infinite)."""
    name = cfg.DATALOADER.SAMPLER_TRAIN
    seed = cfg.SEED if cfg.SEED >= 0 else None
    if name == "IdentitySampler":
        return IdentitySampler(dataset.pids, cfg.SOLVER.IMS_PER_BATCH, cfg.DATALOADER.NUM_INSTANCE, seed)
    if name == "TrainingSampler":
        return TrainingSampler(len(dataset), shuffle=True, seed=seed)
    raise ValueError(f"DATALOADER.SAMPLER_TRAIN must be 'IdentitySampler' or 'TrainingSampler', got {name!r}")


class InfiniteLoader(DataLoader):
    """A training loader over an infinite, seeded sample stream that can be repositioned: after
    ``set_start_iter(i)`` (before iterating) it yields what an uninterrupted run yields from its
    ``i``-th batch on, augmentation draws included, which is what makes a resume exact."""

    def __init__(self, dataset, sampler: SeededSampler, batch_size: int, **kwargs):
        super().__init__(dataset, batch_sampler=BatchSampler(sampler, batch_size, drop_last=True),
                         **kwargs)
        self.images_per_batch = batch_size

    @property
    def epoch_length(self) -> int | None:
        """Batches per epoch as the index sampler states it (``IdentitySampler.epoch_length``),
        or None when it states none (plain shuffling)."""
        return getattr(self.batch_sampler.sampler.sampler, "epoch_length", None)

    def set_start(self, sample_index: int) -> None:
        """Continue the stream at this rank's ``sample_index``-th sample."""
        self.batch_sampler.sampler.set_start(sample_index)

    def set_start_iter(self, iteration: int) -> None:
        """Continue the stream at batch ``iteration``."""
        self.set_start(iteration * self.images_per_batch)


def iters_per_epoch(cfg, data_loader) -> int:
    """``SOLVER.ITERS_PER_EPOCH`` when set, else the epoch the training sampler states (the
    P x K sampler's, as the original code counts it), else training images // batch."""
    if cfg.SOLVER.ITERS_PER_EPOCH > 0:
        return cfg.SOLVER.ITERS_PER_EPOCH
    stated = getattr(data_loader, "epoch_length", None)
    if stated is not None:
        logger.info("%d iterations per epoch (the epoch of the P x K sampler over %d images)",
                    stated, len(data_loader.dataset))
        return max(1, stated)
    return max(1, len(data_loader.dataset) // cfg.SOLVER.IMS_PER_BATCH)


def build_infinite_loader(cfg, dataset, sampler) -> InfiniteLoader:
    """Training loader over an infinite index ``sampler``: batches of ``IMS_PER_BATCH //
    world_size`` images per rank, each image with a seed for its augmentation given by its
    position in the stream (:class:`SeededSampler`)."""
    world = comm.get_world_size()
    if cfg.SOLVER.IMS_PER_BATCH % world:
        raise ValueError(f"SOLVER.IMS_PER_BATCH={cfg.SOLVER.IMS_PER_BATCH} is not divisible by the "
                         f"number of processes ({world})")
    seeded = SeededSampler(sampler, seed=sampler.seed, rank=comm.get_rank())
    return InfiniteLoader(dataset, seeded, cfg.SOLVER.IMS_PER_BATCH // world, **_loader_kwargs(cfg))


def build_reid_train_loader(cfg) -> DataLoader:
    """Infinite re-ID training loader (see :func:`build_infinite_loader`);
    ``loader.dataset.num_classes`` gives the number of identities."""
    dataset = build_reid_train_set(cfg)
    return build_infinite_loader(cfg, dataset, build_train_sampler(cfg, dataset))


class TestLoader(NamedTuple):
    """What every test-loader builder returns: the ``loader`` and ``meta``, what the task's
    evaluator needs besides the outputs (``from_config(cfg, **meta)``; e.g. ``num_query``)."""
    loader: DataLoader
    meta: dict[str, Any]


def build_reid_test_loader(cfg, dataset_name: str) -> TestLoader:
    """Loader over ``query + gallery`` of ``dataset_name`` (in that order), sharded over ranks;
    ``meta["num_query"]`` is the number of query images."""
    ds = build_dataset(cfg, dataset_name)
    if comm.is_main_process():
        ds.log_summary()
    ds.check_test_split()
    dataset = ImageDataset(ds.query + ds.gallery, build_transforms(cfg, is_train=False),
                           on_bad_image=cfg.DATALOADER.ON_BAD_IMAGE, replace="placeholder")
    return TestLoader(build_inference_loader(cfg, dataset), {"num_query": len(ds.query)})


class Task(NamedTuple):
    """How the datasets of one task (their ``task`` attribute) are loaded and evaluated:
    ``train_loader(cfg)``, the infinite loader over ``DATASETS.NAMES`` (``loader.dataset.num_classes``
    set); ``test_loader(cfg, dataset_name)``, a :class:`TestLoader`; ``evaluator``, the name of the
    evaluator class (in ``evaluation.EVALUATOR_REGISTRY``) built with the test loader's ``meta``."""
    train_loader: Callable
    test_loader: Callable
    evaluator: str


TASK_REGISTRY = Registry("TASK")
TASK_REGISTRY.__doc__ = "Dataset tasks (a dataset's ``task`` attribute) -> :class:`Task`."


def register_task(name: str, *, train_loader: Callable, test_loader: Callable, evaluator: str) -> None:
    """Register dataset task ``name``: its loaders and its evaluator, in one place."""
    TASK_REGISTRY.register(name)(Task(train_loader, test_loader, evaluator))


def dataset_task(name: str) -> Task:
    """The :class:`Task` of dataset ``name`` (its class attribute ``task``, "reid" when absent)."""
    return lookup(TASK_REGISTRY, getattr(dataset_class(name), "task", "reid"), f"the task of dataset {name}")


def train_task(cfg) -> Task:
    """The task of the training datasets ``DATASETS.NAMES``; they must all have the same one."""
    tasks = {name: getattr(dataset_class(name), "task", "reid") for name in cfg.DATASETS.NAMES}
    if not tasks:
        raise ValueError("DATASETS.NAMES is empty")
    if len(set(tasks.values())) > 1:
        raise ValueError(f"DATASETS.NAMES mixes tasks: {tasks}; train on datasets of one task")
    return dataset_task(next(iter(tasks)))


def build_train_loader(cfg) -> DataLoader:
    """The infinite training loader of ``DATASETS.NAMES``, by their task."""
    return train_task(cfg).train_loader(cfg)


def build_test_loader(cfg, dataset_name: str) -> TestLoader:
    """The :class:`TestLoader` over the test data of ``dataset_name``, by its task."""
    return dataset_task(dataset_name).test_loader(cfg, dataset_name)


register_task("reid", train_loader=build_reid_train_loader, test_loader=build_reid_test_loader,
              evaluator="ReidEvaluator")


def build_inference_loader(cfg, dataset) -> DataLoader:
    """Finite loader over ``dataset`` in order, exact shards per rank, ``TEST.IMS_PER_BATCH`` in all."""
    batch = max(1, cfg.TEST.IMS_PER_BATCH // comm.get_world_size())
    batch_sampler = BatchSampler(InferenceSampler(len(dataset)), batch, drop_last=False)
    kwargs = _loader_kwargs(cfg)
    kwargs["persistent_workers"] = False
    return DataLoader(dataset, batch_sampler=batch_sampler, **kwargs)
