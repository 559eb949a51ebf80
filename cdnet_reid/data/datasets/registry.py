"""The dataset registry (its own module, so that the dataset modules can import it without
importing the package that imports them)."""

from ...utils.registry import Registry

DATASET_REGISTRY = Registry("DATASET")
DATASET_REGISTRY.__doc__ = """
Registry for datasets, built by ``utils.registry.build`` with context ``root`` (the data root):
``cls(**cls.from_config(cfg, root=...))`` is an object with
``train``/``query``/``gallery`` lists of ``(img_path, pid, camid)`` (``task = "reid"``) or
``train``/``test`` lists of ``(image, label)`` (``task = "classification"``).
"""
