"""Test sets are checked completely when the datasets are built (before training): list entries
that escape the dataset folder or do not exist, and a test set in which no query has a match, are
one DatasetError naming the file (one ``error:`` line, exit status 2, from the command line)."""

import pytest
from datagen import write_image
from tiny import tiny_opts

from cdnet_reid.config import ConfigError, get_cfg
from cdnet_reid.data import build_test_loader
from cdnet_reid.data.datasets import CustomReID, DatasetError
from cdnet_reid.engine import main

# (pid, camera) of the gallery images; queries are given per test
GALLERY = [(10, 1), (10, 2), (42, 0), (42, 2), (0, 1)]


def _shop(tmp_path, query, gallery=GALLERY):
    """A CustomReID folder with images for every (pid, camera) and CSV lists."""
    base = tmp_path / "shop"
    rows = {}
    for split, pairs in (("query", query), ("gallery", gallery)):
        lines = ["path,pid,camid"]
        for i, (pid, cam) in enumerate(pairs):
            rel = f"{split}/p{pid}_c{cam}_{i}.jpg"
            write_image(str(base / rel), len(lines) + 7 * i)
            lines.append(f"{rel},{pid},{cam}")
        rows[split] = lines
        (base / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return base


@pytest.mark.parametrize("entry", ["../../etc/passwd", "/etc/passwd", "query/../../outside.jpg", "."])
def test_list_entries_outside_the_dataset_folder_are_refused(tmp_path, entry):
    base = _shop(tmp_path, [(10, 0)])
    with open(base / "query.csv", "a") as f:
        f.write(f"{entry},10,0\n")
    with pytest.raises(DatasetError, match=rf"^CustomReID: {base / 'query.csv'}:3: the image path "
                                           rf"'{entry}' lies outside the dataset folder {base}; "):
        CustomReID(root=str(tmp_path), folder="shop")


def test_absolute_paths_inside_the_folder_are_fine(tmp_path):
    base = _shop(tmp_path, [(10, 0)])
    (base / "query.csv").write_text(f"{base / 'query' / 'p10_c0_0.jpg'},10,0\n")
    assert CustomReID(root=str(tmp_path), folder="shop").query == [(str(base / "query" / "p10_c0_0.jpg"), 10, 0)]


def test_every_listed_image_must_exist(tmp_path):
    base = _shop(tmp_path, [(10, 0), (42, 1)])
    (base / "query" / "p42_c1_1.jpg").unlink()  # the second entry; the first exists
    with pytest.raises(DatasetError, match=rf"CustomReID: {base / 'query.csv'} names 1 image\(s\) that do "
                                           rf"not exist \(of 2\), e\.g\. {base / 'query' / 'p42_c1_1.jpg'}"):
        CustomReID(root=str(tmp_path), folder="shop")


def _cfg(tmp_path, base):
    cfg = get_cfg()
    cfg.merge_from_list(["DATASETS.ROOT", str(tmp_path), "DATASETS.CUSTOM_DIR", str(base),
                         "INPUT.SIZE_TEST", "[32,16]", "DATALOADER.NUM_WORKERS", "0"])
    return cfg


@pytest.mark.parametrize("query", [
    [(7, 0), (8, 1)],    # pids absent from the gallery
    [(10, 1), (42, 0)],  # only same-camera gallery images of 10 (camera 1)... and of 42 (camera 0)
])
def test_a_test_set_without_a_single_match_is_refused(tmp_path, query):
    gallery = [(10, 1), (42, 0), (0, 1)]
    base = _shop(tmp_path, query, gallery)
    with pytest.raises(DatasetError, match=rf"^CustomReID \({base}\) cannot be evaluated: none of its 2 query "
                                           r"images has a match in the gallery \(the same pid from another camera\)$"):
        build_test_loader(_cfg(tmp_path, base), "CustomReID")


def test_queries_without_a_match_are_counted_and_the_rest_evaluated(tmp_path, caplog):
    base = _shop(tmp_path, [(10, 0), (7, 0)])
    caplog.set_level("WARNING")
    loader, meta = build_test_loader(_cfg(tmp_path, base), "CustomReID")
    assert meta["num_query"] == 2
    assert "1 of 2 query images have no match in the gallery" in caplog.text


def test_train_refuses_a_test_set_without_matches_in_one_line_before_training(tmp_path, data_root, capsys):
    base = _shop(tmp_path, [(7, 0)])
    out = tmp_path / "run"
    argv = tiny_opts(out, data_root) + ["DATASETS.TESTS", "('CustomReID',)", "DATASETS.CUSTOM_DIR", str(base)]
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: CustomReID ({base}) cannot be evaluated: none of its 1 query images has a match "
                   f"in the gallery (the same pid from another camera)"]
    assert not list(out.glob("*.pth")) and not (out / "metrics.json").exists()
    assert issubclass(DatasetError, ConfigError)
