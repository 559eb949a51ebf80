"""Distributed-correct samplers for training and inference.

Every sampler yields **dataset indices** and owns its own random number generator, seeded
explicitly; none of them touches the global NumPy / torch / ``random`` state. In distributed
training every rank builds the same sampler with the same seed (by default a seed drawn on rank 0
and broadcast with :func:`cdnet_reid.utils.comm.shared_random_seed`), generates the same global
stream and keeps only its own share of it, so the ranks never overlap.

* :class:`TrainingSampler` -- infinite stream of shuffled epochs; rank ``r`` takes ``[r::world]``.
* :class:`IdentitySampler` -- infinite P x K stream (P identities x K images per global batch);
  each rank receives whole identities of every global batch. It states its epoch length
  (``epoch_length``, the original code's), which the trainer uses unless told otherwise.
* :class:`InferenceSampler` -- finite, exact contiguous shards (no padding, no duplicates), so that
  concatenating the per-rank results in rank order restores the dataset order.

Training samplers are infinite: the loader wraps them in
``torch.utils.data.BatchSampler(sampler, IMS_PER_BATCH // world_size, drop_last=True)`` and the
training loop decides how many iterations make an epoch (a sampler's ``epoch_length``, if it has
one).
"""

import itertools
from collections import OrderedDict
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

from ..utils import comm

__all__ = ["TrainingSampler", "InferenceSampler", "IdentitySampler", "identity_epoch_length"]


def _resolve_rank(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """``(rank, world_size)``, defaulting to the values of :mod:`cdnet_reid.utils.comm`."""
    world_size = comm.get_world_size() if world_size is None else int(world_size)
    rank = comm.get_rank() if rank is None else int(rank)
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    return rank, world_size


def _resolve_seed(seed: int | None) -> int:
    """The given seed, or one drawn on rank 0 and shared by every rank when ``seed`` is None."""
    if seed is None:
        seed = comm.shared_random_seed()
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"sampler seed must be a non-negative integer (or None to draw a seed "
                         f"shared by all ranks), got {seed}")
    return seed


class TrainingSampler(Sampler[int]):
    """Infinite stream of indices in ``[0, size)``, split over the ranks.

    All ranks generate the same sequence of epochs: with ``shuffle`` each epoch is a fresh random
    permutation of ``range(size)`` (from a ``torch.Generator`` seeded with ``seed``), otherwise it
    is ``0, 1, ..., size - 1``. The epochs are concatenated into one infinite stream and rank ``r``
    of ``W`` yields the strided slice ``stream[r::W]``. Consequently the first ``W * n`` elements of
    the stream are split exactly between the ranks, and a global batch of ``B`` consecutive
    elements equals the union of the ranks' batches of ``B // W``.

    Args:
        size: number of dataset items (> 0).
        shuffle: shuffle every epoch (True) or repeat the natural order (False).
        seed: seed shared by all ranks; None draws one with ``comm.shared_random_seed()`` (which
            needs every rank to construct the sampler at the same time).
        rank, world_size: this process's position; default to ``comm.get_rank()`` /
            ``comm.get_world_size()``. Mainly useful for tests.
    """

    def __init__(self, size: int, shuffle: bool = True, seed: int | None = None, *,
                 rank: int | None = None, world_size: int | None = None):
        size = int(size)
        if size <= 0:
            raise ValueError(f"TrainingSampler needs a non-empty dataset, got size={size}")
        self._size = size
        self._shuffle = bool(shuffle)
        self._seed = _resolve_seed(seed)
        self._rank, self._world_size = _resolve_rank(rank, world_size)

    @property
    def seed(self) -> int:
        return self._seed

    def __iter__(self) -> Iterator[int]:
        yield from itertools.islice(self._infinite_indices(), self._rank, None, self._world_size)

    def _infinite_indices(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self._seed)
        while True:
            if self._shuffle:
                yield from torch.randperm(self._size, generator=g).tolist()
            else:
                yield from range(self._size)


