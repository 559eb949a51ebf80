"""Undecodable / missing images under DATALOADER.ON_BAD_IMAGE = fail | skip."""

import logging
import os
from collections import Counter

import numpy as np
import pytest
import torch
from datagen import make_market, write_image
from tiny import tiny_cfg

from cdnet_reid.data import ImageDataset, build_reid_test_loader, build_reid_train_loader
from cdnet_reid.data.transforms import ToUint8Tensor
from cdnet_reid.evaluation import ReidEvaluator


def _corrupt(path, how="garbage"):
    if how == "garbage":
        with open(path, "wb") as f:
            f.write(b"this is not a JPEG" * 10)
    else:  # a truncated JPEG: the header decodes, the pixels do not
        data = open(path, "rb").read()
        with open(path, "wb") as f:
            f.write(data[: len(data) // 3])


@pytest.fixture
def items(tmp_path):
    out = []
    for i, pid in enumerate([0, 0, 0, 1, 1, 2]):
        p = str(tmp_path / f"{pid:04d}_c{i % 3 + 1}_{i}.jpg")
        write_image(p, i)
        out.append((p, pid, i % 3))
    return out


@pytest.mark.parametrize("how", ["garbage", "truncated"])
def test_fail_policy_names_the_file(items, how):
    _corrupt(items[1][0], how)
    ds = ImageDataset(items, ToUint8Tensor())
    assert ds[0]["valid"] is True
    with pytest.raises(OSError, match=f"cannot decode image {items[1][0]}"):
        ds[1]


def test_skip_policy_substitutes_same_identity_and_counts(items, caplog):
    _corrupt(items[1][0])
    os.remove(items[4][0])  # a missing file is handled the same way
    ds = ImageDataset(items, ToUint8Tensor(), on_bad_image="skip")
    with caplog.at_level(logging.WARNING, logger="cdnet_reid"):
        a = ds[(1, 12345)]
        b = ds[(1, 12345)]  # known bad: not decoded again, same deterministic substitute
        c = ds[4]
    assert a["targets"] == 0 and a["valid"] is False and a["img_paths"] in (items[0][0], items[2][0])
    assert b["img_paths"] == a["img_paths"] and torch.equal(a["images"], b["images"])
    assert c["targets"] == 1 and c["img_paths"] == items[3][0]
    assert ds.num_skipped == 3
    warned = [r.getMessage() for r in caplog.records if "Cannot read image" in r.getMessage()]
    assert len(warned) == 2  # once per file
    assert items[1][0] in warned[0] and "replaced by" in warned[0] and "3 sample" not in warned[0]
    assert items[4][0] in warned[1]


def test_skip_policy_gives_up_when_identity_has_no_readable_image(items):
    _corrupt(items[5][0])  # pid 2 has a single image
    ds = ImageDataset(items, ToUint8Tensor(), on_bad_image="skip")
    with pytest.raises(OSError, match=r"none of the 0 other image\(s\) of its identity/class 2"):
        ds[5]
    _corrupt(items[3][0])
    _corrupt(items[4][0])  # pid 1: both bad -> each tried once, then an error (no endless retry)
    with pytest.raises(OSError, match="none of the 1 other"):
        ds[3]


def test_placeholder_for_evaluation(items):
    _corrupt(items[2][0])
    ds = ImageDataset(items, ToUint8Tensor(), on_bad_image="skip", replace="placeholder")
    out = ds[2]
    assert out["valid"] is False and out["img_paths"] == items[2][0] and out["targets"] == 0
    assert out["images"].shape[0] == 3 and int(out["images"].max()) == 0
    with pytest.raises(ValueError, match="ON_BAD_IMAGE"):
        ImageDataset(items, on_bad_image="retry")


@pytest.fixture
def market_with_bad_files(tmp_path):
    m = make_market(str(tmp_path))
    bad_train = os.path.join(m["dir"], "bounding_box_train", "0007_c2s2_000107_01.jpg")
    bad_gallery = os.path.join(m["dir"], "bounding_box_test", "0005_c3s1_000035_01.jpg")
    assert os.path.exists(bad_train) and os.path.exists(bad_gallery)
    _corrupt(bad_train)
    _corrupt(bad_gallery, "truncated")
    return str(tmp_path), bad_train, bad_gallery


def _cfg(tmp_path, root, **kw):
    return tiny_cfg(tmp_path / "out", root, DATASETS__NAMES="('Market1501',)",
                    DATASETS__TESTS="('Market1501',)", SOLVER__IMS_PER_BATCH="16", **kw)


def test_pk_batches_stay_valid_when_skipping(market_with_bad_files, tmp_path):
    root, bad_train, _ = market_with_bad_files
    loader = build_reid_train_loader(_cfg(tmp_path, root, DATALOADER__ON_BAD_IMAGE="skip"))
    pid_of = {path: pid for path, pid, _ in loader.dataset.items}
    seen_bad = 0
    it = iter(loader)
    for _ in range(12):  # > 2 rounds of the P x K sampler over 6 identities of 6 images
        batch = next(it)
        counts = Counter(batch["targets"].tolist())
        assert len(counts) == 4 and set(counts.values()) == {4}  # P = 4 ids x K = 4 images
        # every image, substitutes included, really is of the identity its target says
        assert [pid_of[p] for p in batch["img_paths"]] == batch["targets"].tolist()
        seen_bad += int((~batch["valid"]).sum())
        assert bad_train not in batch["img_paths"]
    assert seen_bad > 0 and loader.dataset.num_skipped == seen_bad


def test_skip_count_is_shared_by_loader_workers(market_with_bad_files, tmp_path):
    root, _, _ = market_with_bad_files
    loader = build_reid_train_loader(_cfg(tmp_path, root, DATALOADER__ON_BAD_IMAGE="skip",
                                          DATALOADER__NUM_WORKERS="1"))
    it = iter(loader)
    flagged = sum(int((~next(it)["valid"]).sum()) for _ in range(9))
    assert flagged > 0 and loader.dataset.num_skipped >= flagged
    del it


def test_fail_policy_stops_the_training_loader(market_with_bad_files, tmp_path):
    root, bad_train, _ = market_with_bad_files
    it = iter(build_reid_train_loader(_cfg(tmp_path, root)))
    with pytest.raises(OSError, match=bad_train):
        for _ in range(12):
            next(it)


def test_evaluation_leaves_unreadable_images_out(market_with_bad_files, tmp_path, caplog):
    root, _, bad_gallery = market_with_bad_files
    cfg = _cfg(tmp_path, root, DATALOADER__ON_BAD_IMAGE="skip")
    loader, meta = build_reid_test_loader(cfg, "Market1501")
    num_query = meta["num_query"]
    feats, pids, cams, paths, valid = [], [], [], [], []
    evaluator = ReidEvaluator(num_query)
    torch.manual_seed(0)
    proj = torch.randn(3, 8)
    for batch in loader:
        out = batch["images"].float().mean((2, 3)) @ proj  # a deterministic "embedding"
        evaluator.process(batch, out)
        feats.append(out)
        pids += batch["targets"].tolist()
        cams += batch["camids"].tolist()
        paths += list(batch["img_paths"])
        valid += batch["valid"].tolist()
    assert valid.count(False) == 1 and paths[valid.index(False)] == bad_gallery
    with caplog.at_level(logging.WARNING, logger="cdnet_reid"):
        res = evaluator.evaluate()
    assert "0 query and 1 gallery image(s) could not be read" in caplog.text
    # the same as evaluating only the readable images
    keep = np.array(valid)
    ref = ReidEvaluator(num_query)
    f = torch.cat(feats)[torch.from_numpy(keep)]
    ref.process({"targets": torch.tensor(pids)[keep], "camids": torch.tensor(cams)[keep]}, f)
    expected = ref.evaluate()
    assert res == pytest.approx(expected)
    with pytest.raises(OSError, match=bad_gallery):
        for _ in build_reid_test_loader(_cfg(tmp_path, root), "Market1501").loader:
            pass
