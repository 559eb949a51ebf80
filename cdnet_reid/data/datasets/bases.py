"""Base classes of the datasets: re-ID (``train``/``query``/``gallery`` lists of
``(img_path, pid, camid)``) and classification (``train``/``test`` lists of ``(image, label)``)."""

import logging
from collections.abc import Sequence
from typing import Any

from tabulate import tabulate

from .layout import DatasetError

logger = logging.getLogger(__name__)

Item = tuple[str, int, int]


def relabel_pids(items: Sequence[Item]) -> list[Item]:
    """Map the pids of ``items`` onto 0..N-1 in **sorted** pid order (platform independent)."""
    pid2label = {pid: label for label, pid in enumerate(sorted({pid for _, pid, _ in items}))}
    return [(path, pid2label[pid], camid) for path, pid, camid in items]


class ReidDataset:
    """A re-ID dataset split into ``train``, ``query`` and ``gallery``.

    Subclasses parse their files and call ``super().__init__(train, query, gallery)``. Training
    pids are relabelled to 0..N-1 in sorted order; query and gallery keep their raw pids (only
    equality matters for evaluation). Camera ids are 0-based integers.

    ``task`` tells the trainer which loaders and evaluator to build; ``from_config(cfg, root=...)``
    returns the constructor keyword arguments: the data ``root`` and per-dataset options read from
    the config (e.g. ``DATASETS.MSMT17_COMBINE_VAL``), used by :func:`cdnet_reid.data.build_dataset`.
    """

    task = "reid"

    @classmethod
    def from_config(cls, cfg, *, root: str, **context) -> dict:
        """Constructor keyword arguments: the data ``root`` and options read from ``cfg`` (none by
        default)."""
        return {"root": root}

    def __init__(self, train: Sequence[Item], query: Sequence[Item], gallery: Sequence[Item],
                 *, relabel: bool = True, name: str = ""):
        self.name = name or type(self).__name__
        self.train = relabel_pids(train) if relabel else list(train)
        self.query = list(query)
        self.gallery = list(gallery)

    @staticmethod
    def stats(items: Sequence[Item]) -> tuple[int, int, int]:
        """(number of ids, number of images, number of cameras) of a split."""
        return (len({p for _, p, _ in items}), len(items), len({c for _, _, c in items}))

    @property
    def num_train_pids(self) -> int:
        return self.stats(self.train)[0]

    @property
    def num_train_cams(self) -> int:
        return self.stats(self.train)[2]

    def check_test_split(self) -> None:
        """Raise :class:`DatasetError` unless the re-ID protocol can be computed on ``query`` and
        ``gallery``: both non-empty and at least one query with a match (a gallery image of its pid
        from another camera; same-camera images are ignored). Queries without a match are left out
        of the metrics by the protocol; their number is logged."""
        where = f" ({self.dataset_dir})" if getattr(self, "dataset_dir", None) else ""
        if not self.query or not self.gallery:
            raise DatasetError(f"{self.name}{where} cannot be evaluated: it has {len(self.query)} query "
                               f"and {len(self.gallery)} gallery images")
        cams_of: dict = {}
        for _, pid, cam in self.gallery:
            cams_of.setdefault(pid, set()).add(cam)
        matched = sum(1 for _, pid, cam in self.query if cams_of.get(pid, set()) - {cam})
        if matched == 0:
            raise DatasetError(f"{self.name}{where} cannot be evaluated: none of its {len(self.query)} query "
                               f"images has a match in the gallery (the same pid from another camera)")
        if matched < len(self.query):
            logger.warning("%s: %d of %d query images have no match in the gallery (the same pid from "
                           "another camera); the metrics leave them out", self.name,
                           len(self.query) - matched, len(self.query))

    def summary(self) -> str:
        """A table of ids / images / cameras per split."""
        rows = [[split, *self.stats(getattr(self, split))] for split in ("train", "query", "gallery")]
        return tabulate(rows, headers=["subset", "# ids", "# images", "# cameras"], tablefmt="pipe")

    def log_summary(self) -> None:
        logger.info("Dataset %s loaded:\n%s", self.name, self.summary())


class ClassificationDataset:
    """An image-classification dataset split into ``train`` and ``test``.

    Items are ``(image, label)`` where ``image`` is a file path or an ``H x W x 3`` uint8 RGB array
    and ``label`` is in ``0 .. len(classes) - 1``. ``classes`` holds the class names in label order.
    """

    task = "classification"

    @classmethod
    def from_config(cls, cfg, *, root: str, **context) -> dict:
        """Constructor keyword arguments: the data ``root`` and options read from ``cfg`` (none by
        default)."""
        return {"root": root}

    def __init__(self, train: Sequence[tuple[Any, int]], test: Sequence[tuple[Any, int]],
                 classes: Sequence[str], *, name: str = ""):
        self.name = name or type(self).__name__
        self.train = list(train)
        self.test = list(test)
        self.classes = list(classes)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def summary(self) -> str:
        """A table of classes / images per split."""
        rows = [[split, len({lbl for _, lbl in items}), len(items)]
                for split, items in (("train", self.train), ("test", self.test))]
        return tabulate(rows, headers=["subset", "# classes", "# images"], tablefmt="pipe")

    def log_summary(self) -> None:
        logger.info("Dataset %s loaded (%d classes):\n%s", self.name, self.num_classes, self.summary())
