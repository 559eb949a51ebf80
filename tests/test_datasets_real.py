"""Market-1501, DukeMTMC-reID, MSMT17, CustomReID, CIFAR-100 and ImageNet parsed from generated
trees in their official layouts (real JPEG files, real names, junk, distractors, stray files)."""

import logging
import os
import pickle
import shlex
import shutil

import numpy as np
import pytest
from datagen import (
    make_cifar_pickles,
    make_duke,
    make_image_folder,
    make_imagenet,
    make_market,
    make_msmt17,
    write_image,
)

from cdnet_reid.config import get_cfg
from cdnet_reid.data import TASK_REGISTRY, build_dataset, dataset_task
from cdnet_reid.data.datasets import (
    CIFAR100,
    DATASET_REGISTRY,
    MSMT17,
    CustomReID,
    DatasetLayoutError,
    DukeMTMC,
    ImageNet,
    Market1501,
)
from cdnet_reid.data.datasets.cifar import load_cifar_pickle


def _named(items):
    """(file name or path relative to the split folder, pid, camid) for comparisons."""
    return [(os.path.basename(p), pid, cam) for p, pid, cam in items]


def _relabelled(expected):
    pids = sorted({pid for _, pid, _ in expected})
    return sorted((n, pids.index(pid), cam) for n, pid, cam in expected)


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    root = tmp_path_factory.mktemp("real_layouts")
    return str(root), {"market": make_market(str(root)), "duke": make_duke(str(root)),
                       "msmt": make_msmt17(str(root))}


def test_registered_and_tasks():
    for name in ("Market1501", "DukeMTMC", "MSMT17", "CustomReID"):
        assert DATASET_REGISTRY.get(name).task == "reid" and dataset_task(name) is TASK_REGISTRY.get("reid")
    for name in ("CIFAR100", "ImageNet"):
        assert dataset_task(name).evaluator == "ClassificationEvaluator"


def test_market1501(trees, caplog):
    root, t = trees
    m = t["market"]
    with caplog.at_level(logging.WARNING, logger="cdnet_reid"):
        ds = Market1501(root=root)
    assert ds.dataset_dir == m["dir"]
    # junk (-1) dropped everywhere, distractors (0) kept in the gallery, 0-based cameras
    assert sorted(_named(ds.query)) == sorted(m["query"])
    assert sorted(_named(ds.gallery)) == sorted(m["gallery"])
    assert sum(1 for _, pid, _ in ds.gallery if pid == 0) == 3
    assert not any(pid < 0 for _, pid, _ in ds.train + ds.query + ds.gallery)
    assert {c for _, _, c in ds.train} == set(range(6))
    # training pids relabelled 0..N-1 in sorted raw-pid order (1501 -> 5)
    assert sorted(_named(ds.train)) == _relabelled(m["train"])
    assert ds.num_train_pids == 6 and len(ds.train) == 36
    assert all(os.path.isfile(p) for p, _, _ in ds.train + ds.query + ds.gallery)
    # the image with a non-Market name is reported, stray non-image files are not
    assert "notes_c1.jpg" in caplog.text and "Thumbs.db" not in caplog.text
    table = ds.summary()
    assert "| train" in table and "| gallery" in table and "# cameras" in table


def test_market_alternative_folder_and_anchored_name(tmp_path):
    m = make_market(str(tmp_path), folder="market1501")
    # a parent folder that looks like "<digits>_c<digit>" must not matter (regex on the file name)
    odd = tmp_path / "7_c9_root"
    shutil.copytree(m["dir"], odd / "market1501")
    ds = Market1501(root=str(odd))
    assert ds.dataset_dir.endswith("market1501")
    assert sorted(_named(ds.query)) == sorted(m["query"])


def test_market_sanity_ranges(tmp_path):
    m = make_market(str(tmp_path))
    write_image(os.path.join(m["dir"], "query", "0004_c7s1_000001_01.jpg"), 1)
    with pytest.raises(ValueError, match=r"0004_c7s1_000001_01\.jpg.*camera c7"):
        Market1501(root=str(tmp_path))


def test_dukemtmc(trees):
    root, t = trees
    d = t["duke"]
    ds = DukeMTMC(root=root)
    assert sorted(_named(ds.train)) == _relabelled(d["train"])
    assert sorted(_named(ds.query)) == sorted(d["query"])
    assert sorted(_named(ds.gallery)) == sorted(d["gallery"])
    assert {c for _, _, c in ds.gallery} == {2, 4, 7}  # c3, c5, c8 -> 0-based
    assert ds.stats(ds.gallery) == (5, 8, 3)


