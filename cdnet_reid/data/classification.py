"""Loaders of the classification task (CIFAR-100, ImageNet), registered for the datasets whose
``task`` is ``"classification"`` (:class:`~cdnet_reid.data.datasets.ClassificationDataset`).

* training: the ``train`` split of ``DATASETS.NAMES`` (one classification dataset), transformed with
  ``build_transforms(cfg, is_train=True)``, an infinite **shuffled** :class:`TrainingSampler` (whatever
  ``DATALOADER.SAMPLER_TRAIN`` says: P x K batches make no sense for classification), reproducible
  per-sample augmentation (:class:`SeededSampler`) and ``IMS_PER_BATCH // world_size`` images per
  rank (drop_last);
* evaluation: the ``test`` split, exact contiguous shards per rank (:class:`InferenceSampler`).
"""

import logging

from torch.utils.data import DataLoader

from ..utils import comm
from .build import TestLoader, build_dataset, build_inference_loader, build_infinite_loader, register_task
from .common import ImageDataset
from .samplers import TrainingSampler
from .transforms import build_transforms

logger = logging.getLogger(__name__)

__all__ = ["build_cls_train_loader", "build_cls_test_loader"]


def _split(cfg, name: str, is_train: bool) -> ImageDataset:
    """The ``train`` or ``test`` split of classification dataset ``name``, transformed."""
    ds = build_dataset(cfg, name)
    if comm.is_main_process():
        ds.log_summary()
    items = ds.train if is_train else ds.test
    if not items:
        raise ValueError(f"{name} cannot be {'trained on' if is_train else 'evaluated'}: its "
                         f"{'training' if is_train else 'test'} split is empty")
    return ImageDataset(items, build_transforms(cfg, is_train=is_train),
                        on_bad_image=cfg.DATALOADER.ON_BAD_IMAGE,
                        replace="same_id" if is_train else "placeholder", num_classes=ds.num_classes)


def build_cls_train_loader(cfg) -> DataLoader:
    """Infinite shuffled loader over the training split; ``loader.dataset.num_classes`` is the
    number of classes of the dataset."""
    names = list(cfg.DATASETS.NAMES)
    if len(names) != 1:
        raise ValueError(f"classification trains on one dataset, DATASETS.NAMES has {names}")
    dataset = _split(cfg, names[0], is_train=True)
    sampler = TrainingSampler(len(dataset), shuffle=True, seed=cfg.SEED if cfg.SEED >= 0 else None)
    return build_infinite_loader(cfg, dataset, sampler)


def build_cls_test_loader(cfg, dataset_name: str) -> TestLoader:
    """Loader over the ``test`` split of ``dataset_name``, sharded over ranks (no padding); the
    evaluator needs no ``meta``."""
    return TestLoader(build_inference_loader(cfg, _split(cfg, dataset_name, is_train=False)), {})


register_task("classification", train_loader=build_cls_train_loader, test_loader=build_cls_test_loader,
              evaluator="ClassificationEvaluator")
