"""Datasets, transforms, samplers and loaders.

A dataset's ``task`` attribute (``"reid"``, ``"classification"``) selects how it is loaded and
evaluated: one :func:`register_task` call per task names its loaders and its evaluator.
"""

from .build import (
                    TASK_REGISTRY,
                    InfiniteLoader,
                    Task,
                    TestLoader,
                    build_dataset,
                    build_inference_loader,
                    build_infinite_loader,
                    build_reid_test_loader,
                    build_reid_train_loader,
                    build_reid_train_set,
                    build_test_loader,
                    build_train_loader,
                    dataset_task,
                    iters_per_epoch,
                    register_task,
                    resolve_data_root,
                    train_task,
)
from .classification import build_cls_test_loader, build_cls_train_loader
from .common import ImageDataset, SeededSampler, load_image, read_image
from .datasets import DATASET_REGISTRY, ClassificationDataset, ReidDataset
from .samplers import IdentitySampler, InferenceSampler, TrainingSampler
from .transforms import build_transforms

__all__ = ["DATASET_REGISTRY", "TASK_REGISTRY", "Task", "ClassificationDataset", "IdentitySampler", "ImageDataset",
           "InferenceSampler", "InfiniteLoader", "ReidDataset", "SeededSampler", "TestLoader",
           "TrainingSampler", "build_cls_test_loader", "build_cls_train_loader", "build_dataset",
           "build_inference_loader", "build_infinite_loader", "build_reid_test_loader",
           "build_reid_train_loader", "build_reid_train_set", "build_test_loader", "iters_per_epoch",
           "build_train_loader", "build_transforms", "dataset_task", "load_image", "read_image",
           "register_task", "resolve_data_root", "train_task"]
