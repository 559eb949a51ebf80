"""Datasets, transforms, samplers and loaders."""

from .build import (build_dataset, build_reid_test_loader, build_reid_train_loader,
                    build_reid_train_set, dataset_task, resolve_data_root)
from .classification import build_cls_test_loader, build_cls_train_loader, train_task
from .common import ImageDataset, SeededSampler, load_image, read_image
from .datasets import DATASET_REGISTRY, ClassificationDataset, ReidDataset
from .samplers import IdentitySampler, InferenceSampler, TrainingSampler
from .transforms import build_transforms

__all__ = ["DATASET_REGISTRY", "IdentitySampler", "ImageDataset", "InferenceSampler",
           "ReidDataset", "SeededSampler", "TrainingSampler", "build_dataset",
           "build_reid_test_loader", "build_reid_train_loader", "build_reid_train_set",
           "build_transforms", "read_image", "resolve_data_root",
           "ClassificationDataset", "build_cls_test_loader", "build_cls_train_loader", "dataset_task",
           "load_image", "train_task"]