def test_dukemtmc_alternative_name(tmp_path):
    d = make_duke(str(tmp_path), folder="dukemtmc")
    assert len(DukeMTMC(root=str(tmp_path)).train) == len(d["train"])


def test_msmt17_lists_and_combine_val(trees):
    root, t = trees
    m = t["msmt"]
    ds = MSMT17(root=root)
    rel = lambda items, sub: sorted((os.path.relpath(p, os.path.join(m["dir"], sub)), pid, c)  # noqa: E731
                                    for p, pid, c in items)
    assert rel(ds.train, "train") == sorted(m["train"])  # list pids 0..3 stay 0..3
    assert rel(ds.query, "test") == sorted(m["query"])
    assert rel(ds.gallery, "test") == sorted(m["gallery"])
    assert {c for _, _, c in ds.gallery} == {6, 14}  # cameras 07 and 15 -> 0-based
    assert len(ds.train) == 12
    both = MSMT17(root=root, combine_val=True)
    assert rel(both.train, "train") == sorted(m["train"] + m["val"]) and both.num_train_pids == 4
    # the per-dataset config option reaches the constructor through build_dataset
    cfg = get_cfg()
    cfg.merge_from_list(["DATASETS.ROOT", root, "DATASETS.MSMT17_COMBINE_VAL", "True"])
    assert len(build_dataset(cfg, "MSMT17").train) == 16
    cfg.DATASETS.MSMT17_COMBINE_VAL = False
    assert len(build_dataset(cfg, "MSMT17").train) == 12


def test_msmt17_missing_list_and_malformed_line(tmp_path):
    m = make_msmt17(str(tmp_path), folder="MSMT17")
    os.remove(os.path.join(m["dir"], "list_gallery.txt"))
    with pytest.raises(DatasetLayoutError, match=r"(?s)lacks list_gallery\.txt.*list_train\.txt +list_val"):
        MSMT17(root=str(tmp_path))
    with open(os.path.join(m["dir"], "list_gallery.txt"), "w") as f:
        f.write("0000/0000_000_07_0303morning_0015_0.jpg 0\nbroken-line\n")
    with pytest.raises(ValueError, match=r"list_gallery\.txt:2"):
        MSMT17(root=str(tmp_path))
    # list_val.txt is only needed when asked for
    os.remove(os.path.join(m["dir"], "list_val.txt"))
    with open(os.path.join(m["dir"], "list_gallery.txt"), "w") as f:
        f.write("0000/0000_001_07_0303morning_0016_1.jpg 0\n")
    assert len(MSMT17(root=str(tmp_path)).gallery) == 1
    with pytest.raises(DatasetLayoutError, match="list_val.txt"):
        MSMT17(root=str(tmp_path), combine_val=True)


def test_missing_dataset_prints_expected_layout(tmp_path):
    with pytest.raises(DatasetLayoutError, match=r"(?s)no folder named Market-1501-v15\.09\.15 or "
                                                  r"market1501.*bounding_box_train/ +0002_c1s1"):
        Market1501(root=str(tmp_path))
    os.makedirs(tmp_path / "DukeMTMC-reID" / "query")
    os.makedirs(tmp_path / "DukeMTMC-reID" / "bounding_box_test")
    with pytest.raises(DatasetLayoutError, match=r"(?s)incomplete, it lacks bounding_box_train\b"
                                                  r".*Expected layout"):
        DukeMTMC(root=str(tmp_path))
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        MSMT17(root=str(tmp_path / "nowhere"))
    m = make_market(str(tmp_path / "data"))
    with pytest.raises(DatasetLayoutError, match=r"looks like the dataset folder itself.*contains"):
        Market1501(root=m["dir"])  # DATASETS.ROOT set to the dataset folder instead of its parent
    with pytest.raises(DatasetLayoutError, match=r"(?s)cifar-100-python.*cifar100_combine"):
        CIFAR100(root=str(tmp_path))
    with pytest.raises(DatasetLayoutError, match=r"(?s)ImageNet.*val/n01440764"):
        ImageNet(root=str(tmp_path))


