"""Evaluators built from the config by task (EVALUATOR_REGISTRY / build_evaluator), and the
shared protocol helpers (junk rule, distances, rank lists, flip-averaged embeddings)."""

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from cdnet_reid.config import get_cfg
from cdnet_reid.evaluation import (
    EVALUATOR_REGISTRY,
    ClassificationEvaluator,
    DatasetEvaluator,
    ReidEvaluator,
    build_evaluator,
    embed,
    evaluate_rank,
    junk_mask,
    pair_distances,
    pairwise_distance_chunks,
    pairwise_distances,
    ranked_gallery,
)


def test_reid_evaluator_from_config():
    cfg = get_cfg()
    cfg.merge_from_list(["TEST.METRIC", "euclidean", "TEST.FEAT_NORM", "False", "TEST.MAX_RANK",
                         "20", "TEST.RERANK.ENABLED", "True", "TEST.RERANK.K1", "7",
                         "TEST.RERANK.K2", "2", "TEST.RERANK.LAMBDA", "0.4", "TEST.AQE.ENABLED",
                         "True", "TEST.AQE.QE_TIME", "2", "TEST.AQE.QE_K", "3", "TEST.AQE.ALPHA",
                         "2.0"])
    ev = build_evaluator(cfg, "ReidEvaluator", num_query=11)
    assert type(ev) is ReidEvaluator
    assert (ev.num_query, ev.metric, ev.feat_norm, ev.max_rank) == (11, "euclidean", False, 20)
    assert ev.rerank == dict(k1=7, k2=2, lambda_value=0.4)
    assert ev.aqe == dict(qe_times=2, qe_k=3, alpha=2.0)
    default = ReidEvaluator.from_config(get_cfg(), num_query=3)
    assert default["metric"] == "cosine" and default["rerank"] is False and default["aqe"] is False
    with pytest.raises(TypeError, match="num_query"):
        ReidEvaluator.from_config(get_cfg())


def test_classification_evaluator_from_config():
    ev = build_evaluator(get_cfg(), "ClassificationEvaluator")
    assert type(ev) is ClassificationEvaluator and ev.topk == (1, 5)


def test_a_registered_task_is_built_by_name():
    class CountingEvaluator(DatasetEvaluator):
        def __init__(self, scale: float, offset: int):
            self.scale, self.offset, self.count = scale, offset, 0

        @classmethod
        def from_config(cls, cfg, *, num_images: int = 0, **context):
            return dict(scale=float(cfg.TEST.MAX_RANK), offset=num_images)

        def process(self, batch, outputs):
            self.count += len(outputs)

        def evaluate(self):
            return OrderedDict(n=self.scale * (self.count + self.offset))

    EVALUATOR_REGISTRY.register()(CountingEvaluator)
    try:
        assert "CountingEvaluator" in EVALUATOR_REGISTRY
        cfg = get_cfg()
        cfg.TEST.MAX_RANK = 2
        ev = build_evaluator(cfg, "CountingEvaluator", num_images=1)
        assert type(ev) is CountingEvaluator
        ev.process({}, torch.zeros(3, 4))
        assert ev.evaluate() == {"n": 8.0}
        with pytest.raises(AssertionError, match="already registered"):
            EVALUATOR_REGISTRY.register("CountingEvaluator")(ReidEvaluator)
    finally:
        EVALUATOR_REGISTRY._obj_map.pop("CountingEvaluator", None)


def test_unknown_task_lists_the_available_ones():
    with pytest.raises(KeyError, match=r"'depth'.*\['ClassificationEvaluator', 'ReidEvaluator'"):
        build_evaluator(get_cfg(), "depth")


