"""tools/search_gallery.py: rank a gallery of one's own crops, with a feature cache, re-ranking,
pictures and FAISS indexes."""

import csv
import json
import shutil

import numpy as np
import pytest
from tiny import tiny_opts

from cdnet_reid.apps import search_gallery as app
from cdnet_reid.config import ConfigError
from cdnet_reid.data.datasets import DATASET_REGISTRY


@pytest.fixture
def weights(tiny_checkpoint):
    return tiny_checkpoint


@pytest.fixture(scope="module")
def crops(tmp_path_factory, data_root):
    """A gallery folder of TinySyntheticReID crops and a query folder holding copies of 3 of them."""
    ds = DATASET_REGISTRY.get("TinySyntheticReID")(root=str(data_root))
    tmp = tmp_path_factory.mktemp("crops")
    (tmp / "gallery").mkdir()
    (tmp / "query").mkdir()
    for path, _, _ in ds.gallery:
        shutil.copy(path, tmp / "gallery")
    picked = sorted(p.name for p in (tmp / "gallery").iterdir())[::7][:3]
    for name in picked:
        shutil.copy(tmp / "gallery" / name, tmp / "query")
    return tmp, picked


def _run(tmp, data_root, weights, *extra):
    app.main(["--query", str(tmp / "query"), "--gallery", str(tmp / "gallery"), "--topk", "5",
              *extra, *tiny_opts(tmp / "unused", data_root), "MODEL.WEIGHTS", weights])


def test_each_query_finds_itself_first_and_results_are_written(crops, weights, data_root, tmp_path):
    tmp, picked = crops
    _run(tmp, data_root, weights, "--output", str(tmp_path / "results.csv"), "--visualize", str(tmp_path / "vis"))
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert len(rows) == 3 * 5 and [r["rank"] for r in rows[:5]] == ["1", "2", "3", "4", "5"]
    results = json.loads((tmp_path / "results.json").read_text())
    for q, name in zip(results, picked):
        assert q["query"].endswith(name) and q["matches"][0]["gallery"].endswith(name)
        assert abs(q["matches"][0]["distance"]) < 1e-5
        assert [m["distance"] for m in q["matches"]] == sorted(m["distance"] for m in q["matches"])
    assert len(list((tmp_path / "vis").glob("query_*.png"))) == 3


def test_the_gallery_cache_is_reused_and_refreshed(crops, weights, data_root, tmp_path, monkeypatch):
    tmp, _ = crops
    cache = tmp_path / "feats.npz"
    _run(tmp, data_root, weights, "--output", str(tmp_path / "a.csv"), "--gallery-cache", str(cache))
    embedded = []
    real = app.embed

    def counting(predictor, paths):
        embedded.append(len(paths))
        return real(predictor, paths)

    monkeypatch.setattr(app, "embed", counting)
    _run(tmp, data_root, weights, "--output", str(tmp_path / "b.csv"), "--gallery-cache", str(cache))
    assert embedded == [3]  # only the queries
    assert (tmp_path / "a.json").read_text() == (tmp_path / "b.json").read_text()
    embedded.clear()
    _run(tmp, data_root, weights, "--output", str(tmp_path / "c.csv"), "--gallery-cache", str(cache),
         "TEST.FLIP.ENABLED", "True")  # another model configuration: the gallery is embedded again
    assert sorted(embedded) == [3, len(list((tmp / "gallery").iterdir()))]


def test_bad_output_name_is_refused(crops, weights, data_root, tmp_path, monkeypatch):
    tmp, _ = crops
    monkeypatch.setattr(app, "create_predictor", lambda *a, **k: pytest.fail("a model was built"))
    with pytest.raises(ConfigError, match=r"\.csv or \.json"):
        _run(tmp, data_root, weights, "--output", str(tmp_path / "results.txt"))


def test_exact_faiss_and_rerank_agree_on_clear_cases():
    rng = np.random.default_rng(0)
    g = rng.standard_normal((3000, 32)).astype(np.float32)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    q = g[:20] + 0.01 * rng.standard_normal((20, 32)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    d, i = app.search(q, g, 10)
    assert (i[:, 0] == np.arange(20)).all() and (np.diff(d, axis=1) >= 0).all()
    full = 1 - q @ g.T
    assert np.allclose(d, np.sort(full, axis=1)[:, :10], atol=1e-5)
    d2, i2 = app.exact_topk(q, g, 10, block=700)  # block boundaries do not matter
    assert (i2 == i).all()
    pytest.importorskip("faiss")
    df, i_f = app.search(q, g, 10, index="faiss-flat")
    assert (i_f == i).all() and np.allclose(df, d, atol=1e-5)
    _, i_ivf = app.search(q, g, 10, index="faiss-ivf", nlist=16, nprobe=16)  # all lists: exact
    assert (i_ivf[:, 0] == np.arange(20)).all()
    _, i_rr = app.search(q, g[:200], 5, rerank=(4, 2, 0.3))
    assert (i_rr[:, 0] == np.arange(20)).all()


def test_a_cache_without_trained_weights_is_refused(crops, data_root, tmp_path):
    tmp, _ = crops
    with pytest.raises(ConfigError, match="needs MODEL.WEIGHTS"):
        app.main(["--query", str(tmp / "query"), "--gallery", str(tmp / "gallery"), "--output",
                  str(tmp_path / "r.csv"), "--gallery-cache", str(tmp_path / "f.npz"),
                  *tiny_opts(tmp / "unused", data_root)])
