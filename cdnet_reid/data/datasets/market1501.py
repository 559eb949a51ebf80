"""Market-1501 (Zheng et al., ICCV 2015) and the shared parser of Market-style folder datasets."""

import os
from collections.abc import Sequence

from .bases import ReidDataset
from .layout import find_dataset_dir, parse_market_dir
from .registry import DATASET_REGISTRY

__all__ = ["Market1501", "MarketStyleDataset"]


class MarketStyleDataset(ReidDataset):
    """Three folders of images named ``<pid>_c<camera>...`` (train, query, gallery).

    Subclasses set the accepted folder names (``dir_candidates``, tried in order under the data
    root), the split folders and the sanity ranges of pids and (1-based) cameras. pid -1 (junk) is
    dropped from every split, every other pid is kept, cameras become 0-based, and training pids are
    relabelled 0..N-1 in sorted order (:class:`ReidDataset`).
    """

    dir_candidates: Sequence[str] = ()
    split_dirs: tuple[str, str, str] = ("bounding_box_train", "query", "bounding_box_test")
    pid_range: tuple[int, int] | None = None
    cam_range: tuple[int, int] | None = None
    layout = ""

    def __init__(self, root: str = "datasets"):
        self.root = os.path.abspath(os.path.expanduser(root))
        name = type(self).__name__
        self.dataset_dir = find_dataset_dir(self.root, self.dir_candidates, self.split_dirs,
                                            dataset=name, layout=self.layout)
        train, query, gallery = (
            parse_market_dir(os.path.join(self.dataset_dir, d), dataset=name,
                             pid_range=self.pid_range, cam_range=self.cam_range)
            for d in self.split_dirs)
        super().__init__(train, query, gallery)


@DATASET_REGISTRY.register()
class Market1501(MarketStyleDataset):
    """Market-1501: 751 training ids (12,936 images), 3,368 queries, 15,913 gallery images
    (pid 0 distractors kept, pid -1 junk dropped), 6 cameras.

    Folder ``Market-1501-v15.09.15/`` (the official archive) or ``market1501/`` (torchreid's
    ``market1501/Market-1501-v15.09.15/`` also works) under the data root.
    """

    dir_candidates = ("Market-1501-v15.09.15", "market1501", "Market-1501",
                      "market1501/Market-1501-v15.09.15")
    pid_range = (0, 1501)
    cam_range = (1, 6)
    layout = ("  {root}/Market-1501-v15.09.15/      (or market1501/)\n"
              "    bounding_box_train/   0002_c1s1_000451_03.jpg ...  (<pid>_c<camera>s<seq>_<frame>_<box>)\n"
              "    query/\n"
              "    bounding_box_test/    incl. 0000_* distractors (kept) and -1_* junk (dropped)")