def test_junk_mask_broadcasts_like_numpy_and_torch():
    q_pids, q_cams = np.array([1, 2]), np.array([0, 1])
    g_pids, g_cams = np.array([1, 1, 2, 2]), np.array([0, 1, 1, 0])
    expected = np.array([[True, False, False, False], [False, False, True, False]])
    np.testing.assert_array_equal(junk_mask(q_pids[:, None], q_cams[:, None], g_pids, g_cams),
                                  expected)
    got = junk_mask(torch.from_numpy(q_pids)[:, None], torch.from_numpy(q_cams)[:, None],
                    torch.from_numpy(g_pids), torch.from_numpy(g_cams))
    assert torch.equal(got, torch.from_numpy(expected))
    np.testing.assert_array_equal(junk_mask(2, 1, g_pids, g_cams), expected[1])  # one query
    np.testing.assert_array_equal(junk_mask(q_pids, q_cams, g_pids[[0, 2]], g_cams[[0, 2]]),
                                  [True, True])  # (query, gallery) pairs


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_pairwise_distances_and_chunks(metric):
    gen = torch.Generator().manual_seed(0)
    q, g = torch.randn(7, 5, generator=gen), torch.randn(9, 5, generator=gen)
    qd, gd = q.double(), g.double()
    ref = 1 - qd @ gd.T if metric == "cosine" else torch.cdist(qd, gd) ** 2
    d = pairwise_distances(q, g, metric)
    torch.testing.assert_close(d.double(), ref, atol=1e-5, rtol=0)
    parts = list(pairwise_distance_chunks(q, g, metric, chunk_size=3))
    assert [(a, b) for a, b, _ in parts] == [(0, 3), (3, 6), (6, 7)]
    for a, b, x in parts:
        assert torch.equal(x, pairwise_distances(q[a:b], g, metric))
    torch.testing.assert_close(torch.cat([x for _, _, x in parts]), d, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="metric"):
        pairwise_distances(q, g, "l1")


def test_rank_lists_follow_the_metrics():
    # the hand-computed case of tests/test_rank.py: query A's list without its junk item g0
    g_pids, g_cams = np.array([1, 1, 2, 0, 1, 3]), np.array([0, 1, 1, 2, 2, 0])
    dist = np.array([[0.1, 0.5, 0.2, 0.3, 0.5, 0.4], [0.6, 0.1, 0.3, 0.2, 0.05, 0.4]])
    q_pids, q_cams = np.array([1, 1]), np.array([0, 2])
    np.testing.assert_array_equal(ranked_gallery(dist[0], 1, 0, g_pids, g_cams), [2, 3, 5, 1, 4])
    ranked = ranked_gallery(dist[1], 1, 2, g_pids, g_cams)
    np.testing.assert_array_equal(ranked, [1, 3, 2, 5, 0])
    hits = np.flatnonzero(g_pids[ranked] == 1) + 1  # ranks of the matches: AP = (1/1 + 2/5) / 2
    _, ap, _ = evaluate_rank(dist[1:], q_pids[1:], g_pids, q_cams[1:], g_cams)
    assert ap[0] == pytest.approx(np.mean(np.arange(1, len(hits) + 1) / hits))
    pos, neg = pair_distances(dist, q_pids, g_pids, q_cams, g_cams)
    np.testing.assert_array_equal(np.sort(pos), [0.1, 0.5, 0.5, 0.6])  # junk 0.1 (A) / 0.05 (D) out
    np.testing.assert_array_equal(np.sort(neg), np.sort(dist[:, [2, 3, 5]].ravel()))
    _, few = pair_distances(dist, q_pids, g_pids, q_cams, g_cams, max_pairs=4)
    assert few.shape == (4,) and np.isin(few, neg).all()


def test_embed_averages_the_mirrored_images():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())
    x = torch.randn(2, 3, 6, 5)
    with torch.no_grad():
        torch.testing.assert_close(embed(model, x), model(x))
        torch.testing.assert_close(embed(model, x, flip=True),
                                   (model(x) + model(torch.flip(x, dims=[3]))) / 2)
        assert not torch.allclose(embed(model, x, flip=True), model(x))
