"""Map-style datasets over lists of items, and the sampler wrapper that makes augmentation
reproducible.

Randomness of the training augmentations is tied to the **position of a sample in the training
stream**, not to the worker process that happens to load it: :class:`SeededSampler` yields
``(index, seed)`` pairs and :class:`ImageDataset` seeds ``random``/``torch`` with that seed before
transforming the image. A run therefore produces the same batches for any number of workers, and a
run resumed at iteration *t* sees exactly the batches the uninterrupted run saw from *t* on.
"""

import logging
import os
import random
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler, get_worker_info

from ..utils.image import to_rgb

logger = logging.getLogger(__name__)


def read_image(path: str) -> Image.Image:
    """Open an image file as RGB (:func:`to_rgb`); a file that cannot be decoded raises an error
    naming it."""
    try:
        with Image.open(path) as img:
            return to_rgb(img)
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

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for pos, index in enumerate(self.sampler):
            if pos < self.start:
                continue
            # A deterministic, well-mixed 31-bit seed per (run seed, rank, position).
            yield index, hash((self.seed, self.rank, pos)) & 0x7FFFFFFF


#: Values of ``DATALOADER.ON_BAD_IMAGE``.
BAD_IMAGE_POLICIES = ("fail", "skip")


def load_image(src) -> Image.Image:
    """An item's image as an RGB PIL image (:func:`to_rgb`): a file path (:func:`read_image`), an
    ``H x W x 3`` uint8 array (e.g. CIFAR kept in memory; 2-D uint16 arrays are 16-bit grey) or a
    PIL image."""
    if isinstance(src, (str, os.PathLike)):
        return read_image(os.fspath(src))
    if isinstance(src, np.ndarray):
        return to_rgb(Image.fromarray(src))
    if isinstance(src, Image.Image):
        return to_rgb(src)
    raise TypeError(f"cannot load an image from a {type(src).__name__}")