class InferenceSampler(Sampler[int]):
    """Exact, contiguous shard of ``range(size)`` for this rank.

    Rank ``r`` of ``W`` gets ``[begin_r, end_r)`` where the first ``size % W`` ranks hold
    ``size // W + 1`` indices and the others ``size // W``. The shards cover every index exactly
    once (no padding, no duplicates) and are ordered by rank, so gathering the per-rank outputs
    and concatenating them in rank order restores the dataset order (e.g. query then gallery).
    Ranks may receive empty shards when ``size < W``. ``len()`` is this rank's shard size.
    """

    def __init__(self, size: int, *, rank: int | None = None,
                 world_size: int | None = None):
        size = int(size)
        if size < 0:
            raise ValueError(f"InferenceSampler size must be >= 0, got {size}")
        self._size = size
        self._rank, self._world_size = _resolve_rank(rank, world_size)
        self._begin, self._end = self.shard_range(size, self._rank, self._world_size)

    @staticmethod
    def shard_range(size: int, rank: int, world_size: int) -> tuple[int, int]:
        """``(begin, end)`` of ``rank``'s shard of ``range(size)`` split over ``world_size``."""
        base, extra = divmod(size, world_size)
        begin = rank * base + min(rank, extra)
        end = begin + base + (1 if rank < extra else 0)
        return begin, end

    def __iter__(self) -> Iterator[int]:
        return iter(range(self._begin, self._end))

    def __len__(self) -> int:
        return self._end - self._begin


