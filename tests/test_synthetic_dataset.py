"""Tests of the built-in ``SyntheticReID`` dataset (generation, layout, caching, learnability)."""

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest

from cdnet_reid.data.datasets import DATASET_REGISTRY, SyntheticReID, synthetic, synthetic_cache

SMALL = dict(num_train_ids=6, num_test_ids=8, num_cameras=4, images_per_id=5, query_cams_per_id=2,
             gallery_per_id=5, num_distractors=7, num_junk=3, height=64, width=32, seed=3)
MARKET_NAME = re.compile(r"^(-1|\d{4})_c(\d)s(\d)_(\d{6})_(\d{2})\.jpg$")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _raw_pid(path):
    return int(re.match(r"^(-?\d+)_c", os.path.basename(path)).group(1))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_small")
    return SyntheticReID(root=str(root), **SMALL)


def test_registered():
    assert DATASET_REGISTRY.get("SyntheticReID") is SyntheticReID


def test_market_layout_and_names(small):
    d = small.dataset_dir
    assert os.path.basename(d).startswith("SyntheticReID-")  # non-default arguments -> own folder
    assert os.path.isfile(os.path.join(d, ".complete"))
    for sub in ("bounding_box_train", "query", "bounding_box_test"):
        names = os.listdir(os.path.join(d, sub))
        assert names
        for n in names:
            m = MARKET_NAME.match(n)
            assert m, n
            assert 1 <= int(m.group(2)) <= SMALL["num_cameras"]
    # real JPEG files of the requested size
    for path, _, _ in small.train[:3] + small.gallery[:3]:
        with open(path, "rb") as f:
            assert f.read(2) == b"\xff\xd8"
        img = cv2.imread(path)
        assert img.shape == (SMALL["height"], SMALL["width"], 3)
    # no temporary folders left next to it
    assert [e for e in os.listdir(os.path.dirname(d)) if ".tmp-" in e or ".stale-" in e] == []


def test_split_counts_and_ids(small):
    a = SMALL
    assert len(small.train) == a["num_train_ids"] * a["images_per_id"]
    assert len(small.query) == a["num_test_ids"] * a["query_cams_per_id"]
    assert len(small.gallery) == a["num_test_ids"] * a["gallery_per_id"] + a["num_distractors"]
    # junk (-1) is on disk but dropped by the parser
    on_disk = os.listdir(os.path.join(small.dataset_dir, "bounding_box_test"))
    assert sum(n.startswith("-1_") for n in on_disk) == a["num_junk"]
    assert len(on_disk) == len(small.gallery) + a["num_junk"]
    assert all(pid != -1 for _, pid, _ in small.query + small.gallery)
    # distractors keep pid 0, only in the gallery
    assert sum(pid == 0 for _, pid, _ in small.gallery) == a["num_distractors"]
    assert all(pid > 0 for _, pid, _ in small.query)
    # train pids relabelled to 0..N-1; raw train ids (from the file names) disjoint from test ids
    assert sorted({pid for _, pid, _ in small.train}) == list(range(a["num_train_ids"]))
    assert small.num_train_pids == a["num_train_ids"]
    raw_train = {_raw_pid(p) for p, _, _ in small.train}
    test_ids = {pid for _, pid, _ in small.query}
    assert len(raw_train) == a["num_train_ids"] and len(test_ids) == a["num_test_ids"]
    assert not raw_train & test_ids
    assert {pid for _, pid, _ in small.gallery} == test_ids | {0}
    # cameras are 0-based
    for items in (small.train, small.query, small.gallery):
        assert {c for _, _, c in items} <= set(range(a["num_cameras"]))
    assert 0 in {c for _, _, c in small.train + small.query + small.gallery}
    # paths and parsed labels agree
    for path, pid, cam in small.query + small.gallery:
        assert _raw_pid(path) == pid
        assert int(re.search(r"_c(\d+)s", os.path.basename(path)).group(1)) == cam + 1


def test_query_gallery_structure(small):
    """Every query has a match in another camera AND a same-id same-camera gallery image (so the
    same-id-same-camera junk rule of the evaluation matters); one query per (id, camera)."""
    gal = {}
    for _, pid, cam in small.gallery:
        gal.setdefault(pid, []).append(cam)
    seen = set()
    for _, pid, cam in small.query:
        assert (pid, cam) not in seen
        seen.add((pid, cam))
        assert any(c != cam for c in gal[pid])
        assert cam in gal[pid]


