"""``CustomReID``: your own re-ID data, in Market-1501 naming or described by list files.

Without writing code: put the data in ``<DATASETS.ROOT>/<folder>/`` and set ::

    DATASETS:
      NAMES: ("CustomReID",)
      TESTS: ("CustomReID",)
      CUSTOM_DIR: my_reid          # relative to DATASETS.ROOT, or an absolute path

For several custom datasets in one run, subclass it with a fixed folder (two lines)::

    @DATASET_REGISTRY.register()
    class MyReID(CustomReID):
        folder = "my_reid"

Each split (``train``, ``query``, ``gallery``) is read from the first of these that exists:

* a list file ``<split>.csv`` or ``<split>.txt`` with one image per line, ``path,pid,camid``
  (``path pid camid`` also works in ``.txt`` files; an optional header line, ``#`` comments; paths
  relative to the folder or absolute);
* a folder of images named in the Market-1501 convention ``<pid>_c<camera>...``: ``bounding_box_train/``
  or ``train/``, ``query/``, ``bounding_box_test/`` or ``gallery/`` (cameras 1-based in the names).

pid -1 is junk and dropped everywhere; other pids are kept as they are in query/gallery and relabelled
0..N-1 (sorted) for training. Camera ids end up 0-based. A split that is absent is empty (a
training-only or test-only dataset is fine), but at least one must exist.
"""

import logging
import os
from collections.abc import Sequence

from ...config import CfgNode, register_config
from .bases import ReidDataset
from .layout import DatasetLayoutError, check_listed_files, first_existing, parse_market_dir, read_list_file
from .registry import DATASET_REGISTRY

logger = logging.getLogger(__name__)

__all__ = ["CustomReID", "add_custom_config"]

_SPLITS: Sequence[tuple[str, tuple[str, ...], tuple[str, ...]]] = (
    ("train", ("train.csv", "train.txt"), ("bounding_box_train", "train")),
    ("query", ("query.csv", "query.txt"), ("query",)),
    ("gallery", ("gallery.csv", "gallery.txt"), ("bounding_box_test", "gallery")),
)

LAYOUT = """  {base}/
    train.csv  query.csv  gallery.csv      lines 'path,pid,camid' (or .txt: 'path pid camid')
  or
    bounding_box_train/ (or train/)   query/   bounding_box_test/ (or gallery/)
                                           images named <pid>_c<camera>..., e.g. 0002_c1s1_000451_03.jpg"""


@register_config
def add_custom_config(cfg: CfgNode) -> None:
    """``DATASETS.CUSTOM_DIR``: the folder of ``CustomReID``, relative to ``DATASETS.ROOT`` or
    absolute (layouts: the module docstring)."""
    if "CUSTOM_DIR" not in cfg.DATASETS:
        cfg.DATASETS.CUSTOM_DIR = ""


@DATASET_REGISTRY.register()
class CustomReID(ReidDataset):
    """A re-ID dataset in ``<root>/<folder>/`` (see the module docstring for the layouts).

    Args:
        root: the data root (``DATASETS.ROOT``).
        folder: the dataset folder, relative to ``root`` or absolute; defaults to the class
            attribute ``folder`` (subclasses) or, when built from a config, ``DATASETS.CUSTOM_DIR``.
    """

    folder: str | None = None

    @classmethod
    def from_config(cls, cfg, *, root: str, **context) -> dict:
        return {"root": root} if cls.folder else {"root": root, "folder": cfg.DATASETS.CUSTOM_DIR}

    def __init__(self, root: str = "datasets", folder: str | None = None):
        name = type(self).__name__
        folder = folder or type(self).folder
        if not folder:
            raise ValueError(f"{name}: no dataset folder given; set DATASETS.CUSTOM_DIR (relative to "
                             f"DATASETS.ROOT or absolute), or subclass it with `folder = ...`")
        self.root = os.path.abspath(os.path.expanduser(root))
        base = os.path.join(self.root, os.path.expanduser(folder))
        self.dataset_dir = base
        layout = "Expected layout (see datasets/README.md):\n" + LAYOUT.format(base=base)
        if not os.path.isdir(base):
            raise DatasetLayoutError(f"{name}: dataset folder {base} does not exist.\n{layout}")
        splits = {}
        self.sources = {}
        for split, list_names, dir_names in _SPLITS:
            list_name = first_existing(base, list_names)
            dir_name = first_existing(base, dir_names)
            if list_name is not None and os.path.isfile(os.path.join(base, list_name)):
                path = os.path.join(base, list_name)
                items = read_list_file(path, dataset=name, base_dir=base)
                check_listed_files(items, path, dataset=name)
                self.sources[split] = list_name
            elif dir_name is not None and os.path.isdir(os.path.join(base, dir_name)):
                items = parse_market_dir(os.path.join(base, dir_name), dataset=name)
                self.sources[split] = dir_name + "/"
            else:
                items = []
            splits[split] = items
        if not self.sources:
            raise DatasetLayoutError(f"{name}: {base} holds no train/query/gallery list file or "
                                     f"image folder.\n{layout}")
        missing = [s for s, *_ in _SPLITS if s not in self.sources]
        logger.info("%s: read %s%s", name, ", ".join(f"{s} from {src}" for s, src in self.sources.items()),
                    f"; no {'/'.join(missing)} (empty)" if missing else "")
        super().__init__(splits["train"], splits["query"], splits["gallery"])
