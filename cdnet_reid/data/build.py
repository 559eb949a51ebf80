"""Data loaders for training (infinite, P x K or shuffled) and testing (query then gallery)."""

import logging
import os
from typing import Callable, Dict, NamedTuple, Optional, Tuple

import torch
from torch.utils.data import BatchSampler, DataLoader

from ..utils import comm
from ..utils.registry import lookup
from .common import ImageDataset, SeededSampler, concat_train_items
from .datasets import DATASET_REGISTRY
from .samplers import IdentitySampler, InferenceSampler, TrainingSampler
from .transforms import build_transforms

logger = logging.getLogger(__name__)

ENV_DATA_ROOT = "CDNET_DATASETS"


def resolve_data_root(cfg) -> str:
    """``DATASETS.ROOT``, else ``$CDNET_DATASETS``, else ``datasets`` (relative to the cwd)."""
    return cfg.DATASETS.ROOT or os.environ.get(ENV_DATA_ROOT, "") or "datasets"


def dataset_class(name: str):
    """The class registered as ``name`` in ``DATASET_REGISTRY`` (an error lists the names)."""
    return lookup(DATASET_REGISTRY, name, "DATASETS.NAMES/TESTS entry")


def dataset_task(name: str) -> str:
    """The task of dataset ``name``: its class attribute ``task`` ("reid" when absent)."""
    return getattr(dataset_class(name), "task", "reid")


def build_dataset(cfg, name: str):
    """The registered dataset ``name`` under the configured data root.

    Constructed as ``cls(root=<data root>, **cls.from_config(cfg))``: a dataset's optional
    ``from_config`` classmethod returns its per-dataset options read from the config (e.g. MSMT17's
    ``DATASETS.MSMT17_COMBINE_VAL``); classes without it get ``root`` only.
    """
    cls = dataset_class(name)
    from_config = getattr(cls, "from_config", None)
    kwargs = from_config(cfg) if from_config is not None else {}
    return cls(root=resolve_data_root(cfg), **kwargs)


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
        if dataset_task(name) != "reid":
            raise ValueError(f"DATASETS.NAMES: {name} is a {dataset_task(name)} dataset; it cannot be "
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
    def epoch_length(self) -> Optional[int]:
        """Batches per epoch as the index sampler states it (``IdentitySampler.epoch_length``),
        or None when it states none (plain shuffling)."""
        return getattr(self.batch_sampler.sampler.sampler, "epoch_length", None)

    def set_start(self, sample_index: int) -> None:
        """Continue the stream at this rank's ``sample_index``-th sample."""
        self.batch_sampler.sampler.set_start(sample_index)

    def set_start_iter(self, iteration: int) -> None:
        """Continue the stream at batch ``iteration``."""
        self.set_start(iteration * self.images_per_batch)


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
    loader: DataLoader
    num_query: int


def build_reid_test_loader(cfg, dataset_name: str) -> TestLoader:
    """Loader over ``query + gallery`` of ``dataset_name`` (in that order), sharded over ranks."""
    ds = build_dataset(cfg, dataset_name)
    if comm.is_main_process():
        ds.log_summary()
    ds.check_test_split()
    dataset = ImageDataset(ds.query + ds.gallery, build_transforms(cfg, is_train=False),
                           on_bad_image=cfg.DATALOADER.ON_BAD_IMAGE, replace="placeholder")
    return TestLoader(build_inference_loader(cfg, dataset), len(ds.query))


def _reid_test_loader(cfg, dataset_name: str) -> Tuple[DataLoader, dict]:
    loader, num_query = build_reid_test_loader(cfg, dataset_name)
    return loader, {"num_query": num_query}


class TaskLoaders(NamedTuple):
    """How the datasets of one task are loaded: ``train(cfg) -> infinite loader`` over
    ``DATASETS.NAMES`` (``loader.dataset.num_classes`` set), and ``test(cfg, dataset_name) ->
    (loader, meta)``, where ``meta`` is what the task's evaluator needs besides the outputs (the
    number of query images of a re-ID test set)."""
    train: Callable
    test: Callable


_TASK_LOADERS: Dict[str, TaskLoaders] = {}


def register_task_loaders(task: str, *, train: Callable, test: Callable) -> None:
    """Teach :func:`build_train_loader` / :func:`build_test_loader` the datasets whose ``task``
    attribute is ``task`` (the evaluator comes from ``EVALUATOR_REGISTRY`` under the same name)."""
    _TASK_LOADERS[task] = TaskLoaders(train, test)


def task_loaders(task: str) -> TaskLoaders:
    if task not in _TASK_LOADERS:
        raise KeyError(f"no loaders are registered for the dataset task {task!r}; known tasks: "
                       f"{sorted(_TASK_LOADERS)} (see data.build.register_task_loaders)")
    return _TASK_LOADERS[task]


def train_task(cfg) -> str:
    """The task of the training datasets ``DATASETS.NAMES``; they must all have the same one."""
    tasks = {name: dataset_task(name) for name in cfg.DATASETS.NAMES}
    if not tasks:
        raise ValueError("DATASETS.NAMES is empty")
    if len(set(tasks.values())) > 1:
        raise ValueError(f"DATASETS.NAMES mixes tasks: {tasks}; train on datasets of one task")
    return next(iter(tasks.values()))


def build_train_loader(cfg) -> DataLoader:
    """The infinite training loader of ``DATASETS.NAMES``, by their task."""
    return task_loaders(train_task(cfg)).train(cfg)


def build_test_loader(cfg, dataset_name: str) -> Tuple[DataLoader, dict]:
    """``(loader, meta)`` over the test data of ``dataset_name``, by its task."""
    return task_loaders(dataset_task(dataset_name)).test(cfg, dataset_name)


register_task_loaders("reid", train=build_reid_train_loader, test=_reid_test_loader)


def build_inference_loader(cfg, dataset) -> DataLoader:
    """Finite loader over ``dataset`` in order, exact shards per rank, ``TEST.IMS_PER_BATCH`` in all."""
    batch = max(1, cfg.TEST.IMS_PER_BATCH // comm.get_world_size())
    batch_sampler = BatchSampler(InferenceSampler(len(dataset)), batch, drop_last=False)
    kwargs = _loader_kwargs(cfg)
    kwargs["persistent_workers"] = False
    return DataLoader(dataset, batch_sampler=batch_sampler, **kwargs)