def test_deterministic(tmp_path):
    a = SyntheticReID(root=str(tmp_path / "a"), **SMALL)
    b = SyntheticReID(root=str(tmp_path / "b"), **SMALL)
    for split in ("train", "query", "gallery"):
        assert [(os.path.basename(p), pid, c) for p, pid, c in getattr(a, split)] == \
               [(os.path.basename(p), pid, c) for p, pid, c in getattr(b, split)]
    for (pa, _, _), (pb, _, _) in zip(a.train[::7] + a.gallery[::9], b.train[::7] + b.gallery[::9]):
        assert np.array_equal(cv2.imread(pa), cv2.imread(pb))
    # another seed gives other images
    c = SyntheticReID(root=str(tmp_path / "c"), **dict(SMALL, seed=4))
    assert not np.array_equal(cv2.imread(a.query[0][0]), cv2.imread(c.query[0][0]))


def test_second_construction_reuses_files(tmp_path, monkeypatch, caplog):
    with caplog.at_level(logging.INFO, logger=synthetic.__name__):
        first = SyntheticReID(root=str(tmp_path), **SMALL)
    assert first.generated
    assert any("Generated SyntheticReID" in r.getMessage() for r in caplog.records)
    mtimes = {p: os.path.getmtime(p) for p, _, _ in first.train + first.gallery}

    def boom(*args, **kwargs):
        raise AssertionError("must not regenerate")

    monkeypatch.setattr(synthetic, "generate_synthetic_reid", boom)
    second = SyntheticReID(root=str(tmp_path), **SMALL)
    assert not second.generated
    assert second.dataset_dir == first.dataset_dir
    assert (second.train, second.query, second.gallery) == (first.train, first.query, first.gallery)
    assert {p: os.path.getmtime(p) for p, _, _ in second.train + second.gallery} == mtimes
    # other arguments live in another folder (and would need a generation)
    with pytest.raises(AssertionError, match="must not regenerate"):
        SyntheticReID(root=str(tmp_path), **dict(SMALL, num_junk=4))


def test_incomplete_folder_is_not_trusted(tmp_path):
    """A folder without a matching marker (e.g. a killed generation or an old version) is replaced."""
    ref = SyntheticReID(root=str(tmp_path / "ref"), **SMALL)
    name = os.path.basename(ref.dataset_dir)
    broken = tmp_path / "root" / name
    (broken / "bounding_box_train").mkdir(parents=True)
    (broken / "bounding_box_train" / "0001_c1s1_000001_01.jpg").write_bytes(b"not a jpeg")
    d = SyntheticReID(root=str(tmp_path / "root"), **SMALL)
    assert d.generated and len(d.train) == len(ref.train)
    # a marker from an older generator version is not trusted either
    marker = os.path.join(d.dataset_dir, ".complete")
    with open(marker) as f:
        text = f.read()
    with open(marker, "w") as f:
        f.write(text.replace(f'"version": {synthetic.GENERATOR_VERSION}', '"version": -5'))
    assert SyntheticReID(root=str(tmp_path / "root"), **SMALL).generated
    assert sorted(os.listdir(tmp_path / "root")) == [name]


def test_concurrent_construction(tmp_path):
    """Two simultaneous constructions (e.g. two distributed ranks) both end with the same data."""
    results, errors = [None, None], []

    def build(i):
        try:
            results[i] = SyntheticReID(root=str(tmp_path), **SMALL)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=build, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    a, b = results
    assert (a.train, a.query, a.gallery) == (b.train, b.query, b.gallery)
    assert len(a.train) == SMALL["num_train_ids"] * SMALL["images_per_id"]
    assert os.listdir(tmp_path) == [os.path.basename(a.dataset_dir)]


# A generation that is killed (SIGKILL: no clean-up runs) after writing all images, before the marker.
_KILLED_GENERATION = """
import json, os, signal, sys
from cdnet_reid.data.datasets import synthetic, synthetic_cache
root, args = sys.argv[1], json.loads(sys.argv[2])
def killed_midway(folder):
    synthetic.generate_synthetic_reid(folder, **args)
    os.kill(os.getpid(), signal.SIGKILL)
synthetic_cache.ensure_generated(root, synthetic._folder_name(args),
                                 {"version": synthetic.GENERATOR_VERSION, "args": args},
                                 synthetic.SUBSETS, killed_midway)
"""


