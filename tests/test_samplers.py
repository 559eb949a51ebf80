"""Tests of cdnet_reid.data.samplers: P x K composition, rank splitting, seeding, sharding."""

import itertools
from collections import Counter

import numpy as np
import pytest
import torch

from cdnet_reid.data.samplers import IdentitySampler, InferenceSampler, TrainingSampler
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