# ----------------------------------------------------------------------------------- custom data
def test_custom_reid_market_folders(trees, tmp_path):
    root, t = trees
    ds = CustomReID(root=root, folder="Market-1501-v15.09.15")  # any Market-named folder works
    assert sorted(_named(ds.gallery)) == sorted(t["market"]["gallery"])
    # train/ query/ gallery/ folder names, and a train-only dataset
    base = tmp_path / "mine"
    shutil.copytree(os.path.join(t["market"]["dir"], "bounding_box_train"), base / "train")
    only_train = CustomReID(root=str(tmp_path), folder="mine")
    assert len(only_train.train) == 36 and only_train.query == only_train.gallery == []


def test_custom_reid_csv_and_txt_lists(tmp_path):
    base = tmp_path / "shop"
    rows = []
    for i, (pid, cam) in enumerate([(10, 0), (10, 1), (42, 0), (42, 2), (-1, 1), (77, 1)]):
        rel = f"imgs/p{pid}_{i}.jpg"
        write_image(str(base / rel), i)
        rows.append((rel, pid, cam))
    (base / "train.csv").write_text("path,pid,camid\n" + "".join(f"{r},{p},{c}\n" for r, p, c in rows))
    (base / "query.txt").write_text(f"# query\n{rows[0][0]} 10 0\n\n")
    (base / "gallery.txt").write_text(f"{rows[1][0]},10,1\n{rows[3][0]} 42 2\n")
    ds = CustomReID(root=str(tmp_path), folder="shop")
    assert [(os.path.relpath(p, base), pid, c) for p, pid, c in ds.train] == [
        ("imgs/p10_0.jpg", 0, 0), ("imgs/p10_1.jpg", 0, 1), ("imgs/p42_2.jpg", 1, 0),
        ("imgs/p42_3.jpg", 1, 2), ("imgs/p77_5.jpg", 2, 1)]  # -1 dropped, pids relabelled
    assert ds.query == [(str(base / "imgs/p10_0.jpg"), 10, 0)]
    assert [pid for _, pid, _ in ds.gallery] == [10, 42]
    # from the config: DATASETS.CUSTOM_DIR (absolute here)
    cfg = get_cfg()
    cfg.merge_from_list(["DATASETS.ROOT", "/nonexistent", "DATASETS.CUSTOM_DIR", str(base)])
    assert len(build_dataset(cfg, "CustomReID").train) == 5
    (base / "query.txt").write_text("imgs/p10_0.jpg 10\n")
    with pytest.raises(ValueError, match=r"query\.txt:1: expected 'path,pid,camid'"):
        CustomReID(root=str(tmp_path), folder="shop")
    (base / "query.txt").write_text("imgs/missing.jpg 10 0\n")
    with pytest.raises(DatasetLayoutError, match=r"names 1 image\(s\) that do not exist \(of 1\), .*missing\.jpg"):
        CustomReID(root=str(tmp_path), folder="shop")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetLayoutError, match=r"(?s)holds no train/query/gallery.*train\.csv"):
        CustomReID(root=str(tmp_path), folder="empty")
    with pytest.raises(ValueError, match="DATASETS.CUSTOM_DIR"):
        CustomReID(root=str(tmp_path))


def test_custom_subclass_with_fixed_folder(trees):
    root, t = trees

    class MyDuke(CustomReID):
        folder = "DukeMTMC-reID"

    cfg = get_cfg()
    cfg.merge_from_list(["DATASETS.CUSTOM_DIR", "ignored"])
    assert MyDuke.from_config(cfg, root="r") == {"root": "r"}
    assert len(MyDuke(root=root).gallery) == len(t["duke"]["gallery"])


# ----------------------------------------------------------------------------------- classification
def test_cifar100_official_pickles(tmp_path):
    exp = make_cifar_pickles(str(tmp_path), num_classes=10, per_class_train=3, per_class_test=2)
    ds = CIFAR100(root=str(tmp_path))
    assert ds.format == "pickle" and ds.classes == exp["classes"] and ds.num_classes == 10
    assert len(ds.train) == 30 and len(ds.test) == 20
    imgs, labels = exp["train"]
    for i in (0, 7, 29):
        img, label = ds.train[i]
        assert label == labels[i] and img.shape == (32, 32, 3) and img.dtype == np.uint8
        assert np.array_equal(img, imgs[i])  # planes -> HWC correctly
    assert "| test" in ds.summary()


