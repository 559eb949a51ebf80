"""Dataset registry and the built-in datasets.

Every entry of ``DATASET_REGISTRY`` is a class constructed as ``Cls(root=DATA_ROOT, **kwargs)``
whose instances expose ``train``, ``query`` and ``gallery`` lists of ``(img_path, pid, camid)``
(see :class:`~cdnet_reid.data.datasets.bases.ReidDataset`). Classification datasets expose
``train`` and ``test`` lists of ``(img_path_or_array, label)`` instead.
"""

from fvcore.common.registry import Registry

DATASET_REGISTRY = Registry("DATASET")
DATASET_REGISTRY.__doc__ = """
Registry for datasets. ``DATASET_REGISTRY.get(name)(root=..., **kwargs)`` returns an object with
``train``/``query``/``gallery`` lists of ``(img_path, pid, camid)`` (``task = "reid"``) or
``train``/``test`` lists of ``(image, label)`` (``task = "classification"``).
"""

from .bases import ClassificationDataset, ReidDataset  # noqa: E402
from .synthetic import SyntheticReID  # noqa: E402,F401  (registers "SyntheticReID")
# Real datasets (registered under their class names) and the generic custom dataset.
from .layout import DatasetLayoutError  # noqa: E402
from .market1501 import Market1501, MarketStyleDataset  # noqa: E402
from .dukemtmc import DukeMTMC  # noqa: E402
from .msmt17 import MSMT17  # noqa: E402
from .custom import CustomReID  # noqa: E402
from .cifar import CIFAR100  # noqa: E402
from .imagenet import ImageNet  # noqa: E402

__all__ = ["DATASET_REGISTRY", "ReidDataset", "SyntheticReID", "ClassificationDataset",
           "DatasetLayoutError", "Market1501", "MarketStyleDataset", "DukeMTMC", "MSMT17",
           "CustomReID", "CIFAR100", "ImageNet"]