class ImageDataset(Dataset):
    """``(image, pid, camid)`` items, or ``(image, label)`` pairs (camid 0), -> dicts
    ``images, targets, camids, img_paths, valid``.

    ``image`` is a file path, an ``H x W x 3`` uint8 array or a PIL image. Keys may be plain indices
    or ``(index, seed)`` pairs from :class:`SeededSampler`.

    Unreadable images (a file that fails to decode, or is missing) follow ``on_bad_image``
    (``DATALOADER.ON_BAD_IMAGE``):

    * ``"fail"``: the error, naming the file, propagates (the run stops);
    * ``"skip"``: a warning names the file (once per process) with a running count of skipped
      samples, and the sample is answered with ``valid=False`` and, by ``replace``:

      - ``"same_id"`` (training): another image **of the same pid/label**, chosen deterministically
        from the sample's seed, transformed with the sample's seed. A P x K batch therefore still
        holds P identities x K images (one image may appear twice, as for identities with fewer
        than K images, which the P x K sampler already draws with replacement), and the labels of
        a classification batch are unchanged. Each other image of the identity is tried at most
        once; if none can be read the error propagates, since no valid batch can be formed.
      - ``"placeholder"`` (evaluation): a black image; evaluators drop samples with
        ``valid=False`` from the metrics (they report how many).

    A file that failed once is remembered (per process) and not decoded again.
    ``num_skipped`` counts the skipped samples of all loader workers.
    """

    def __init__(self, items: Sequence[tuple], transform: Callable | None = None, *,
                 on_bad_image: str = "fail", replace: str = "same_id",
                 num_classes: int | None = None):
        if on_bad_image not in BAD_IMAGE_POLICIES:
            raise ValueError(f"DATALOADER.ON_BAD_IMAGE must be one of {BAD_IMAGE_POLICIES}, got {on_bad_image!r}")
        if replace not in ("same_id", "placeholder"):
            raise ValueError(f"replace must be 'same_id' or 'placeholder', got {replace!r}")
        self.items = [it if len(it) == 3 else (it[0], it[1], 0) for it in items]
        self.transform = transform
        self.pids = [pid for _, pid, _ in self.items]
        self.on_bad_image = on_bad_image
        self.replace = replace
        self._num_classes = num_classes
        self._bad: set = set()
        self._by_pid: dict[int, list[int]] | None = None
        # shared with the loader workers (shared memory), so the main process sees their count
        self._skipped = torch.zeros(1, dtype=torch.int64).share_memory_() if on_bad_image == "skip" else None

    @property
    def num_classes(self) -> int:
        return self._num_classes if self._num_classes is not None else len(set(self.pids))

    @property
    def num_skipped(self) -> int:
        """Samples answered with ``valid=False`` so far (all workers)."""
        return int(self._skipped.item()) if self._skipped is not None else 0

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, seed = key if isinstance(key, tuple) else (key, None)
        src, pid, camid = self.items[index]
        valid = True
        try:
            img = self._load(index)
        except OSError as e:
            if self.on_bad_image == "fail":
                raise
            img, used = self._recover(index, seed, e)
            valid = False
            if used != index:
                src, _, camid = self.items[used]
        if self.transform is not None:
            img = _seeded_call(self.transform, img, seed)
        return {"images": img, "targets": pid, "camids": camid,
                "img_paths": _source_name(src, index), "valid": valid}

    def _load(self, index: int) -> Image.Image:
        src = self.items[index][0]
        if self._bad and _source_name(src, index) in self._bad:
            raise OSError(f"{_source_name(src, index)} could not be read earlier")
        return load_image(src)

    def _recover(self, index: int, seed: int | None, err: Exception):
        """``(image, index it came from)`` for an unreadable item under the "skip" policy."""
        src, pid, _ = self.items[index]
        name = _source_name(src, index)
        first = name not in self._bad
        self._bad.add(name)
        self._skipped.add_(1)
        count = self.num_skipped
        if self.replace == "placeholder":
            if first:
                logger.warning("Cannot read image %s (%s): left out (a placeholder marked invalid) "
                               "(DATALOADER.ON_BAD_IMAGE=skip); %d sample(s) skipped so far",
                               name, err, count)
            return Image.new("RGB", (64, 128)), index
        if self._by_pid is None:
            self._by_pid = {}
            for i, p in enumerate(self.pids):
                self._by_pid.setdefault(p, []).append(i)
        others = [i for i in self._by_pid[pid] if i != index]
        start = (seed if seed is not None else index) % max(1, len(others))
        for k in range(len(others)):
            j = others[(start + k) % len(others)]
            try:
                img = self._load(j)
            except OSError as e2:
                other = _source_name(self.items[j][0], j)
                if other not in self._bad:
                    self._bad.add(other)
                    logger.warning("Cannot read image %s (%s) either", other, e2)
                continue
            if first:
                logger.warning("Cannot read image %s (%s): replaced by %s of the same identity "
                               "(DATALOADER.ON_BAD_IMAGE=skip); %d sample(s) skipped so far",
                               name, err, _source_name(self.items[j][0], j), count)
            return img, j
        raise OSError(f"cannot read image {name} ({err}), and none of the {len(others)} other "
                      f"image(s) of its identity/class {pid} can be read either: with "
                      f"DATALOADER.ON_BAD_IMAGE=skip every identity needs one readable image") from err


def _source_name(src, index: int) -> str:
    if isinstance(src, (str, os.PathLike)):
        return os.fspath(src)
    return f"<in-memory image #{index}>"


def _seeded_call(fn: Callable, arg, seed: int | None):
    if seed is None:
        return fn(arg)
    if get_worker_info() is not None:  # worker process: its global RNGs are ours to set
        random.seed(seed)
        torch.manual_seed(seed)
        return fn(arg)
    # main process: do not disturb the training RNG streams. Only the CPU generator is seeded (and
    # restored by fork_rng): torch.manual_seed would also reseed every CUDA generator, which
    # fork_rng(devices=[]) does not restore (dropout's CUDA stream would restart at every sample)
    state = random.getstate()
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        torch.default_generator.manual_seed(seed)
        try:
            return fn(arg)
        finally:
            random.setstate(state)


def concat_train_items(splits: list[tuple[str, Sequence[tuple[str, int, int]]]]) -> list[tuple[str, int, int]]:
    """Concatenate the (already relabelled 0..N-1) training lists of several datasets.

    Pids are namespaced by offsetting each dataset by the number of ids before it, so identities
    of different datasets never collide. Camera ids are offset the same way.
    """
    out: list[tuple[str, int, int]] = []
    pid_offset = cam_offset = 0
    for _, items in splits:
        if not items:
            continue
        out += [(p, pid + pid_offset, cam + cam_offset) for p, pid, cam in items]
        pid_offset += max(pid for _, pid, _ in items) + 1
        cam_offset += max(cam for _, _, cam in items) + 1
    return out
