"""ImageNet (ILSVRC-2012 classification) as ImageFolder trees."""

import os

from .bases import ClassificationDataset
from .layout import find_dataset_dir, scan_image_folder
from .registry import DATASET_REGISTRY

__all__ = ["ImageNet"]


@DATASET_REGISTRY.register()
class ImageNet(ClassificationDataset):
    """ILSVRC-2012: ~1.28 M training and 50,000 validation images, 1,000 classes.

    ``train/`` and ``val/`` are ImageFolder trees with one folder per synset (``n01440764/`` ...);
    the validation images must be sorted into those folders. Labels follow the sorted training
    folder names; ``val/`` may not hold a class that ``train/`` lacks. The ``test`` split of this
    dataset is ``val/``.

    Folder ``ImageNet/``, ``imagenet/``, ``ILSVRC2012/`` or ``imagenet/train_val/`` (the original
    code's layout) under the data root.
    """

    dir_candidates = ("ImageNet", "imagenet", "ILSVRC2012", "imagenet/train_val")
    layout = ("  {root}/ImageNet/      (or imagenet/, ILSVRC2012/)\n"
              "    train/n01440764/n01440764_10026.JPEG ...   one folder per class\n"
              "    val/n01440764/ILSVRC2012_val_00000293.JPEG ...   sorted into the same class folders")

    def __init__(self, root: str = "datasets"):
        self.root = os.path.abspath(os.path.expanduser(root))
        self.dataset_dir = find_dataset_dir(self.root, self.dir_candidates, ("train", "val"),
                                            dataset="ImageNet", layout=self.layout)
        train, classes = scan_image_folder(os.path.join(self.dataset_dir, "train"), dataset="ImageNet")
        test, _ = scan_image_folder(os.path.join(self.dataset_dir, "val"), dataset="ImageNet",
                                    class_to_idx={c: i for i, c in enumerate(classes)})
        super().__init__(train, test, classes)
