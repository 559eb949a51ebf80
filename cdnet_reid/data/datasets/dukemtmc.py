"""DukeMTMC-reID (Zheng et al., ICCV 2017; the re-ID subset of DukeMTMC)."""

from .market1501 import MarketStyleDataset
from .registry import DATASET_REGISTRY

__all__ = ["DukeMTMC"]


@DATASET_REGISTRY.register()
class DukeMTMC(MarketStyleDataset):
    """DukeMTMC-reID: 702 training ids (16,522 images), 2,228 queries, 17,661 gallery images
    (702 test ids + 408 distractor ids), 8 cameras. File names ``0005_c2_f0046985.jpg``.

    Folder ``DukeMTMC-reID/`` (the official archive) or ``dukemtmc/`` (also ``dukemtmc-reid/`` and
    torchreid's ``dukemtmc-reid/DukeMTMC-reID/``) under the data root.
    """

    dir_candidates = ("DukeMTMC-reID", "dukemtmc", "dukemtmc-reid", "dukemtmc-reid/DukeMTMC-reID",
                      "dukemtmc/DukeMTMC-reID")
    pid_range = (0, 99999)
    cam_range = (1, 8)
    layout = ("  {root}/DukeMTMC-reID/      (or dukemtmc/)\n"
              "    bounding_box_train/   0005_c2_f0046985.jpg ...  (<pid>_c<camera>_f<frame>)\n"
              "    query/\n"
              "    bounding_box_test/")
