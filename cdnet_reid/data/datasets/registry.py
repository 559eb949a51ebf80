"""The dataset registry (its own module, so that the dataset modules can import it without
importing the package that imports them)."""

from fvcore.common.registry import Registry

DATASET_REGISTRY = Registry("DATASET")
DATASET_REGISTRY.__doc__ = """
Registry for datasets. ``DATASET_REGISTRY.get(name)(root=..., **kwargs)`` returns an object with
``train``/``query``/``gallery`` lists of ``(img_path, pid, camid)`` (``task = "reid"``) or
``train``/``test`` lists of ``(image, label)`` (``task = "classification"``).
"""