def _temps(root):
    return sorted(e for e in os.listdir(root) if ".tmp-" in e or ".stale-" in e)


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="kills a process with SIGKILL")
def test_stale_temporaries_are_removed(tmp_path):
    """Temporaries of killed generations are removed when the dataset is built; those of a
    generation still running (a live pid of this host, or another host's recent one) are kept."""
    root = str(tmp_path)
    args = dict(synthetic.DEFAULT_ARGS, **SMALL)
    name, host = synthetic._folder_name(args), synthetic_cache._host()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])))
    killed = subprocess.Popen([sys.executable, "-c", _KILLED_GENERATION, root, json.dumps(args)], env=env,
                              stderr=subprocess.PIPE, text=True)
    _, err = killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL, err
    (left,) = _temps(root)  # what the killed generation left: its pid is in the name
    assert left.startswith(f".{name}.tmp-{host}-{killed.pid}-")
    assert os.listdir(os.path.join(root, left, "query")) and not os.path.exists(os.path.join(root, name))
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        live = f".{name}.tmp-{host}-{running.pid}-0123abcd"
        foreign_new, foreign_old = f".{name}.tmp-otherhost-1-00000000", f".{name}.stale-otherhost-2-00000000"
        for entry in (live, foreign_new, foreign_old):
            os.makedirs(os.path.join(root, entry, "query"))
        week_ago = time.time() - 7 * 24 * 3600
        for path in (os.path.join(root, foreign_old, "query"), os.path.join(root, foreign_old)):
            os.utime(path, (week_ago, week_ago))
        ds = SyntheticReID(root=root, **SMALL)
        assert ds.generated and synthetic_cache.is_complete(
            ds.dataset_dir, {"version": synthetic.GENERATOR_VERSION, "args": args}, synthetic.SUBSETS)
        assert len(ds.train) == SMALL["num_train_ids"] * SMALL["images_per_id"]
        assert _temps(root) == sorted([live, foreign_new])
        # also when the dataset is complete already: a dead owner's temporary goes, a live one stays
        os.makedirs(os.path.join(root, left))
        assert not SyntheticReID(root=root, **SMALL).generated
        assert _temps(root) == sorted([live, foreign_new])
    finally:
        running.kill()
        running.wait()
    assert synthetic_cache.remove_stale_temps(root, name) == 1  # its owner has ended now
    assert _temps(root) == [foreign_new]


def test_bad_arguments(tmp_path):
    with pytest.raises(TypeError):
        SyntheticReID(root=str(tmp_path), num_ids=3)
    with pytest.raises(ValueError):
        SyntheticReID(root=str(tmp_path), num_cameras=1)


# ----------------------------------------------------------------------------- learnability
def _color_hist(path, bins=4):
    """Colour histograms of the upper and lower half of the central region (where the person is),
    sqrt-normalised, concatenated and L2-normalised: a trivial hand-crafted re-ID feature."""
    img = cv2.imread(path)
    h, w = img.shape[:2]
    parts = []
    for top, bottom in ((h // 8, h // 2), (h // 2, 7 * h // 8)):
        c = (img[top:bottom, w // 4: 3 * w // 4].astype(np.int64) * bins // 256).reshape(-1, 3)
        f = np.sqrt(np.bincount((c[:, 0] * bins + c[:, 1]) * bins + c[:, 2], minlength=bins ** 3).astype(float))
        parts.append(f / np.linalg.norm(f))
    f = np.concatenate(parts)
    return f / np.linalg.norm(f)


def _rank1(qf, gf, query, gallery):
    """Rank-1 with the Market protocol (same id & same camera gallery images ignored), and the
    rank-1 expected from random ranking."""
    qp, qc = np.array([p for _, p, _ in query]), np.array([c for _, _, c in query])
    gp, gc = np.array([p for _, p, _ in gallery]), np.array([c for _, _, c in gallery])
    sim = qf @ gf.T
    hits, chance = [], []
    for i in range(len(query)):
        valid = ~((gp == qp[i]) & (gc == qc[i]))
        hits.append(gp[np.argmax(np.where(valid, sim[i], -np.inf))] == qp[i])
        chance.append(((gp == qp[i]) & valid).sum() / valid.sum())
    return float(np.mean(hits)), float(np.mean(chance))


def test_identity_lives_in_the_pixels(tmp_path):
    d = SyntheticReID(root=str(tmp_path), num_train_ids=2, num_test_ids=40, images_per_id=2,
                      num_distractors=40, num_junk=0)
    qf = np.stack([_color_hist(p) for p, _, _ in d.query])
    gf = np.stack([_color_hist(p) for p, _, _ in d.gallery])
    hist_r1, chance = _rank1(qf, gf, d.query, d.gallery)
    rng = np.random.RandomState(0)
    rand_r1, _ = _rank1(rng.randn(*qf.shape), rng.randn(*gf.shape), d.query, d.gallery)
    assert chance < 0.03
    assert rand_r1 < 0.08  # random features: about chance
    assert hist_r1 > max(0.15, 8 * chance)  # a trivial colour feature: far above chance
    assert hist_r1 < 0.9  # ... but far from solving it (viewpoint, lighting, background, blur)
