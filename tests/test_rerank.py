"""k-reciprocal re-ranking and average query expansion: hand-checked cases, equality of the
chunked implementations with literal dense references, and their use in ReidEvaluator."""

import math

import numpy as np
import pytest
import torch

from cdnet_reid.evaluation import ReidEvaluator
from cdnet_reid.evaluation.query_expansion import average_query_expansion
from cdnet_reid.evaluation.rank import evaluate_rank, evaluate_rank_chunks, pairwise_distances
from cdnet_reid.evaluation.rerank import _neighbours, k_reciprocal_rerank, rerank_distance_chunks


# ---------------------------------------------------------------------------------------------
# literal dense references
# ---------------------------------------------------------------------------------------------
def dense_rerank_reference(q, g, k1=20, k2=6, lambda_value=0.3, metric="cosine"):
    """Zhong et al.'s ``re_ranking`` (person-re-ranking / torchreid), line by line, on the full
    N x N matrix; the base distance is cdnet_reid's (1 - q.g or squared Euclidean, clamped at 0)
    and the argsort is stable (ties by index)."""
    q = np.asarray(q, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    feat = np.concatenate([q, g])
    if metric == "cosine":
        original_dist = 1.0 - feat @ feat.T
    else:
        sq = (feat ** 2).sum(1)
        original_dist = sq[:, None] + sq[None, :] - 2 * feat @ feat.T
    original_dist = np.maximum(original_dist, 0).astype(np.float32)
    query_num = q.shape[0]
    all_num = original_dist.shape[0]
    original_dist = np.transpose(original_dist / np.max(original_dist, axis=0))
    V = np.zeros_like(original_dist).astype(np.float32)
    initial_rank = np.argsort(original_dist, kind="stable").astype(np.int32)
    for i in range(all_num):
        forward_k_neigh_index = initial_rank[i, :k1 + 1]
        backward_k_neigh_index = initial_rank[forward_k_neigh_index, :k1 + 1]
        fi = np.where(backward_k_neigh_index == i)[0]
        k_reciprocal_index = forward_k_neigh_index[fi]
        k_reciprocal_expansion_index = k_reciprocal_index
        for j in range(len(k_reciprocal_index)):
            candidate = k_reciprocal_index[j]
            candidate_forward_k_neigh_index = initial_rank[candidate,
                                                           :int(np.around(k1 / 2.)) + 1]
            candidate_backward_k_neigh_index = initial_rank[candidate_forward_k_neigh_index,
                                                            :int(np.around(k1 / 2.)) + 1]
            fi_candidate = np.where(candidate_backward_k_neigh_index == candidate)[0]
            candidate_k_reciprocal_index = candidate_forward_k_neigh_index[fi_candidate]
            if len(np.intersect1d(candidate_k_reciprocal_index, k_reciprocal_index)) > \
                    2. / 3 * len(candidate_k_reciprocal_index):
                k_reciprocal_expansion_index = np.append(k_reciprocal_expansion_index,
                                                         candidate_k_reciprocal_index)
        k_reciprocal_expansion_index = np.unique(k_reciprocal_expansion_index)
        weight = np.exp(-original_dist[i, k_reciprocal_expansion_index])
        V[i, k_reciprocal_expansion_index] = 1. * weight / np.sum(weight)
    original_dist = original_dist[:query_num, ]
    if k2 != 1:
        V_qe = np.zeros_like(V, dtype=np.float32)
        for i in range(all_num):
            V_qe[i, :] = np.mean(V[initial_rank[i, :k2], :], axis=0)
        V = V_qe
    invIndex = [np.where(V[:, i] != 0)[0] for i in range(all_num)]
    jaccard_dist = np.zeros_like(original_dist, dtype=np.float32)
    for i in range(query_num):
        temp_min = np.zeros(shape=[1, all_num], dtype=np.float32)
        indNonZero = np.where(V[i, :] != 0)[0]
        indImages = [invIndex[ind] for ind in indNonZero]
        for j in range(len(indNonZero)):
            temp_min[0, indImages[j]] = temp_min[0, indImages[j]] + np.minimum(
                V[i, indNonZero[j]], V[indImages[j], indNonZero[j]])
        jaccard_dist[i] = 1 - temp_min / (2. - temp_min)
    final_dist = jaccard_dist * (1 - lambda_value) + original_dist * lambda_value
    return final_dist[:query_num, query_num:]


def dense_aqe_reference(q, g, qe_times=1, qe_k=5, alpha=3.0):
    """fast-reid's ``aqe`` (per-row loop), with stable tie-breaking and clamped similarities."""
    num_query = len(q)
    all_feat = np.concatenate([q, g]).astype(np.float64)
    for _ in range(qe_times):
        norm = all_feat / np.linalg.norm(all_feat, axis=1, keepdims=True)
        sims = norm @ norm.T
        new = []
        for sim in sims:
            init_rank = np.argsort(-sim, kind="stable")[:qe_k]
            weights = np.power(np.maximum(sim[init_rank], 0), alpha).reshape(-1, 1)
            new.append(np.mean(all_feat[init_rank] * weights, axis=0))
        all_feat = np.stack(new)
    return all_feat[:num_query], all_feat[num_query:]


def quantised_problem(seed, nq, ng, dim, metric):
    """Features on a 1/16 grid (so float32 and float64 distances are exact and equal, ties
    included), clustered by identity."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, max(2, (nq + ng) // 6), nq + ng)
    centres = rng.normal(size=(ids.max() + 1, dim))
    f = centres[ids] + rng.normal(size=(nq + ng, dim)) * 0.8
    if metric == "cosine":
        f /= np.linalg.norm(f, axis=1, keepdims=True) * 1.2
    f = np.round(f * 16) / 16
    return f[:nq].astype(np.float32), f[nq:].astype(np.float32)


# ---------------------------------------------------------------------------------------------
# re-ranking
# ---------------------------------------------------------------------------------------------
def _line_problem():
    """1-D points 0 (the query) and 1, 3, 10 (the gallery), squared Euclidean distances."""
    return np.array([[0.0]], np.float32), np.array([[1.0], [3.0], [10.0]], np.float32)


def test_rerank_hand_case_without_query_expansion():
    # Row maxima: item 0 -> 100, item 1 -> 81. k1 = 1: N(i, 2) = {0, 1}, {1, 0}, {2, 1}, {3, 2};
    # R(0) = R(1) = {0, 1}; items 2 and 3 are only their own reciprocal neighbours, so their V
    # rows share no column with the query's: Jaccard distance 1.
    q, g = _line_problem()
    v00, v01 = 1 / (1 + math.exp(-0.01)), math.exp(-0.01) / (1 + math.exp(-0.01))
    v10, v11 = math.exp(-1 / 81) / (1 + math.exp(-1 / 81)), 1 / (1 + math.exp(-1 / 81))
    m = min(v00, v10) + min(v01, v11)
    jac = [1 - m / (2 - m), 1.0, 1.0]
    for lam in (0.0, 0.3, 1.0):
        expected = [(1 - lam) * j + lam * d / 100 for j, d in zip(jac, (1, 9, 100))]
        out = k_reciprocal_rerank(q, g, k1=1, k2=1, lambda_value=lam, metric="euclidean")
        assert out.shape == (1, 3)
        np.testing.assert_allclose(out.numpy()[0], expected, atol=1e-6)


def test_rerank_hand_case_with_query_expansion():
    # k2 = 2 averages each V row with its nearest neighbour's: the query and gallery item 1
    # get identical rows (Jaccard 0); item 2's row is (V[2] + V[1]) / 2, which overlaps the
    # query's in half its mass (Jaccard 1 - 0.5 / 1.5 = 2/3); item 3's shares nothing.
    q, g = _line_problem()
    out = k_reciprocal_rerank(q, g, k1=1, k2=2, lambda_value=0.0, metric="euclidean")
    np.testing.assert_allclose(out.numpy()[0], [0.0, 2 / 3, 1.0], atol=1e-6)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("seed,nq,ng,dim,k1,k2,lam", [
    (0, 12, 60, 8, 20, 6, 0.3),     # the paper's parameters, k1 larger than most clusters
    (1, 30, 90, 4, 7, 3, 0.5),      # coarse grid: many exact ties
    (2, 5, 40, 6, 5, 1, 0.0),       # round(2.5) = 2 (half to even); no query expansion
    (3, 20, 25, 3, 40, 10, 0.9),    # k1 + 1 > N: every list is the whole set
])
def test_rerank_equals_dense_reference(metric, seed, nq, ng, dim, k1, k2, lam):
    q, g = quantised_problem(seed, nq, ng, dim, metric)
    ref = dense_rerank_reference(q, g, k1, k2, lam, metric)
    for chunk_bytes in (256 * 2 ** 20, 1500):  # one block / many small blocks in every stage
        out = k_reciprocal_rerank(q, g, k1=k1, k2=k2, lambda_value=lam, metric=metric,
                                  chunk_bytes=chunk_bytes)
        assert out.dtype == torch.float32 and out.shape == ref.shape
        np.testing.assert_allclose(out.numpy(), ref, atol=1e-6, rtol=0)


def test_rerank_chunks_cover_the_queries_in_order():
    q, g = quantised_problem(4, 37, 50, 5, "cosine")
    chunks = list(rerank_distance_chunks(q, g, k1=6, k2=3, chunk_bytes=2000))
    assert len(chunks) > 1
    assert [c[0] for c in chunks] == [0] + [c[1] for c in chunks[:-1]] and chunks[-1][1] == 37
    full = torch.cat([c[2] for c in chunks])
    assert torch.equal(full, k_reciprocal_rerank(q, g, k1=6, k2=3))


def test_rerank_rejects_bad_arguments():
    q, g = _line_problem()
    with pytest.raises(ValueError, match="k1"):
        k_reciprocal_rerank(q, g, k1=0)
    with pytest.raises(ValueError, match="lambda"):
        k_reciprocal_rerank(q, g, lambda_value=1.5)
    with pytest.raises(ValueError, match="metric"):
        k_reciprocal_rerank(q, g, metric="hamming")


@pytest.mark.parametrize("chunk_bytes", [256 * 2 ** 20, 800, 64])
def test_blocked_neighbours_equal_a_stable_argsort_with_ties(chunk_bytes):
    # integer features on a coarse grid: many exactly tied distances, including across the
    # k-th / (k+1)-th boundary, which the upper-triangular block merge must break by index
    gen = torch.Generator().manual_seed(0)
    for metric in ("euclidean", "cosine"):
        for _ in range(5):
            n, dim = int(torch.randint(2, 40, (1,), generator=gen)), 3
            f = torch.randint(-2, 3, (n, dim), generator=gen).float() / 4
            k = int(torch.randint(1, n + 1, (1,), generator=gen))
            sq = (f * f).sum(1) if metric == "euclidean" else None
            nbr, rowmax = _neighbours(f, k, metric, sq, chunk_bytes)
            d = pairwise_distances(f, f, metric).clamp_(min=0.0)  # the re-ranking's base d
            assert np.array_equal(nbr, torch.sort(d, dim=1, stable=True).indices[:, :k].numpy())
            np.testing.assert_array_equal(rowmax, d.max(1).values.double().numpy())


def test_evaluate_rank_chunks_equals_evaluate_rank():
    rng = np.random.default_rng(0)
    d = rng.random((40, 70)).astype(np.float32)
    ids = (rng.integers(0, 8, 40), rng.integers(0, 8, 70), rng.integers(0, 3, 40),
           rng.integers(0, 3, 70))
    whole = evaluate_rank(d, *ids)
    parts = evaluate_rank_chunks(((a, min(40, a + 9), d[a:a + 9]) for a in range(0, 40, 9)), *ids)
    for x, y in zip(whole, parts):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="cover"):
        evaluate_rank_chunks([(0, 9, d[:9])], *ids)


# ---------------------------------------------------------------------------------------------
# average query expansion
# ---------------------------------------------------------------------------------------------
def test_aqe_hand_case():
    # sims: q.g1 = 0.8, q.g2 = 0, g1.g2 = 0.6; with qe_k = 2 every item averages itself and its
    # most similar other item, weighted by sim ** alpha.
    q = np.array([[1.0, 0.0]], np.float32)
    g = np.array([[0.8, 0.6], [0.0, 1.0]], np.float32)
    nq, ng = average_query_expansion(q, g, qe_k=2, alpha=1.0)
    np.testing.assert_allclose(nq.numpy(), [[0.82, 0.24]], atol=1e-6)
    np.testing.assert_allclose(ng.numpy(), [[0.8, 0.3], [0.24, 0.68]], atol=1e-6)
    nq, _ = average_query_expansion(q, g, qe_k=2, alpha=3.0)
    np.testing.assert_allclose(nq.numpy(), [[(1 + 0.512 * 0.8) / 2, 0.512 * 0.6 / 2]], atol=1e-6)


def test_aqe_equals_dense_reference():
    rng = np.random.default_rng(0)
    q, g = rng.normal(size=(15, 6)), rng.normal(size=(40, 6))
    for times, k, alpha in ((1, 5, 3.0), (2, 3, 1.0)):
        ref_q, ref_g = dense_aqe_reference(q, g, times, k, alpha)
        out_q, out_g = average_query_expansion(q, g, qe_times=times, qe_k=k, alpha=alpha,
                                               chunk_bytes=600)
        np.testing.assert_allclose(out_q.numpy(), ref_q, atol=1e-5)
        np.testing.assert_allclose(out_g.numpy(), ref_g, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# evaluator integration
# ---------------------------------------------------------------------------------------------
def _fed_evaluator(q, g, q_pids, g_pids, q_cams, g_cams, **kwargs):
    ev = ReidEvaluator(len(q), **kwargs)
    feats = torch.from_numpy(np.concatenate([q, g]))
    pids, cams = np.concatenate([q_pids, g_pids]), np.concatenate([q_cams, g_cams])
    for a in range(0, len(feats), 16):  # several batches
        ev.process({"targets": torch.from_numpy(pids[a:a + 16]),
                    "camids": torch.from_numpy(cams[a:a + 16])}, feats[a:a + 16])
    return ev


def test_evaluator_reranks_and_expands_like_the_references():
    q, g = quantised_problem(5, 20, 80, 8, "cosine")
    rng = np.random.default_rng(5)
    ids = (rng.integers(0, 10, 20), rng.integers(0, 10, 80), rng.integers(0, 3, 20),
           rng.integers(0, 3, 80))
    # FEAT_NORM off, so the reference sees exactly the evaluator's features
    ev = _fed_evaluator(q, g, *ids, feat_norm=False, rerank=True, rerank_k1=6, rerank_k2=3,
                        rerank_lambda=0.2)
    res = ev.evaluate()
    cmc, ap, inp = evaluate_rank(dense_rerank_reference(q, g, 6, 3, 0.2), *ids)
    assert res["mAP"] == pytest.approx(100 * ap.mean(), abs=1e-6)
    assert res["Rank-1"] == pytest.approx(100 * cmc[0], abs=1e-6)
    plain = _fed_evaluator(q, g, *ids, feat_norm=False).evaluate()
    assert plain["mAP"] != pytest.approx(res["mAP"], abs=1e-3)  # the option changes the ranking

    ev = _fed_evaluator(q, g, *ids, feat_norm=True, aqe=True, aqe_k=4, aqe_alpha=2.0)
    res = ev.evaluate()
    qn, gn = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (q, g))
    rq, rg = dense_aqe_reference(qn, gn, 1, 4, 2.0)
    rq, rg = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (rq, rg))
    _, ap, _ = evaluate_rank(1 - rq @ rg.T, *ids)
    assert res["mAP"] == pytest.approx(100 * ap.mean(), abs=1e-4)


def test_build_evaluator_passes_the_config_options(tmp_path, data_root):
    from tiny import tiny_cfg

    from cdnet_reid.engine import DefaultTrainer

    cfg = tiny_cfg(tmp_path, data_root, TEST__RERANK__ENABLED="True", TEST__RERANK__K1="7",
                   TEST__RERANK__K2="2", TEST__RERANK__LAMBDA="0.4", TEST__AQE__ENABLED="True",
                   TEST__AQE__QE_K="3", TEST__AQE__ALPHA="2.0", TEST__AQE__QE_TIME="2")
    ev = DefaultTrainer.build_evaluator(cfg, "TinySyntheticReID", {"num_query": 1})
    assert ev.rerank == dict(k1=7, k2=2, lambda_value=0.4)
    assert ev.aqe == dict(qe_times=2, qe_k=3, alpha=2.0)
    cfg = tiny_cfg(tmp_path, data_root)
    ev = DefaultTrainer.build_evaluator(cfg, "TinySyntheticReID", {"num_query": 1})
    assert ev.rerank is None and ev.aqe is None
