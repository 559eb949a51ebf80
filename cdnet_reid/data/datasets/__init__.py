"""Dataset registry and the built-in datasets.

Every entry of ``DATASET_REGISTRY`` is a class constructed as ``Cls(root=DATA_ROOT, **kwargs)``
whose instances expose ``train``, ``query`` and ``gallery`` lists of ``(img_path, pid, camid)``
(see :class:`~cdnet_reid.data.datasets.bases.ReidDataset`). Classification datasets expose
``train`` and ``test`` lists of ``(img_path_or_array, label)`` instead.
"""

from .bases import ClassificationDataset, ReidDataset
from .cifar import CIFAR100
from .custom import CustomReID
from .dukemtmc import DukeMTMC
from .imagenet import ImageNet

# Real datasets (registered under their class names) and the generic custom dataset.
from .layout import DatasetError, DatasetLayoutError
from .market1501 import Market1501, MarketStyleDataset
from .msmt17 import MSMT17
from .registry import DATASET_REGISTRY
from .synthetic import SyntheticReID  # noqa: F401  (registers "SyntheticReID")

__all__ = ["DATASET_REGISTRY", "ReidDataset", "SyntheticReID", "ClassificationDataset",
           "DatasetError", "DatasetLayoutError", "Market1501", "MarketStyleDataset", "DukeMTMC", "MSMT17",
           "CustomReID", "CIFAR100", "ImageNet"]
