"""Tests of cdnet_reid.data.samplers: P x K composition, rank splitting, seeding, sharding."""

import itertools
from collections import Counter

import numpy as np
import pytest
import torch

from cdnet_reid.data.samplers import IdentitySampler, InferenceSampler, TrainingSampler, identity_epoch_length
from cdnet_reid.utils import comm


def _take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def _batches(sampler, batch_size, n_batches):
    flat = _take(sampler, batch_size * n_batches)
    return [flat[i * batch_size:(i + 1) * batch_size] for i in range(n_batches)]


def _make_pids(seed=0, num_ids=30, small_ids=5):
    """pids with varied counts; the first ``small_ids`` ids have 1-3 images (fewer than K=4)."""
    rng = np.random.RandomState(seed)
    pids = []
    for pid in range(num_ids):
        n = int(rng.randint(1, 4)) if pid < small_ids else int(rng.randint(4, 15))
        pids.extend([pid] * n)
    order = rng.permutation(len(pids))  # items of one pid are not contiguous in the dataset
    return [pids[i] for i in order]


# ------------------------------------------------------------------------------------------ #
# IdentitySampler
# ------------------------------------------------------------------------------------------ #
def test_identity_sampler_pk_composition():
    pids = _make_pids()
    counts = Counter(pids)
    B, K = 16, 4
    P = B // K
    sampler = IdentitySampler(pids, B, K, seed=3, rank=0, world_size=1)
    for batch in _batches(sampler, B, 200):
        batch_pids = [pids[i] for i in batch]
        c = Counter(batch_pids)
        assert len(c) == P
        assert all(v == K for v in c.values())
        # consecutive groups of K belong to one pid
        for j in range(P):
            chunk = batch[j * K:(j + 1) * K]
            assert len({pids[i] for i in chunk}) == 1
            if counts[pids[chunk[0]]] >= K:
                assert len(set(chunk)) == K  # K distinct images


def test_identity_sampler_small_pids_appear_with_k_entries():
    pids = _make_pids()
    counts = Counter(pids)
    small = {p for p, n in counts.items() if n < 4}
    assert small
    sampler = IdentitySampler(pids, 16, 4, seed=1, rank=0, world_size=1)
    seen = set()
    for batch in _batches(sampler, 16, 300):
        c = Counter(pids[i] for i in batch)
        for p in small & set(c):
            assert c[p] == 4
            seen.add(p)
    assert seen == small


def test_identity_sampler_round_covers_all_pids():
    # 8 ids with exactly K images and P = 8: one round is exactly one batch containing everything.
    pids = [p for p in range(8) for _ in range(4)]
    sampler = IdentitySampler(pids, 32, 4, seed=0, rank=0, world_size=1)
    for batch in _batches(sampler, 32, 5):
        assert sorted(batch) == list(range(32))


