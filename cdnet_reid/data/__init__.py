"""Datasets, transforms, samplers and loaders.

A dataset's ``task`` attribute (``"reid"``, ``"classification"``) selects how it is loaded
(:func:`register_task_loaders`) and evaluated (``evaluation.EVALUATOR_REGISTRY``).
"""

from .build import (InfiniteLoader, TestLoader, build_dataset, build_inference_loader,
                    build_infinite_loader, build_reid_test_loader, build_reid_train_loader,
                    build_reid_train_set, build_test_loader, build_train_loader, dataset_task,
                    register_task_loaders, resolve_data_root, train_task)
from .classification import build_cls_test_loader, build_cls_train_loader
from .common import ImageDataset, SeededSampler, load_image, read_image
from .datasets import DATASET_REGISTRY, ClassificationDataset, ReidDataset
from .samplers import IdentitySampler, InferenceSampler, TrainingSampler
from .transforms import build_transforms

__all__ = ["DATASET_REGISTRY", "ClassificationDataset", "IdentitySampler", "ImageDataset",
           "InferenceSampler", "InfiniteLoader", "ReidDataset", "SeededSampler", "TestLoader",
           "TrainingSampler", "build_cls_test_loader", "build_cls_train_loader", "build_dataset",
           "build_inference_loader", "build_infinite_loader", "build_reid_test_loader",
           "build_reid_train_loader", "build_reid_train_set", "build_test_loader",
           "build_train_loader", "build_transforms", "dataset_task", "load_image", "read_image",
           "register_task_loaders", "resolve_data_root", "train_task"]
