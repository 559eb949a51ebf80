"""Tests for cdnet_reid.evaluation.rank (CMC / mAP / mINP under the Market-1501 protocol)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cdnet_reid.evaluation.rank import evaluate_rank, evaluate_rank_features


# ---------------------------------------------------------------------------------------------
# slow, straightforward per-query reference (mirrors the protocol in the module docstring)
# ---------------------------------------------------------------------------------------------
def reference_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    distmat = np.asarray(distmat, dtype=np.float64)
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_camids, g_camids = np.asarray(q_camids), np.asarray(g_camids)
    all_cmc, all_ap, all_inp = [], [], []
    for i in range(distmat.shape[0]):
        order = np.argsort(distmat[i], kind="stable")  # ties -> lower gallery index first
        same_pid = g_pids[order] == q_pids[i]
        junk = same_pid & (g_camids[order] == q_camids[i])
        matches = same_pid[~junk].astype(np.int64)  # relevance of the remaining items
        if not matches.any():
            continue  # no valid match: skipped
        cmc = np.minimum(np.cumsum(matches), 1)
        if cmc.shape[0] < max_rank:  # pad by repeating the last value
            cmc = np.concatenate([cmc, np.full(max_rank - cmc.shape[0], cmc[-1])])
        all_cmc.append(cmc[:max_rank])
        num_rel = matches.sum()
        precision_at = np.cumsum(matches) / np.arange(1, matches.shape[0] + 1)
        all_ap.append((precision_at * matches).sum() / num_rel)
        last = np.nonzero(matches)[0].max() + 1
        all_inp.append(num_rel / last)
    if not all_cmc:
        raise ValueError("no valid query")
    return (
        np.asarray(all_cmc, dtype=np.float64).mean(0).astype(np.float32),
        np.asarray(all_ap),
        np.asarray(all_inp),
    )


def assert_same(result, expected):
    cmc, ap, inp = result
    cmc_e, ap_e, inp_e = expected
    assert cmc.dtype == np.float32 and cmc.shape == cmc_e.shape
    np.testing.assert_allclose(cmc, cmc_e, rtol=0, atol=1e-6)
    assert ap.shape == ap_e.shape and inp.shape == inp_e.shape
    np.testing.assert_allclose(ap, ap_e, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(inp, inp_e, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# hand-computed case
# ---------------------------------------------------------------------------------------------
# Gallery index:    0    1    2    3    4    5
G_PIDS = np.array([1, 1, 2, 0, 1, 3])  # pid 0 = distractor
G_CAMS = np.array([0, 1, 1, 2, 2, 0])
Q_PIDS = np.array([1, 2, 3, 1])
Q_CAMS = np.array([0, 1, 1, 2])
DISTMAT = np.array(
    [
        # Query A (pid 1, cam 0). Stable ascending order: g0 .1, g2 .2, g3 .3, g5 .4, g1 .5, g4 .5
        #   (g1/g4 tie -> g1 first). g0 (pid 1, cam 0) is junk and removed. Remaining:
        #   1:g2 miss, 2:g3 miss (distractor), 3:g5 miss, 4:g1 HIT, 5:g4 HIT.  R = 2.
        #   AP = (1/4 + 2/5) / 2 = 0.325;  INP = 2/5 = 0.4;  first hit at rank 4.
        [0.1, 0.5, 0.2, 0.3, 0.5, 0.4],
        # Query B (pid 2, cam 1). Its only same-pid item g2 is on cam 1 -> junk -> no valid
        #   match -> skipped (appears nowhere in the outputs).
        [0.3, 0.3, 0.9, 0.1, 0.3, 0.2],
        # Query C (pid 3, cam 1). All distances tie -> ranked by gallery index 0..5.
        #   Nothing removed (g5 is pid 3 but cam 0). Only hit g5 at rank 6.  R = 1.
        #   AP = 1/6;  INP = 1/6;  first hit at rank 6.
        [0.2, 0.2, 0.2, 0.2, 0.2, 0.2],
        # Query D (pid 1, cam 2). Order: g4 .05, g1 .1, g3 .2, g2 .3, g5 .4, g0 .6.
        #   g4 (pid 1, cam 2) is junk. Remaining: 1:g1 HIT, 2:g3, 3:g2, 4:g5, 5:g0 HIT.  R = 2.
        #   AP = (1/1 + 2/5) / 2 = 0.7;  INP = 2/5 = 0.4;  first hit at rank 1.
        [0.6, 0.1, 0.3, 0.2, 0.05, 0.4],
    ]
)
# Valid queries A, C, D with first hits at ranks 4, 6, 1. With max_rank = 10 > 6 gallery items,
# CMC(k) = #{first hit <= k} / 3, padded with the last value (1) past the gallery size.
EXPECTED_CMC = np.array([1, 1, 1, 2, 2, 3, 3, 3, 3, 3], dtype=np.float64) / 3
EXPECTED_AP = np.array([0.325, 1 / 6, 0.7])
EXPECTED_INP = np.array([0.4, 1 / 6, 0.4])


@pytest.mark.parametrize("chunk_size", [None, 1, 2, 3, 100])
@pytest.mark.parametrize("as_torch", [False, True])
def test_hand_computed(chunk_size, as_torch):
    args = (DISTMAT, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    if as_torch:
        args = tuple(torch.as_tensor(a) for a in args)
    cmc, all_ap, all_inp = evaluate_rank(*args, max_rank=10, chunk_size=chunk_size)
    assert cmc.dtype == np.float32 and cmc.shape == (10,)
    np.testing.assert_allclose(cmc, EXPECTED_CMC, atol=1e-7)
    np.testing.assert_allclose(all_ap, EXPECTED_AP, rtol=1e-12)
    np.testing.assert_allclose(all_inp, EXPECTED_INP, rtol=1e-12)
    assert all_ap.mean() == pytest.approx((0.325 + 1 / 6 + 0.7) / 3)
    assert all_inp.mean() == pytest.approx((0.4 + 1 / 6 + 0.4) / 3)
    # the slow reference agrees with the hand computation
    assert_same((cmc, all_ap, all_inp), reference_rank(DISTMAT, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, 10))


def test_hand_computed_lists_and_small_max_rank():
    cmc, all_ap, all_inp = evaluate_rank(
        DISTMAT.tolist(), Q_PIDS.tolist(), G_PIDS.tolist(), Q_CAMS.tolist(), G_CAMS.tolist(),
        max_rank=3,
    )
    np.testing.assert_allclose(cmc, EXPECTED_CMC[:3], atol=1e-7)
    np.testing.assert_allclose(all_ap, EXPECTED_AP)
    np.testing.assert_allclose(all_inp, EXPECTED_INP)


def test_default_max_rank_is_50_and_padded():
    cmc, _, _ = evaluate_rank(DISTMAT, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    assert cmc.shape == (50,)
    np.testing.assert_allclose(cmc[:10], EXPECTED_CMC, atol=1e-7)
    assert np.all(cmc[6:] == 1.0)


def test_perfect_retrieval():
    # every query's matches come first -> CMC all ones, mAP = mINP = 1
    g_pids = np.repeat(np.arange(5), 4)
    g_cams = np.tile(np.arange(4), 5)
    q_pids = np.arange(5)
    q_cams = np.full(5, 9)
    dist = (q_pids[:, None] != g_pids[None, :]).astype(np.float32)
    cmc, ap, inp = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank=5)
    assert np.all(cmc == 1) and np.all(ap == 1) and np.all(inp == 1)


# ---------------------------------------------------------------------------------------------
# equivalence with the reference on random data
# ---------------------------------------------------------------------------------------------
def random_problem(seed: int):
    rng = np.random.default_rng(seed)
    nq = int(rng.integers(5, 40))
    ng = int(rng.integers(5, 80))
    num_ids = int(rng.integers(2, 15))
    num_cams = 1 if seed == 0 else int(rng.integers(2, 5))  # seed 0: no valid query at all
    q_pids = rng.integers(0, num_ids + 3, nq)  # some query pids are absent from the gallery
    g_pids = rng.integers(0, num_ids, ng)
    q_cams = rng.integers(0, num_cams, nq)
    g_cams = rng.integers(0, num_cams, ng)
    if seed % 2:  # coarse values -> many ties
        distmat = rng.integers(0, 4, (nq, ng)).astype(np.float64) / 3
    else:
        distmat = rng.standard_normal((nq, ng))
    return distmat, q_pids, g_pids, q_cams, g_cams


@pytest.mark.parametrize("seed", range(12))
def test_matches_reference_random(seed):
    distmat, q_pids, g_pids, q_cams, g_cams = random_problem(seed)
    max_rank = [1, 5, 50, 200][seed % 4]
    try:
        expected = reference_rank(distmat, q_pids, g_pids, q_cams, g_cams, max_rank)
    except ValueError:
        with pytest.raises(ValueError, match="no query has a valid match"):
            evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams, max_rank)
        return
    for chunk_size in (None, 1, 3, 7, distmat.shape[0] + 5):
        got = evaluate_rank(
            distmat, q_pids, g_pids, q_cams, g_cams, max_rank, chunk_size=chunk_size
        )
        assert_same(got, expected)
    # float32 / torch-tensor inputs give the same result (values chosen so float32 is exact
    # for the tie-heavy seeds; continuous seeds compare against a float32 reference)
    d32 = distmat.astype(np.float32)
    expected32 = reference_rank(d32, q_pids, g_pids, q_cams, g_cams, max_rank)
    got_t = evaluate_rank(
        torch.from_numpy(d32),
        torch.from_numpy(q_pids),
        torch.from_numpy(g_pids),
        torch.from_numpy(q_cams).to(torch.int32),
        torch.from_numpy(g_cams),
        max_rank,
        chunk_size=4,
    )
    assert_same(got_t, expected32)
    got_np = evaluate_rank(d32, q_pids, g_pids, q_cams, g_cams, max_rank)
    for a, b in zip(got_t, got_np):
        np.testing.assert_array_equal(a, b)


def test_valid_query_count_and_skipping():
    distmat, q_pids, g_pids, q_cams, g_cams = random_problem(1)
    _, ap, inp = evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams)
    n_valid = sum(
        np.any((g_pids == p) & (g_cams != c)) for p, c in zip(q_pids, q_cams)
    )
    assert 0 < n_valid < len(q_pids)  # this seed has skipped queries
    assert ap.shape == inp.shape == (n_valid,)
    assert np.all((ap > 0) & (ap <= 1)) and np.all((inp > 0) & (inp <= 1))


def test_special_values():
    # +/-inf, -0.0 vs 0.0 ties and NaN (ranked last) behave like a stable argsort
    rng = np.random.default_rng(7)
    distmat = rng.choice([0.0, -0.0, 1.0, np.inf, -np.inf, np.nan], size=(12, 20))
    q_pids = rng.integers(0, 3, 12)
    g_pids = rng.integers(0, 3, 20)
    q_cams = rng.integers(0, 2, 12)
    g_cams = rng.integers(0, 2, 20)
    expected = reference_rank(distmat, q_pids, g_pids, q_cams, g_cams, 30)
    assert_same(evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams, 30), expected)
    d32 = distmat.astype(np.float32)
    assert_same(evaluate_rank(d32, q_pids, g_pids, q_cams, g_cams, 30), expected)


# ---------------------------------------------------------------------------------------------
# evaluate_rank_features
# ---------------------------------------------------------------------------------------------
def explicit_distmat(q, g, metric):
    q = np.asarray(q, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    if metric == "cosine":
        return 1.0 - q @ g.T
    return (q * q).sum(1)[:, None] + (g * g).sum(1)[None, :] - 2.0 * q @ g.T


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("seed", range(4))
def test_features_exact_integer(metric, seed):
    # small-integer features: every distance is computed exactly, ties included
    rng = np.random.default_rng(100 + seed)
    nq, ng, dim = 30, 70, 6
    q = rng.integers(-2, 3, (nq, dim)).astype(np.float32)
    g = rng.integers(-2, 3, (ng, dim)).astype(np.float32)
    q_pids, g_pids = rng.integers(0, 8, nq), rng.integers(0, 6, ng)
    q_cams, g_cams = rng.integers(0, 3, nq), rng.integers(0, 3, ng)
    dist = explicit_distmat(q, g, metric)
    expected = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank=20)
    assert_same(expected, reference_rank(dist, q_pids, g_pids, q_cams, g_cams, 20))
    for chunk_size in (None, 1, 4, 1000):
        got = evaluate_rank_features(
            q, g, q_pids, g_pids, q_cams, g_cams, metric=metric, max_rank=20, chunk_size=chunk_size
        )
        assert_same(got, expected)
    got_t = evaluate_rank_features(
        torch.from_numpy(q), torch.from_numpy(g), torch.from_numpy(q_pids), g_pids.tolist(),
        q_cams, torch.from_numpy(g_cams), metric=metric, max_rank=20,
    )
    assert_same(got_t, expected)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_features_random_normalised(metric):
    rng = np.random.default_rng(5)
    nq, ng, dim = 40, 120, 32
    q = rng.standard_normal((nq, dim))
    g = rng.standard_normal((ng, dim))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    q_pids, g_pids = rng.integers(0, 10, nq), rng.integers(0, 10, ng)
    q_cams, g_cams = rng.integers(0, 4, nq), rng.integers(0, 4, ng)
    expected = evaluate_rank(explicit_distmat(q, g, metric), q_pids, g_pids, q_cams, g_cams)
    got = evaluate_rank_features(q, g, q_pids, g_pids, q_cams, g_cams, metric=metric, chunk_size=7)
    assert_same(got, expected)
    got32 = evaluate_rank_features(
        q.astype(np.float32), g.astype(np.float32), q_pids, g_pids, q_cams, g_cams, metric=metric
    )
    assert_same(got32, expected)


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------
def test_shape_errors():
    args = [DISTMAT, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS]
    with pytest.raises(ValueError, match="2-D"):
        evaluate_rank(DISTMAT[0], *args[1:])
    with pytest.raises(ValueError, match="q_pids.*length 3"):
        evaluate_rank(DISTMAT, Q_PIDS[:3], G_PIDS, Q_CAMS, G_CAMS)
    with pytest.raises(ValueError, match="g_pids.*length 5"):
        evaluate_rank(DISTMAT, Q_PIDS, G_PIDS[:5], Q_CAMS, G_CAMS)
    with pytest.raises(ValueError, match="q_camids"):
        evaluate_rank(DISTMAT, Q_PIDS, G_PIDS, Q_CAMS[:2], G_CAMS)
    with pytest.raises(ValueError, match="g_camids.*length 7"):
        evaluate_rank(DISTMAT, Q_PIDS, G_PIDS, Q_CAMS, np.zeros(7, dtype=int))
    msg = r"shape mismatch: distmat of shape \(6, 4\) has 6 queries but q_pids has length 4"
    with pytest.raises(ValueError, match=msg):
        evaluate_rank(DISTMAT.T, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    with pytest.raises(ValueError, match="1-D"):
        evaluate_rank(DISTMAT, Q_PIDS[:, None], G_PIDS, Q_CAMS, G_CAMS)
    with pytest.raises(ValueError, match="max_rank"):
        evaluate_rank(*args, max_rank=0)
    with pytest.raises(ValueError, match="chunk_size"):
        evaluate_rank(*args, chunk_size=0)


def test_feature_errors():
    q = np.zeros((4, 8), dtype=np.float32)
    g = np.zeros((6, 8), dtype=np.float32)
    with pytest.raises(ValueError, match="feature dim 8 but g_feats has 5"):
        evaluate_rank_features(q, g[:, :5], Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    with pytest.raises(ValueError, match="q_pids.*length 3"):
        evaluate_rank_features(q, g, Q_PIDS[:3], G_PIDS, Q_CAMS, G_CAMS)
    with pytest.raises(ValueError, match="metric"):
        evaluate_rank_features(q, g, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, metric="l1")
    with pytest.raises(ValueError, match="2-D"):
        evaluate_rank_features(q[0], g, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)


def test_no_valid_query():
    # every same-pid gallery item shares the query's camera -> nothing valid
    with pytest.raises(ValueError, match="no query has a valid match in the gallery"):
        evaluate_rank(
            np.random.default_rng(0).random((2, 3)), [1, 2], [1, 2, 3], [0, 1], [0, 1, 0]
        )
    with pytest.raises(ValueError, match="no query has a valid match in the gallery"):
        evaluate_rank_features(
            np.ones((2, 4)), np.ones((3, 4)), [7, 8], [1, 2, 3], [0, 1], [0, 1, 0]
        )
    with pytest.raises(ValueError, match="no query has a valid match"):
        evaluate_rank(np.zeros((0, 3)), [], [1, 2, 3], [], [0, 1, 0])


@pytest.mark.parametrize(
    "dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64]
)
@pytest.mark.parametrize("count_block", [None, 7])
def test_counting_matches_torch_stable_sort(dtype, count_block, monkeypatch):
    # the CPU path (ranks counted in threaded row blocks, without sorting the rows) and the
    # torch.sort(stable=True) path that runs on accelerators must give identical ranks
    from cdnet_reid.evaluation import rank

    if count_block is not None:  # many small comparison blocks
        monkeypatch.setattr(rank, "_COUNT_BLOCK", count_block)
    rng = np.random.default_rng(11)
    coarse = rng.integers(-3, 4, (150, 300)).astype(np.float64)  # heavy ties
    fine = rng.standard_normal((150, 300))
    fine[::7, ::5] = 0.0  # a few ties in some rows only
    mats = [coarse, fine]
    if dtype.is_floating_point:
        values = [0.0, -0.0, 1.0, -2.5, np.inf, -np.inf, np.nan, -np.nan]
        special = rng.choice(values, size=(150, 300))
        assert np.signbit(special[np.isnan(special)]).any()  # negative NaNs included
        mats.append(special)
    q_pids, g_pids = rng.integers(0, 4, 150), rng.integers(0, 4, 300)  # ~75 relevant per row
    q_cams, g_cams = rng.integers(0, 3, 150), rng.integers(0, 3, 300)
    ids = tuple(torch.from_numpy(x) for x in (q_pids, q_cams, g_pids, g_cams))
    for m in mats:
        t = torch.from_numpy(m).to(dtype)
        rows, ranks = rank._ranks_by_sorting(t, *ids)
        got_rows, got_ranks = rank._ranks_by_counting(t, *ids)
        assert torch.equal(got_rows, rows) and torch.equal(got_ranks, ranks)
        expected = reference_rank(t.double().numpy(), q_pids, g_pids, q_cams, g_cams)
        assert_same(evaluate_rank(t, q_pids, g_pids, q_cams, g_cams), expected)


def test_non_contiguous_and_readonly_inputs():
    distmat, q_pids, g_pids, q_cams, g_cams = random_problem(4)
    expected = reference_rank(distmat, q_pids, g_pids, q_cams, g_cams)
    flipped = np.ascontiguousarray(distmat[:, ::-1])[:, ::-1]  # negative strides, same values
    flipped.setflags(write=False)
    assert_same(evaluate_rank(flipped, q_pids, g_pids, q_cams, g_cams), expected)
    transposed = torch.from_numpy(np.ascontiguousarray(distmat.T)).t()  # column-major tensor
    assert_same(evaluate_rank(transposed, q_pids, g_pids, q_cams, g_cams, chunk_size=5), expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    distmat, q_pids, g_pids, q_cams, g_cams = random_problem(5)
    expected = evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams)
    got = evaluate_rank(
        torch.from_numpy(distmat).cuda(), q_pids, g_pids, q_cams, g_cams, chunk_size=3
    )
    assert_same(got, expected)
    rng = np.random.default_rng(0)
    q = rng.integers(-2, 3, (len(q_pids), 5)).astype(np.float32)
    g = rng.integers(-2, 3, (len(g_pids), 5)).astype(np.float32)
    exp_f = evaluate_rank_features(q, g, q_pids, g_pids, q_cams, g_cams, metric="euclidean")
    got_f = evaluate_rank_features(
        torch.from_numpy(q).cuda(), torch.from_numpy(g).cuda(), q_pids, g_pids, q_cams, g_cams,
        metric="euclidean",
    )
    assert_same(got_f, exp_f)