@pytest.mark.parametrize("world", [2, 4])
def test_identity_sampler_ranks_split_global_batch(world):
    pids = _make_pids(num_ids=40)
    B, K = 32, 4
    n = 50
    global_batches = _batches(IdentitySampler(pids, B, K, seed=7, rank=0, world_size=1), B, n)
    per_rank = [_batches(IdentitySampler(pids, B, K, seed=7, rank=r, world_size=world),
                         B // world, n) for r in range(world)]
    for step in range(n):
        parts = [per_rank[r][step] for r in range(world)]
        id_sets = [{pids[i] for i in part} for part in parts]
        for r in range(world):
            assert len(id_sets[r]) == B // K // world
            assert all(v == K for v in Counter(pids[i] for i in parts[r]).values())
        for a, b in itertools.combinations(range(world), 2):
            assert not (id_sets[a] & id_sets[b])
        assert list(itertools.chain(*parts)) == global_batches[step]


def test_identity_sampler_uses_comm_defaults(monkeypatch):
    pids = _make_pids(num_ids=40)
    full = _take(IdentitySampler(pids, 32, 4, seed=5, rank=0, world_size=1), 32 * 10)
    monkeypatch.setattr(comm, "get_world_size", lambda: 2)
    monkeypatch.setattr(comm, "get_rank", lambda: 1)
    s = IdentitySampler(pids, 32, 4, seed=5)
    got = _take(s, 16 * 10)
    expected = list(itertools.chain(*[full[i * 32 + 16:(i + 1) * 32] for i in range(10)]))
    assert got == expected
    assert s.batch_size_per_rank == 16


def test_identity_sampler_seed_determinism():
    pids = _make_pids()
    a = _take(IdentitySampler(pids, 16, 4, seed=11, rank=0, world_size=1), 2000)
    b = _take(IdentitySampler(pids, 16, 4, seed=11, rank=0, world_size=1), 2000)
    c = _take(IdentitySampler(pids, 16, 4, seed=12, rank=0, world_size=1), 2000)
    assert a == b
    assert a != c


def test_identity_sampler_does_not_touch_global_rng():
    pids = _make_pids()
    np.random.seed(0)
    torch.manual_seed(0)
    expected_np, expected_torch = np.random.rand(), torch.rand(1)
    np.random.seed(0)
    torch.manual_seed(0)
    _take(IdentitySampler(pids, 16, 4, seed=1, rank=0, world_size=1), 500)
    _take(TrainingSampler(50, seed=1, rank=0, world_size=1), 500)
    assert np.random.rand() == expected_np
    assert torch.equal(torch.rand(1), expected_torch)


def test_identity_sampler_shared_seed_when_none(monkeypatch):
    monkeypatch.setattr(comm, "shared_random_seed", lambda: 1234)
    pids = _make_pids()
    s = IdentitySampler(pids, 16, 4, rank=0, world_size=1)
    assert s.seed == 1234
    assert _take(s, 100) == _take(IdentitySampler(pids, 16, 4, seed=1234, rank=0,
                                                  world_size=1), 100)


def test_identity_sampler_value_errors():
    pids = _make_pids(num_ids=30)
    with pytest.raises(ValueError, match="not a multiple of NUM_INSTANCE"):
        IdentitySampler(pids, 30, 4, seed=0, rank=0, world_size=1)
    with pytest.raises(ValueError) as e:
        IdentitySampler(pids, 64, 4, seed=0, rank=0, world_size=3)
    msg = str(e.value)
    assert "IMS_PER_BATCH=64" in msg and "NUM_INSTANCE=4" in msg and "16 identities" in msg
    assert "3 processes" in msg
    with pytest.raises(ValueError, match=r"32 distinct identities.*only 30 identities"):
        IdentitySampler(pids, 128, 4, seed=0, rank=0, world_size=1)
    with pytest.raises(ValueError):
        IdentitySampler(pids, 16, 0, seed=0, rank=0, world_size=1)
    with pytest.raises(ValueError):
        IdentitySampler(pids, 16, 4, seed=0, rank=2, world_size=2)


# ------------------------------------------------------------------------------------------ #
# TrainingSampler
# ------------------------------------------------------------------------------------------ #
def test_training_sampler_epochs_are_permutations():
    size = 13
    stream = _take(TrainingSampler(size, seed=0, rank=0, world_size=1), size * 4)
    epochs = [stream[i * size:(i + 1) * size] for i in range(4)]
    for ep in epochs:
        assert sorted(ep) == list(range(size))
    assert epochs[0] != epochs[1]  # reshuffled each epoch (with overwhelming probability)


def test_training_sampler_no_shuffle():
    stream = _take(TrainingSampler(5, shuffle=False, seed=0, rank=0, world_size=1), 12)
    assert stream == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]


@pytest.mark.parametrize("world", [2, 3, 4])
def test_training_sampler_ranks_partition_stream(world):
    size, n = 17, 120
    full = _take(TrainingSampler(size, seed=9, rank=0, world_size=1), n * world)
    parts = [_take(TrainingSampler(size, seed=9, rank=r, world_size=world), n)
             for r in range(world)]
    for r in range(world):
        assert parts[r] == full[r::world]
    # positions partition the global stream: interleaving the parts rebuilds it
    rebuilt = [parts[i % world][i // world] for i in range(n * world)]
    assert rebuilt == full


def test_training_sampler_seed_determinism_and_validation():
    a = _take(TrainingSampler(20, seed=4, rank=0, world_size=1), 100)
    b = _take(TrainingSampler(20, seed=4, rank=0, world_size=1), 100)
    c = _take(TrainingSampler(20, seed=5, rank=0, world_size=1), 100)
    assert a == b and a != c
    with pytest.raises(ValueError):
        TrainingSampler(0, seed=0)
    with pytest.raises(ValueError):
        TrainingSampler(5, seed=-1)


# ------------------------------------------------------------------------------------------ #
# InferenceSampler
# ------------------------------------------------------------------------------------------ #
@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("size", [0, 1, 2, 7, 10])
def test_inference_sampler_exact_shards(world, size):
    shards = [list(InferenceSampler(size, rank=r, world_size=world)) for r in range(world)]
    lens = [len(InferenceSampler(size, rank=r, world_size=world)) for r in range(world)]
    assert lens == [len(s) for s in shards]
    assert max(lens) - min(lens) <= 1
    # concatenation in rank order is exactly range(size): every index once, order preserved
    assert list(itertools.chain(*shards)) == list(range(size))


def test_inference_sampler_comm_defaults(monkeypatch):
    monkeypatch.setattr(comm, "get_world_size", lambda: 3)
    monkeypatch.setattr(comm, "get_rank", lambda: 2)
    assert list(InferenceSampler(10)) == [7, 8, 9]
    monkeypatch.setattr(comm, "get_rank", lambda: 0)
    assert list(InferenceSampler(10)) == [0, 1, 2, 3]


def test_batch_sampler_integration():
    from torch.utils.data import BatchSampler
    pids = _make_pids(num_ids=40)
    bs = BatchSampler(IdentitySampler(pids, 32, 4, seed=0, rank=1, world_size=2), 16,
                      drop_last=True)
    for batch in itertools.islice(iter(bs), 20):
        c = Counter(pids[i] for i in batch)
        assert len(batch) == 16 and len(c) == 4 and set(c.values()) == {4}


# ------------------------------------------------------------------ the epoch of the P x K sampler
#: MSMT17 (V1) list_train.txt: number of identities holding n images, {n: identities}
#: (1,041 identities, 30,248 images).
MSMT17_TRAIN_IMAGES_PER_ID = {
    5: 2, 6: 8, 7: 15, 8: 14, 9: 24, 10: 23, 11: 24, 12: 24, 13: 41, 14: 40, 15: 37, 16: 28, 17: 44,
    18: 36, 19: 36, 20: 44, 21: 31, 22: 33, 23: 39, 24: 36, 25: 24, 26: 25, 27: 20, 28: 26, 29: 25,
    30: 24, 31: 17, 32: 25, 33: 20, 34: 26, 35: 11, 36: 12, 37: 12, 38: 9, 39: 2, 40: 7, 41: 10, 42: 3,
    43: 6, 44: 5, 45: 4, 46: 4, 47: 7, 48: 5, 49: 4, 50: 4, 51: 9, 52: 3, 53: 5, 54: 5, 55: 1, 56: 2,
    57: 5, 58: 1, 59: 1, 60: 4, 61: 2, 62: 6, 63: 4, 64: 5, 65: 6, 66: 4, 67: 4, 68: 2, 69: 2, 70: 3,
    71: 2, 72: 6, 73: 1, 74: 1, 75: 2, 76: 1, 77: 1, 78: 2, 79: 2, 80: 1, 82: 2, 83: 1, 85: 1, 87: 3,
    88: 1, 90: 1, 92: 2, 95: 2, 96: 1, 97: 1, 99: 2, 102: 1, 104: 1, 106: 1, 108: 1, 113: 2, 118: 2,
    119: 1, 142: 1, 143: 1, 147: 1, 196: 1, 258: 1, 371: 1,
}


def _authors_epoch_images(images_per_id, k):
    """The original sampler's stated length, built as its code builds it: every identity's list,
    padded to K by drawing with replacement when shorter, cut into chunks of K, the remainder
    dropped; the number of indices in all chunks."""
    rng = np.random.default_rng(0)
    total = 0
    for n in images_per_id:
        idxs = list(range(n)) if n >= k else list(rng.choice(n, size=k, replace=True))
        chunks = [idxs[i:i + k] for i in range(0, len(idxs), k)]
        total += sum(len(c) for c in chunks if len(c) == k)
    return total


@pytest.mark.parametrize("images_per_id,k,batch", [
    ([1, 2, 3, 4, 5, 7, 8, 9], 4, 16),
    ([n for n, ids in MSMT17_TRAIN_IMAGES_PER_ID.items() for _ in range(ids)], 4, 64),
    ([14] * 64, 4, 64),  # the README demo's SyntheticReID: 64 ids x 14 images
    ([3, 5, 6, 11] * 20, 2, 32),
])
def test_identity_sampler_states_the_authors_epoch(images_per_id, k, batch):
    pids = [pid for pid, n in enumerate(images_per_id) for _ in range(n)]
    sampler = IdentitySampler(pids, batch, k, seed=0, rank=0, world_size=1)
    expected = _authors_epoch_images(images_per_id, k) // batch
    assert sampler.epoch_length == identity_epoch_length(images_per_id, k, batch) == expected
    # every stated batch is a full P x K batch the sampler really yields within about one round
    rounds = list(sampler._one_round(np.random.default_rng(0)))
    assert expected * 0.9 <= len(rounds) <= expected


def test_identity_epoch_length_on_the_real_layouts():
    msmt = [n for n, ids in MSMT17_TRAIN_IMAGES_PER_ID.items() for _ in range(ids)]
    assert (len(msmt), sum(msmt)) == (1041, 30248)
    assert identity_epoch_length(msmt, 4, 64) == 448  # was 30,248 // 64 = 472
    assert identity_epoch_length([14] * 64, 4, 64) == 12  # was 896 // 64 = 14
    assert identity_epoch_length([1, 2, 3, 4, 5, 7, 8, 9], 4, 16) == 40 // 16
