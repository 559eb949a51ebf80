"""CIFAR-100 (Krizhevsky, 2009): the official ``cifar-100-python`` pickles or an ImageFolder tree."""

import codecs
import logging
import os
import pickle
from typing import Any

import numpy as np

try:
    from numpy._core.multiarray import _reconstruct  # numpy >= 2
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct

from .bases import ClassificationDataset
from .layout import DatasetLayoutError, find_dataset_dir, scan_image_folder
from .registry import DATASET_REGISTRY

logger = logging.getLogger(__name__)

__all__ = ["CIFAR100", "load_cifar_pickle"]


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as Python 3 protocol-2 pickles use it for ``bytes``, latin-1 only."""
    if encoding != "latin1":
        raise pickle.UnpicklingError(f"forbidden global _codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, "latin1")


#: The only globals an official CIFAR file (a dict of byte strings, lists and uint8 numpy arrays)
#: refers to: numpy's array reconstruction (numpy 1.x and 2.x module names) and, in files re-saved
#: by Python 3 with protocol 2, ``_codecs.encode`` for byte strings.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles plain data and numpy arrays only: any other global (a function or class that a
    crafted file would call, e.g. ``os.system``) stops the loading before anything runs."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"forbidden global {module}.{name} (a CIFAR file holds only lists, byte strings, "
                f"numbers and numpy arrays; this one may try to run code)") from None


def load_cifar_pickle(path: str) -> dict[str, Any]:
    """One file of the official python version, with ``str`` keys.

    The files are Python 2 pickles of dicts with byte-string keys (``b"data"``, ``b"fine_labels"``,
    ``b"fine_label_names"``, ...); they are read with ``encoding="bytes"`` as torchvision does, by
    an unpickler that resolves only numpy's array reconstruction (:data:`_ALLOWED_GLOBALS`), so a
    crafted file cannot run code: it raises ``ValueError`` naming the file and the global.
    """
    try:
        with open(path, "rb") as f:
            d = _CifarUnpickler(f, encoding="bytes").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise ValueError(f"CIFAR100: cannot read {path}: {e}") from e
    if not isinstance(d, dict):
        raise ValueError(f"CIFAR100: {path} does not hold a dict")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in d.items()}


def _decode(names) -> list[str]:
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]


@DATASET_REGISTRY.register()
class CIFAR100(ClassificationDataset):
    """CIFAR-100: 50,000 training and 10,000 test images of 32 x 32 pixels, 100 (fine) classes.

    Read from the first of these under the data root:

    * ``cifar-100-python/{train,test,meta}`` -- the official python archive, read directly: labels
      are the ``fine_labels`` (0..99, in the order of ``meta``'s ``fine_label_names``); images are
      kept in memory as uint8 arrays;
    * ``cifar100_combine/`` or ``cifar100/`` with ``train/`` and ``test/`` ImageFolder trees (one
      folder per class; labels in sorted folder-name order, as the original code).
    """

    pickle_dirs = ("cifar-100-python", "cifar100/cifar-100-python", "CIFAR100/cifar-100-python")
    folder_dirs = ("cifar100_combine", "cifar100", "CIFAR100")
    layout = ("  {root}/cifar-100-python/    the official python archive (cifar-100-python.tar.gz), read directly\n"
              "    train  test  meta\n"
              "  or an ImageFolder tree:\n"
              "  {root}/cifar100_combine/     (or cifar100/)\n"
              "    train/<class>/*.png   test/<class>/*.png")

    def __init__(self, root: str = "datasets"):
        self.root = os.path.abspath(os.path.expanduser(root))
        try:
            self.dataset_dir = find_dataset_dir(self.root, self.pickle_dirs, ("train", "test", "meta"),
                                                dataset="CIFAR100", layout=self.layout)
        except DatasetLayoutError as pickle_error:
            try:
                self.dataset_dir = find_dataset_dir(self.root, self.folder_dirs, ("train", "test"),
                                                    dataset="CIFAR100", layout=self.layout)
            except DatasetLayoutError as folder_error:
                # report the more specific problem (an incomplete folder beats "not found")
                err = pickle_error if "incomplete" in str(pickle_error) else folder_error
                raise err from None
            self.format = "folder"
            train, classes = scan_image_folder(os.path.join(self.dataset_dir, "train"), dataset="CIFAR100")
            test, _ = scan_image_folder(os.path.join(self.dataset_dir, "test"), dataset="CIFAR100",
                                        class_to_idx={c: i for i, c in enumerate(classes)})
        else:
            self.format = "pickle"
            meta = load_cifar_pickle(os.path.join(self.dataset_dir, "meta"))
            if "fine_label_names" not in meta:
                raise ValueError(f"CIFAR100: {os.path.join(self.dataset_dir, 'meta')} has no "
                                 f"fine_label_names (keys: {sorted(meta)})")
            classes = _decode(meta["fine_label_names"])
            train = self._read_split("train", len(classes))
            test = self._read_split("test", len(classes))
        super().__init__(train, test, classes)

    def _read_split(self, split: str, num_classes: int) -> list[tuple[np.ndarray, int]]:
        path = os.path.join(self.dataset_dir, split)
        d = load_cifar_pickle(path)
        for key in ("data", "fine_labels"):
            if key not in d:
                raise ValueError(f"CIFAR100: {path} has no {key!r} entry (keys: {sorted(d)})")
        data = np.asarray(d["data"], dtype=np.uint8)
        labels = [int(x) for x in d["fine_labels"]]
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != len(labels):
            raise ValueError(f"CIFAR100: {path}: data of shape {data.shape} does not match "
                             f"{len(labels)} labels of 3 x 32 x 32 images")
        bad = [x for x in labels if not 0 <= x < num_classes]
        if bad:
            raise ValueError(f"CIFAR100: {path}: label {bad[0]} outside 0..{num_classes - 1}")
        images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))  # N x H x W x C
        return [(images[i], labels[i]) for i in range(len(labels))]