def test_cifar100_pickle_errors(tmp_path):
    make_cifar_pickles(str(tmp_path), num_classes=4, per_class_train=2, per_class_test=1)
    base = tmp_path / "cifar-100-python"
    with open(base / "test", "wb") as f:
        pickle.dump({b"data": np.zeros((3, 3072), np.uint8), b"fine_labels": [0, 1]}, f, protocol=2)
    with pytest.raises(ValueError, match=r"test: data of shape \(3, 3072\) does not match 2 labels"):
        CIFAR100(root=str(tmp_path))
    os.remove(base / "meta")
    with pytest.raises(DatasetLayoutError, match="lacks meta"):
        CIFAR100(root=str(tmp_path))


class _RunsCommand:
    """Unpickling this object runs a shell command: what a crafted CIFAR file would do."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_cifar100_crafted_pickle_cannot_run_code(tmp_path):
    make_cifar_pickles(str(tmp_path), num_classes=4, per_class_train=2, per_class_test=1)
    marker = tmp_path / "code_ran"
    payload = pickle.dumps({b"fine_label_names": _RunsCommand(f"touch {shlex.quote(str(marker))}")},
                           protocol=2)
    meta = tmp_path / "cifar-100-python" / "meta"
    meta.write_bytes(payload)
    with pytest.raises(ValueError, match=r"cannot read .*meta: forbidden global (posix|nt)\.system"):
        CIFAR100(root=str(tmp_path))
    assert not marker.exists()
    pickle.loads(payload)  # the payload is real: plain pickle runs it
    assert marker.exists()
    marker.unlink()
    evil = pickle.dumps([eval, "print"], protocol=2)  # any other global is refused too
    meta.write_bytes(evil)
    with pytest.raises(ValueError, match=r"meta: forbidden global (__builtin__|builtins)\.eval"):
        load_cifar_pickle(str(meta))


def test_cifar100_numpy1_pickles_load(tmp_path):
    """The official archive was written by numpy 1.x (``numpy.core.multiarray._reconstruct``)."""
    exp = make_cifar_pickles(str(tmp_path), num_classes=4, per_class_train=2, per_class_test=1)
    path = tmp_path / "cifar-100-python" / "train"
    data = path.read_bytes()
    old = data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    assert old != data and b"numpy._core" not in old
    path.write_bytes(old)
    d = load_cifar_pickle(str(path))
    assert d["fine_labels"] == exp["train"][1] and d["data"].dtype == np.uint8
    assert np.array_equal(d["data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), exp["train"][0])

def test_cifar100_image_folder(tmp_path):
    classes = ["aquatic_mammals_beaver", "fish_trout", "people_baby"]
    make_image_folder(str(tmp_path / "cifar100_combine" / "train"), classes, {c: 3 for c in classes},
                      size=(32, 32), ext=".png")
    make_image_folder(str(tmp_path / "cifar100_combine" / "test"), classes, {c: 1 for c in classes},
                      size=(32, 32), ext=".png")
    ds = CIFAR100(root=str(tmp_path))
    assert ds.format == "folder" and ds.classes == sorted(classes)
    assert [lbl for _, lbl in ds.train] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert os.path.basename(ds.test[2][0]) == "people_baby_00000.png" and ds.test[2][1] == 2


def test_imagenet_tree(tmp_path):
    exp = make_imagenet(str(tmp_path), num_classes=3, train_per=4, val_per=2)
    ds = ImageNet(root=str(tmp_path))
    assert ds.classes == exp["classes"]
    assert [(os.path.relpath(p, os.path.join(exp["dir"], "train")), ds.classes[lbl]) for p, lbl in ds.train] \
        == exp["train"]  # labels.txt (not an image) ignored
    assert len(ds.test) == 6 and [lbl for _, lbl in ds.test] == [0, 0, 1, 1, 2, 2]
    # an unsorted val/ folder, and a val class unknown to train/
    write_image(os.path.join(exp["dir"], "val", "ILSVRC2012_val_00000001.JPEG"), 0)
    with pytest.raises(DatasetLayoutError, match="sorted into one sub-folder per class"):
        ImageNet(root=str(tmp_path))
    os.remove(os.path.join(exp["dir"], "val", "ILSVRC2012_val_00000001.JPEG"))
    write_image(os.path.join(exp["dir"], "val", "n99999999", "x.JPEG"), 0)
    with pytest.raises(ValueError, match="n99999999"):
        ImageNet(root=str(tmp_path))
