"""Map-style datasets over lists of items, and the sampler wrapper that makes augmentation
reproducible.

Randomness of the training augmentations is tied to the **position of a sample in the training
stream**, not to the worker process that happens to load it: :class:`SeededSampler` yields
``(index, seed)`` pairs and :class:`ImageDataset` seeds ``random``/``torch`` with that seed before
transforming the image. A run therefore produces the same batches for any number of workers, and a
run resumed at iteration *t* sees exactly the batches the uninterrupted run saw from *t* on.
"""

import logging
import random
from typing import Callable, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler, get_worker_info

logger = logging.getLogger(__name__)


def read_image(path: str) -> Image.Image:
    """Open an image file as RGB; a file that cannot be decoded raises an error naming it."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {path}") from None
    except Exception as e:  # PIL raises several types for corrupt files
        raise OSError(f"cannot decode image {path}: {e}") from e


class SeededSampler(Sampler):
    """Wraps an (infinite) index sampler; yields ``(index, seed)`` with a per-position seed.

    ``start`` skips that many positions of the stream (used when resuming). Skipping touches
    indices only, no images, so it is cheap.
    """

    def __init__(self, sampler: Sampler, seed: int, rank: int = 0):
        self.sampler = sampler
        self.seed = int(seed)
        self.rank = rank
        self.start = 0

    def set_start(self, position: int) -> None:
        self.start = int(position)

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        for pos, index in enumerate(self.sampler):
            if pos < self.start:
                continue
            # A deterministic, well-mixed 31-bit seed per (run seed, rank, position).
            yield index, hash((self.seed, self.rank, pos)) & 0x7FFFFFFF


class ImageDataset(Dataset):
    """``(img_path, pid, camid)`` items -> dicts ``images, targets, camids, img_paths``.

    Keys may be plain indices or ``(index, seed)`` pairs from :class:`SeededSampler`.
    """

    def __init__(self, items: Sequence[Tuple[str, int, int]], transform: Optional[Callable] = None):
        self.items = list(items)
        self.transform = transform
        self.pids = [pid for _, pid, _ in self.items]

    @property
    def num_classes(self) -> int:
        return len(set(self.pids))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: Union[int, Tuple[int, int]]) -> dict:
        index, seed = key if isinstance(key, tuple) else (key, None)
        path, pid, camid = self.items[index]
        img = read_image(path)
        if self.transform is not None:
            img = _seeded_call(self.transform, img, seed)
        return {"images": img, "targets": pid, "camids": camid, "img_paths": path}


def _seeded_call(fn: Callable, arg, seed: Optional[int]):
    if seed is None:
        return fn(arg)
    if get_worker_info() is not None:  # worker process: its global RNGs are ours to set
        random.seed(seed)
        torch.manual_seed(seed)
        return fn(arg)
    state = random.getstate()  # main process: do not disturb the training RNG streams
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        torch.manual_seed(seed)
        try:
            return fn(arg)
        finally:
            random.setstate(state)


def concat_train_items(splits: List[Tuple[str, Sequence[Tuple[str, int, int]]]]) -> List[Tuple[str, int, int]]:
    """Concatenate the (already relabelled 0..N-1) training lists of several datasets.

    Pids are namespaced by offsetting each dataset by the number of ids before it, so identities
    of different datasets never collide. Camera ids are offset the same way.
    """
    out: List[Tuple[str, int, int]] = []
    pid_offset = cam_offset = 0
    for _, items in splits:
        if not items:
            continue
        out += [(p, pid + pid_offset, cam + cam_offset) for p, pid, cam in items]
        pid_offset += max(pid for _, pid, _ in items) + 1
        cam_offset += max(cam for _, _, cam in items) + 1
    return out