def identity_epoch_length(images_per_id: Sequence[int], num_instances: int, batch_size: int) -> int:
    """Batches of ``batch_size`` in one epoch of a P x K sampler over identities holding
    ``images_per_id`` images: ``sum(max(n, K) // K * K) // batch_size`` (K = ``num_instances``)."""
    k = int(num_instances)
    return sum(max(int(n), k) // k * k for n in images_per_id) // int(batch_size)


class IdentitySampler(Sampler[int]):
    """Infinite P x K identity sampler (``RandomIdentitySampler`` of torchreid / the original code).

    ``batch_size`` is the **global** batch (all ranks together) and ``num_instances`` is K, so every
    global batch holds ``P = batch_size // K`` distinct identities with K images each.

    The stream is a sequence of rounds ("epochs"). In each round:

    1. the indices are grouped by pid;
    2. a pid with fewer than K images gets K indices drawn with replacement from its images;
       each pid's list is shuffled and cut into consecutive chunks of K (an incomplete final chunk
       is dropped for this round), so a pid with >= K images contributes K *distinct* images per
       chunk;
    3. while at least P pids still have unused chunks, P distinct pids are drawn uniformly from
       them and the next chunk of each forms one global batch (pids run out and leave the pool).

    Rounds follow each other forever; all randomness comes from one ``numpy.random.Generator``
    seeded with ``seed``, identical on every rank.

    With ``W`` ranks each global batch is split by identity: rank ``r`` takes the chunks of
    identities ``[r * P / W, (r + 1) * P / W)``, i.e. ``batch_size // W`` indices made of ``P / W``
    whole identities x K images. The sampler yields these indices as a flat infinite stream; the
    loader's ``BatchSampler(sampler, batch_size // W, drop_last=True)`` regroups them into the
    per-rank batches (per-rank batches of one step are disjoint in identities and their union is
    the global batch).

    Args:
        pids: the pid of every dataset item (index ``i`` has pid ``pids[i]``).
        batch_size: global batch size (``SOLVER.IMS_PER_BATCH``), a multiple of ``num_instances``.
        num_instances: K (``DATALOADER.NUM_INSTANCE``).
        seed: seed shared by all ranks; None draws one with ``comm.shared_random_seed()``.
        rank, world_size: default to ``comm.get_rank()`` / ``comm.get_world_size()``.

    Raises:
        ValueError: if ``batch_size`` is not a multiple of ``num_instances``, if P is not divisible
            by the world size, or if the dataset has fewer than P identities.
    """

    def __init__(self, pids: Sequence[int], batch_size: int, num_instances: int,
                 seed: int | None = None, *, rank: int | None = None,
                 world_size: int | None = None):
        batch_size, num_instances = int(batch_size), int(num_instances)
        self._rank, self._world_size = _resolve_rank(rank, world_size)
        if num_instances < 1:
            raise ValueError(f"NUM_INSTANCE must be >= 1, got {num_instances}")
        if batch_size < 1:
            raise ValueError(f"IMS_PER_BATCH must be >= 1, got {batch_size}")
        if batch_size % num_instances != 0:
            raise ValueError(
                f"IMS_PER_BATCH={batch_size} is not a multiple of NUM_INSTANCE={num_instances}: "
                f"a P x K batch needs batch_size = P * K")
        num_ids = batch_size // num_instances
        if num_ids % self._world_size != 0:
            raise ValueError(
                f"IMS_PER_BATCH={batch_size} with NUM_INSTANCE={num_instances} gives {num_ids} "
                f"identities per batch, which cannot be split over {self._world_size} processes")

        index_dic: dict[int, list[int]] = OrderedDict()
        for index, pid in enumerate(pids):
            index_dic.setdefault(int(pid), []).append(index)
        if len(index_dic) < num_ids:
            raise ValueError(
                f"IMS_PER_BATCH={batch_size} with NUM_INSTANCE={num_instances} needs {num_ids} "
                f"distinct identities per batch, but the dataset has only {len(index_dic)} "
                f"identities ({len(pids)} images)")

        # Sorted pid order makes the stream independent of the order of the dataset's items.
        self._pids: list[int] = sorted(index_dic)
        self._index_lists: list[np.ndarray] = [np.asarray(index_dic[p], dtype=np.int64)
                                               for p in self._pids]
        self._batch_size = batch_size
        self._num_instances = num_instances
        self._num_ids = num_ids
        self._ids_per_rank = num_ids // self._world_size
        self._seed = _resolve_seed(seed)

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def num_identities(self) -> int:
        """Number of distinct identities in the dataset."""
        return len(self._pids)

    @property
    def batch_size_per_rank(self) -> int:
        """Indices per rank and global batch: ``batch_size // world_size``."""
        return self._batch_size // self._world_size

    @property
    def epoch_length(self) -> int:
        """Global batches in one epoch, the length the original code's identity sampler states:
        every identity counts ``max(n, K)`` of its ``n`` images rounded down to a multiple of K
        (fewer than K are padded to K, a remainder is dropped), summed over the identities and
        divided into whole batches (see :func:`identity_epoch_length`). A round of this sampler
        (the loop above) holds a little less, since it stops once fewer than P identities have
        chunks left; the stream is infinite, so an epoch boundary need not fall on a round's."""
        return identity_epoch_length([len(i) for i in self._index_lists], self._num_instances,
                                     self._batch_size)

    def __iter__(self) -> Iterator[int]:
        lo = self._rank * self._ids_per_rank
        hi = lo + self._ids_per_rank
        for global_batch in self._infinite_batches():
            for chunk in global_batch[lo:hi]:
                yield from chunk

    def _infinite_batches(self) -> Iterator[list[list[int]]]:
        """Infinite sequence of global batches, each a list of P chunks of K indices."""
        rng = np.random.default_rng(self._seed)
        while True:
            yield from self._one_round(rng)

    def _one_round(self, rng: np.random.Generator) -> Iterator[list[list[int]]]:
        k = self._num_instances
        chunks: list[list[list[int]]] = []
        for idxs in self._index_lists:
            if len(idxs) < k:
                idxs = rng.choice(idxs, size=k, replace=True)
            else:
                idxs = idxs.copy()
            rng.shuffle(idxs)
            n_full = len(idxs) // k
            chunks.append([idxs[i * k:(i + 1) * k].tolist() for i in range(n_full)])

        # Pool of pid positions that still have chunks; chunks are consumed front to back.
        available = [i for i, c in enumerate(chunks) if c]
        cursor = [0] * len(chunks)
        while len(available) >= self._num_ids:
            picked = rng.choice(len(available), size=self._num_ids, replace=False)
            selected = [available[j] for j in picked]
            batch = []
            for pid_pos in selected:
                batch.append(chunks[pid_pos][cursor[pid_pos]])
                cursor[pid_pos] += 1
            exhausted = {p for p in selected if cursor[p] == len(chunks[p])}
            if exhausted:
                available = [p for p in available if p not in exhausted]
            yield batch
