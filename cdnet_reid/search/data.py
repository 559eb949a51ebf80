"""Data for the search: every training identity's images split into a weight part and an
architecture part, each fed by an infinite P×K loader."""

import logging
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from torch.utils.data import DataLoader

from ..data.build import build_infinite_loader
from ..data.common import ImageDataset
from ..data.samplers import IdentitySampler

logger = logging.getLogger(__name__)

SPLITS = ("disjoint", "authors")


def split_per_identity(pids: Sequence[int], num_arch: int, mode: str = "disjoint",
                       seed: int = 0) -> tuple[list[int], list[int]]:
    """Indices of the weight part and of the architecture part, chosen per identity.

    * ``"disjoint"``: of an identity's n images, ``min(num_arch, n // 2)`` go to the architecture
      part and the rest to the weight part; no image is in both (an identity with one image is
      only in the weight part).
    * ``"authors"``: the original split with K = ``num_arch`` (its sampler of the search data): n < K: both parts get K
      draws with replacement; otherwise r = n mod K (K when 0) images go to the architecture part
      and leave the weight part (unless n == K, when they stay), then K - r more images of the
      weight part are added to the architecture part as well, which therefore overlaps it.

    Deterministic in ``seed``; identities are visited in sorted order.
    """
    if mode not in SPLITS:
        raise ValueError(f"SEARCH.SPLIT must be one of {SPLITS}, got {mode!r}")
    if num_arch < 1:
        raise ValueError(f"SEARCH.ARCH_IMAGES_PER_ID must be >= 1, got {num_arch}")
    rng = np.random.RandomState(seed)
    by_pid = defaultdict(list)
    for i, pid in enumerate(pids):
        by_pid[pid].append(i)
    weight, arch = [], []
    for pid in sorted(by_pid):
        idx = by_pid[pid]
        n = len(idx)
        if mode == "disjoint":
            perm = [idx[j] for j in rng.permutation(n)]
            k = min(num_arch, n // 2)
            arch += perm[:k]
            weight += perm[k:]
            continue
        k = num_arch
        if n < k:
            arch += [idx[j] for j in rng.choice(n, k, replace=True)]
            weight += [idx[j] for j in rng.choice(n, k, replace=True)]
            continue
        r = n % k or k
        chosen = [idx[j] for j in rng.choice(n, r, replace=False)]
        pool = idx if n == k else [i for i in idx if i not in set(chosen)]
        extra = [pool[j] for j in rng.choice(len(pool), k - r, replace=False)] if k > r else []
        arch += chosen + extra
        weight += pool
    return weight, arch


def subset(dataset: ImageDataset, indices: Sequence[int]) -> ImageDataset:
    """The images ``indices`` of ``dataset`` (same transform and options, same class count)."""
    return ImageDataset([dataset.items[i] for i in indices], dataset.transform,
                        on_bad_image=dataset.on_bad_image, replace=dataset.replace,
                        num_classes=dataset.num_classes)


def build_pk_loader(cfg, dataset: ImageDataset, seed: int) -> DataLoader:
    """An infinite P×K loader over ``dataset`` with its own sampler seed (resumable)."""
    sampler = IdentitySampler(dataset.pids, cfg.SOLVER.IMS_PER_BATCH, cfg.DATALOADER.NUM_INSTANCE, seed)
    return build_infinite_loader(cfg, dataset, sampler)
