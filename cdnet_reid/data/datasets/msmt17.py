"""MSMT17 (Wei et al., CVPR 2018), read from its list files."""

import logging
import os

from ...config import CfgNode, register_config
from .bases import ReidDataset
from .layout import DatasetError, DatasetLayoutError, check_listed_files, find_dataset_dir, first_existing
from .registry import DATASET_REGISTRY

logger = logging.getLogger(__name__)

__all__ = ["MSMT17", "add_msmt17_config"]


@register_config
def add_msmt17_config(cfg: CfgNode) -> None:
    """``DATASETS.MSMT17_COMBINE_VAL``: also train on ``list_val.txt`` (the full 32,621-image
    training set); off = ``list_train.txt`` only (30,248 images), the common protocol and the
    paper's."""
    if "MSMT17_COMBINE_VAL" not in cfg.DATASETS:
        cfg.DATASETS.MSMT17_COMBINE_VAL = False

Item = tuple[str, int, int]


def read_msmt_list(list_path: str, image_dir: str) -> list[Item]:
    """``<relative/path.jpg> <pid>`` lines -> ``(image_dir/relative/path.jpg, pid, camid)``.

    The camera is the third ``_``-separated field of the file name (``0000_000_01_0303morning_0015_0.jpg``
    -> camera 01), returned 0-based. Blank lines are skipped; a malformed line raises ``DatasetError``
    naming the file and line.
    """
    items: list[Item] = []
    with open(list_path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.rsplit(None, 1)
            try:
                rel, pid = parts[0], int(parts[1])
                cam = int(os.path.basename(rel).split("_")[2])
            except (IndexError, ValueError):
                raise DatasetError(f"MSMT17: {list_path}:{lineno}: expected '<pid>/<pid>_<n>_<camera>_...jpg "
                                 f"<pid>', got {line!r}") from None
            if pid < 0 or cam < 1:
                raise DatasetError(f"MSMT17: {list_path}:{lineno}: bad pid {pid} or camera {cam}")
            items.append((os.path.join(image_dir, rel), pid, cam - 1))
    return items


@DATASET_REGISTRY.register()
class MSMT17(ReidDataset):
    """MSMT17 (V1): 1,041 training ids, 11,659 queries, 82,161 gallery images, 15 cameras.

    Train = ``list_train.txt`` (30,248 images, the common protocol); with ``combine_val=True``
    (config ``DATASETS.MSMT17_COMBINE_VAL``) ``list_val.txt`` (2,373 images of the same identities)
    is added, i.e. the full official training set of 32,621 images. Query = ``list_query.txt``,
    gallery = ``list_gallery.txt``; the list pids are used as given (training pids are relabelled
    in sorted order, which keeps them), cameras are 0-based.

    Folder ``MSMT17_V1/`` (the official archive) or ``MSMT17/`` under the data root; the V2 image
    folders ``mask_train_v2/`` and ``mask_test_v2/`` are accepted in place of ``train/``/``test/``.
    """

    dir_candidates = ("MSMT17_V1", "MSMT17", "msmt17", "msmt17/MSMT17_V1", "MSMT17_V2",
                      "msmt17/MSMT17_V2")
    image_dirs = (("train", "mask_train_v2"), ("test", "mask_test_v2"))
    layout = ("  {root}/MSMT17_V1/      (or MSMT17/)\n"
              "    train/   0000/0000_000_01_0303morning_0015_0.jpg ...\n"
              "    test/    0000/0000_000_01_0303morning_0036_0.jpg ...\n"
              "    list_train.txt   list_val.txt   list_query.txt   list_gallery.txt\n"
              "                     (lines '<folder>/<file>.jpg <pid>', paths relative to train/ or test/)")

    @classmethod
    def from_config(cls, cfg, *, root: str, **context) -> dict:
        return {"root": root, "combine_val": bool(cfg.DATASETS.MSMT17_COMBINE_VAL)}

    def __init__(self, root: str = "datasets", combine_val: bool = False):
        self.root = os.path.abspath(os.path.expanduser(root))
        self.combine_val = bool(combine_val)
        lists = ["list_train.txt", "list_query.txt", "list_gallery.txt"]
        if self.combine_val:
            lists.insert(1, "list_val.txt")
        self.dataset_dir = d = find_dataset_dir(self.root, self.dir_candidates,
                                                [*self.image_dirs, *lists], dataset="MSMT17",
                                                layout=self.layout)
        train_dir, test_dir = (os.path.join(d, first_existing(d, alts)) for alts in self.image_dirs)

        def read(name: str, image_dir: str) -> list[Item]:
            path = os.path.join(d, name)
            items = read_msmt_list(path, image_dir)
            if not items:
                raise DatasetLayoutError(f"MSMT17: {path} lists no images")
            check_listed_files(items, path, dataset="MSMT17",
                               layout="Expected layout:\n" + self.layout.format(root=self.root))
            return items

        train = read("list_train.txt", train_dir)
        if self.combine_val:
            val = read("list_val.txt", train_dir)
            logger.info("MSMT17: adding list_val.txt (%d images) to the %d training images",
                        len(val), len(train))
            train = train + val
        super().__init__(train, read("list_query.txt", test_dir), read("list_gallery.txt", test_dir))
