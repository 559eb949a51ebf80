"""Datasets, transforms, samplers and loaders."""

from .build import (build_dataset, build_reid_test_loader, build_reid_train_loader,
                    build_reid_train_set, resolve_data_root)
from .common import ImageDataset, SeededSampler, read_image
from .datasets import DATASET_REGISTRY, ReidDataset
from .samplers import IdentitySampler, InferenceSampler, TrainingSampler
from .transforms import build_transforms

__all__ = ["DATASET_REGISTRY", "IdentitySampler", "ImageDataset", "InferenceSampler",
           "ReidDataset", "SeededSampler", "TrainingSampler", "build_dataset",
           "build_reid_test_loader", "build_reid_train_loader", "build_reid_train_set",
           "build_transforms", "read_image", "resolve_data_root"]
