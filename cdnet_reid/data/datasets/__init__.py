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
``train``/``query``/``gallery`` lists of ``(img_path, pid, camid)``.
"""

from .bases import ReidDataset  # noqa: E402
from .synthetic import SyntheticReID  # noqa: E402,F401  (registers "SyntheticReID")

__all__ = ["DATASET_REGISTRY", "ReidDataset", "SyntheticReID"]
