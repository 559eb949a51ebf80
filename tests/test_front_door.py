"""The front door: a model file is enough (the checkpoint defines the model and its input), the
feature extractor API, and one command line whose user errors are one ``error:`` line, exit 2."""

import csv
import logging
import os
import re

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from tiny import tiny_cfg, tiny_opts

from cdnet_reid import FeatureExtractor, cli
from cdnet_reid.config import ConfigError, get_cfg
from cdnet_reid.engine import DefaultPredictor, DefaultTrainer
from cdnet_reid.modeling import ModelConfigMismatchError, inference_config, load_model
from cdnet_reid.utils.checkpoint import Checkpointer

#: The tiny model's input: not the default 256 x 128.
SIZE = [40, 20]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, data_root):
    """A TinyNet checkpoint written as the trainer writes them (config, inference config, number
    of classes), trained at 40 x 20 with flip averaging (random weights: enough for equality)."""
    out = tmp_path_factory.mktemp("front_door")
    cfg = tiny_cfg(out, data_root, MODEL__HEADS__NUM_CLASSES="12", INPUT__SIZE_TEST=str(SIZE),
                   TEST__FLIP__ENABLED="True")
    torch.manual_seed(0)
    model = DefaultTrainer.build_model(cfg)
    Checkpointer(model, str(out)).save("model", config=cfg.dump(), inference_config=inference_config(cfg),
                                       num_classes=12)
    (out / "config.yaml").write_text(cfg.dump())
    return cfg, str(out / "model.pth")


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crops")
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(50, 20), (40, 16), (33, 71)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i:04d}_c1s1_0.png")
    return folder


def _run(command, argv, capsys):
    """``cdnet-reid <command> argv`` in-process: (exit status, stdout, stderr)."""
    rc = cli.main([command, *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _one_error_line(rc, err):
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, err
    assert lines and lines[-1].startswith("error:"), err
    assert sum(line.startswith("error:") for line in lines) == 1 and "Traceback" not in err, err
    return lines[-1]


# ---------------------------------------------------------------------------------- the model file
def test_the_checkpoint_alone_rebuilds_the_model_and_its_input(checkpoint):
    cfg, path = checkpoint
    model, loaded = load_model(path)
    assert list(loaded.INPUT.SIZE_TEST) == SIZE and loaded.TEST.FLIP.ENABLED
    assert loaded.MODEL.BACKBONE.NAME == "TinyNet" and loaded.MODEL.HEADS.NUM_CLASSES == 12
    assert not model.training


def test_an_older_checkpoint_with_only_the_full_config_loads_too(checkpoint, tmp_path):
    cfg, path = checkpoint
    stored = torch.load(path, weights_only=True)
    del stored["inference_config"]
    torch.save(stored, tmp_path / "old.pth")
    _, loaded = load_model(str(tmp_path / "old.pth"))
    assert list(loaded.INPUT.SIZE_TEST) == SIZE and loaded.MODEL.HEADS.NAME == "BLNeck"


def test_a_contradicting_config_stops_unless_the_key_is_set_explicitly(checkpoint, caplog):
    cfg, path = checkpoint
    wrong = cfg.clone()
    wrong.INPUT.SIZE_TEST = [64, 32]
    wrong.MODEL.WEIGHTS = path
    with pytest.raises(ModelConfigMismatchError, match=r"INPUT.SIZE_TEST is \[64, 32\].*trained with \[40, 20\]"):
        load_model(wrong)
    with caplog.at_level(logging.INFO, logger="cdnet_reid"):
        _, used = load_model(wrong, explicit=["INPUT.SIZE_TEST"])
    assert list(used.INPUT.SIZE_TEST) == [64, 32]
    assert "INPUT.SIZE_TEST: using [64, 32] as set explicitly" in caplog.text


def test_a_contradicting_input_size_stops_the_tools_with_one_line(checkpoint, crops, tmp_path, capsys):
    cfg, path = checkpoint
    config = tmp_path / "other.yml"
    config.write_text("INPUT:\n  SIZE_TEST: [64, 32]\n")
    common = ["--input", str(crops), "--output", str(tmp_path / "f.npy"), "--no-progress",
              "--config-file", str(config)]
    opts = ["MODEL.WEIGHTS", path, "MODEL.DEVICE", "cpu", "DATALOADER.NUM_WORKERS", "0"]
    rc, _, err = _run("extract", [*common, *opts], capsys)
    line = _one_error_line(rc, err)
    assert "INPUT.SIZE_TEST" in line and "[64, 32]" in line and "[40, 20]" in line
    assert not (tmp_path / "f.npy").exists()
    # the same key given on the command line: used (and logged)
    rc, out, err = _run("extract", [*common, *opts, "INPUT.SIZE_TEST", "[64,32]"], capsys)
    assert rc == 0 and (tmp_path / "f.npy").exists(), err


def test_extract_without_a_config_equals_the_predictor_with_the_right_config(checkpoint, crops, tmp_path,
                                                                            capsys):
    cfg, path = checkpoint
    rc, _, err = _run("extract", ["--input", str(crops), "--output", str(tmp_path / "f.npy"), "--no-progress",
                                  "MODEL.WEIGHTS", path, "MODEL.DEVICE", "cpu", "DATALOADER.NUM_WORKERS", "0"],
                      capsys)
    assert rc == 0, err
    right = cfg.clone()
    right.MODEL.WEIGHTS = path
    expected = DefaultPredictor(right)(sorted(str(p) for p in crops.iterdir())).numpy()
    np.testing.assert_allclose(np.load(tmp_path / "f.npy"), expected, atol=1e-5)


def test_benchmark_times_the_checkpoint_it_is_given(checkpoint, capsys, tmp_path, data_root):
    """MODEL.WEIGHTS defines the model and its input (40 x 20, not the default config's 256 x 128)."""
    cfg, path = checkpoint
    rc, out, err = _run("benchmark", ["--modes", "infer", "--runs", "1", "--iters", "1", "--warmup", "0",
                                      "--batch-size", "2", "--device", "cpu", "MODEL.WEIGHTS", path], capsys)
    assert rc == 0, err
    assert f"(weights {path})" in out and "| 40x20 " in out, out
    rc, out, err = _run("benchmark", ["--modes", "infer", "--runs", "1", "--iters", "1", "--warmup", "0",
                                      "--batch-size", "2", "--device", "cpu", *tiny_opts(tmp_path, data_root)],
                      capsys)
    assert rc == 0 and "(random weights (seed 0))" in out, err
    rc, out, err = _run("benchmark", ["--modes", "train", "--runs", "1", "--iters", "1", "--warmup", "0",
                                      "--device", "cpu", *tiny_opts(tmp_path, data_root), "SOLVER.AMP.ENABLED", "True"],
                      capsys)
    assert rc == 0 and "torch bf16 autocast (SOLVER.AMP)" in out, err


# --------------------------------------------------------------------------- FeatureExtractor
def test_feature_extractor_equals_the_predictor_for_every_input_kind(checkpoint, crops):
    cfg, path = checkpoint
    right = cfg.clone()
    right.MODEL.WEIGHTS = path
    files = sorted(str(p) for p in crops.iterdir())
    expected = DefaultPredictor(right)(files)
    extractor = FeatureExtractor(path, device="cpu")
    got = extractor(files)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    rgb = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    torch.testing.assert_close(extractor(rgb), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(extractor([Image.open(f) for f in files]), expected, atol=1e-5, rtol=0)
    same_size = torch.from_numpy(np.stack([np.asarray(Image.open(files[0]).convert("RGB"))] * 2)).permute(0, 3, 1, 2)
    torch.testing.assert_close(extractor(same_size), expected[:1].expand(2, -1), atol=1e-5, rtol=0)
    # with the run's config file: the same
    with_config = FeatureExtractor(path, config_file=os.path.join(os.path.dirname(path), "config.yaml"))
    torch.testing.assert_close(with_config(files), expected, atol=1e-5, rtol=0)


def test_bgr_arrays_with_input_format_bgr_equal_the_path(checkpoint, crops):
    cfg, path = checkpoint
    files = sorted(str(p) for p in crops.iterdir())
    by_path = FeatureExtractor(path, device="cpu")(files)
    bgr = [cv2.imread(f) for f in files]
    torch.testing.assert_close(FeatureExtractor(path, device="cpu", input_format="BGR")(bgr), by_path,
                               atol=1e-5, rtol=0)
    right = cfg.clone()
    right.MODEL.WEIGHTS = path
    torch.testing.assert_close(DefaultPredictor(right, input_format="BGR")(bgr), by_path, atol=1e-5, rtol=0)
    # the default (RGB) reads a BGR array as RGB: another embedding
    assert (DefaultPredictor(right)(bgr) - by_path).abs().max() > 1e-3
    with pytest.raises(ConfigError, match="input_format 'YUV'"):
        FeatureExtractor(path, input_format="YUV")


# ---------------------------------------------------------------------------- configs shipped
def test_a_shipped_config_is_found_by_its_name_from_any_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc, out, _ = _run("configs", [], capsys)
    assert rc == 0 and "Market/cdnet.yml" in out and "Synthetic/cdnet.yml" in out
    from cdnet_reid.config.packaged import resolve_config_file

    cfg = get_cfg()
    cfg.merge_from_file(resolve_config_file("Synthetic/cdnet.yml"))
    assert list(cfg.INPUT.SIZE_TEST) == [96, 48]
    (tmp_path / "Synthetic").mkdir()
    (tmp_path / "Synthetic" / "cdnet.yml").write_text("INPUT:\n  SIZE_TEST: [8, 4]\n")
    assert resolve_config_file("Synthetic/cdnet.yml") == "Synthetic/cdnet.yml"  # a path on disk wins


def test_version_and_each_commands_own_help(capsys):
    assert cli.main(["--version"]) == 0 and re.match(r"cdnet-reid \d+\.\d+", capsys.readouterr().out)
    assert cli.main(["eval", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: cdnet-reid eval") and "Evaluate a trained model" in out
    assert "cdnet-reid eval MODEL.WEIGHTS" in out


# ------------------------------------------------------------------------ one error policy
def _tiny(tmp_path, data_root):
    return tiny_opts(tmp_path / "run", data_root)


#: Each command's required arguments (besides the config and the overrides).
REQUIRED = {
    "train": lambda t: [], "eval": lambda t: [], "complexity": lambda t: [], "benchmark": lambda t: [],
    "extract": lambda t: ["--input", str(t), "--output", str(t / "f.npy")],
    "search-gallery": lambda t: ["--query", str(t), "--gallery", str(t), "--output", str(t / "r.csv")],
    "export": lambda t: ["--output", str(t / "m.onnx")],
    "visualize": lambda t: ["--output-dir", str(t / "vis")],
}
CASES = ["missing config", "missing checkpoint", "unknown key", "odd overrides", "unknown flag"]
OTHER = {  # commands without a model config: their own user errors
    "plot-metrics": [["/no/such/run"], ["--no-such-flag"]],
    "plot-search": [["/no/such/run"], ["x", "--no-such-flag"]],
    "random-genotype": [["--seed", "1", "--layers", "0"], ["--seed", "x"]],
    "search-pipeline": [["--search-config", "/no/such.yml"], ["--train-opts", "A"]],
    "configs": [["--no-such-flag"]],
}


@pytest.mark.parametrize("command,case", [(c, k) for c in REQUIRED for k in CASES]
                         + [(c, i) for c, cases in OTHER.items() for i in range(len(cases))])
def test_every_user_error_is_one_line_and_exit_2(command, case, tmp_path, data_root, capsys, crops):
    if command in OTHER:
        rc, _, err = _run(command, OTHER[command][case], capsys)
        _one_error_line(rc, err)
        return
    folder = tmp_path / "in"
    folder.mkdir()
    for f in crops.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    argv = REQUIRED[command](folder)
    opts = _tiny(tmp_path, data_root)
    if case == "missing config":
        argv += ["--config-file", str(tmp_path / "nope.yml"), *opts]
        expected = "nope.yml"
    elif case == "missing checkpoint":
        argv += [*opts, "MODEL.WEIGHTS", str(tmp_path / "nope.pth")]
        expected = "nope.pth"
    elif case == "unknown key":
        argv += [*opts, "MODEL.NO_SUCH_KEY", "1"]
        expected = "MODEL.NO_SUCH_KEY"
    elif case == "odd overrides":
        argv += [*opts, "MODEL.DEVICE"]
        expected = "odd number"
    else:
        argv += ["--no-such-flag", *opts]
        expected = "--no-such-flag"
    rc, _, err = _run(command, argv, capsys)
    assert expected in _one_error_line(rc, err)


# ------------------------------------------------------------------------ outputs that stay right
def test_a_file_name_with_a_line_break_cannot_shift_the_paths_file(checkpoint, crops, tmp_path, capsys):
    _, path = checkpoint
    folder = tmp_path / "odd"
    folder.mkdir()
    names = ["a\nb.png", "c.png"]
    for name, f in zip(names, sorted(crops.iterdir())):
        (folder / name).write_bytes(f.read_bytes())
    opts = ["--input", str(folder), "--no-progress", "MODEL.WEIGHTS", path, "DATALOADER.NUM_WORKERS", "0"]
    rc, _, err = _run("extract", ["--output", str(tmp_path / "f.npy"), *opts], capsys)
    assert "line break" in _one_error_line(rc, err) and not (tmp_path / "f.paths.txt").exists()
    rc, _, err = _run("extract", ["--output", str(tmp_path / "f.npz"), *opts], capsys)
    assert rc == 0, err
    assert list(np.load(tmp_path / "f.npz")["paths"]) == names


def test_a_name_starting_with_a_formula_character_is_escaped_in_the_csv(checkpoint, crops, tmp_path, capsys):
    _, path = checkpoint
    folder = tmp_path / "formula"
    folder.mkdir()
    for name, f in zip(["=HYPERLINK(1).png", "plain.png"], sorted(crops.iterdir())):
        (folder / name).write_bytes(f.read_bytes())
    rc, _, err = _run("extract", ["--input", str(folder), "--output", str(tmp_path / "f.csv"), "--no-progress",
                                  "MODEL.WEIGHTS", path, "DATALOADER.NUM_WORKERS", "0"], capsys)
    assert rc == 0, err
    with open(tmp_path / "f.csv", newline="") as f:
        cells = [row[0] for row in csv.reader(f)][1:]
    assert cells == ["'=HYPERLINK(1).png", "plain.png"]


def test_a_damaged_gallery_cache_is_rebuilt_and_a_cache_name_is_kept(checkpoint, crops, tmp_path, capsys,
                                                                      caplog):
    _, path = checkpoint
    cache = tmp_path / "gallery.cache"  # no .npz suffix: written and read under this very name
    cache.write_bytes(b"PK\x03\x04 a write killed half-way")
    argv = ["--query", str(crops), "--gallery", str(crops), "--output", str(tmp_path / "r.csv"),
            "--gallery-cache", str(cache), "MODEL.WEIGHTS", path, "DATALOADER.NUM_WORKERS", "0"]
    with caplog.at_level(logging.INFO, logger="cdnet_reid"):
        rc, _, err = _run("search-gallery", argv, capsys)
        assert rc == 0, err
        assert "cannot be read" in caplog.text and not (tmp_path / "gallery.cache.npz").exists()
        first = (tmp_path / "r.csv").read_text()
        caplog.clear()
        rc, _, err = _run("search-gallery", argv, capsys)
    assert rc == 0 and "read from" in caplog.text and (tmp_path / "r.csv").read_text() == first


@pytest.mark.slow
def test_search_gallery_runs_an_exported_model_and_names_the_files_in_its_pictures(checkpoint, crops, tmp_path,
                                                                                   capsys, monkeypatch):
    _, path = checkpoint
    rc, _, err = _run("export", ["--output", str(tmp_path / "m.onnx"), "--no-check", "MODEL.WEIGHTS", path], capsys)
    assert rc == 0, err
    labels = []
    import matplotlib.axes

    original = matplotlib.axes.Axes.set_xlabel
    monkeypatch.setattr(matplotlib.axes.Axes, "set_xlabel",
                        lambda self, text, *a, **k: labels.append(text) or original(self, text, *a, **k))
    base = ["--query", str(crops), "--gallery", str(crops), "--topk", "2"]
    rc, _, err = _run("search-gallery", [*base, "--output", str(tmp_path / "onnx.csv"), "--onnx",
                                         str(tmp_path / "m.onnx"), "--visualize", str(tmp_path / "vis"),
                                         "DATALOADER.NUM_WORKERS", "0"], capsys)
    assert rc == 0, err
    rc, _, err = _run("search-gallery", [*base, "--output", str(tmp_path / "torch.csv"), "MODEL.WEIGHTS", path,
                                         "DATALOADER.NUM_WORKERS", "0"], capsys)
    assert rc == 0, err
    with open(tmp_path / "onnx.csv") as a, open(tmp_path / "torch.csv") as b:
        onnx_rows, torch_rows = list(csv.DictReader(a)), list(csv.DictReader(b))
    assert [r["gallery"] for r in onnx_rows] == [r["gallery"] for r in torch_rows]
    assert "0000_c1s1_0.png" in labels and len(list((tmp_path / "vis").glob("*.png"))) == 3


@pytest.mark.parametrize("content", [b"", b"not an onnx model", "checkpoint"])
def test_a_file_that_is_not_onnx_is_one_line(content, checkpoint, crops, tmp_path, capsys):
    _, path = checkpoint
    bad = tmp_path / "model.onnx"
    bad.write_bytes(open(path, "rb").read() if content == "checkpoint" else content)
    rc, _, err = _run("extract", ["--input", str(crops), "--output", str(tmp_path / "f.npy"), "--onnx", str(bad)],
                      capsys)
    assert str(bad) in _one_error_line(rc, err)


# ------------------------------------------------------------------- eval without a config file
@pytest.mark.slow
def test_eval_without_a_config_equals_eval_with_the_runs_config(tmp_path, data_root, capsys):
    """A tiny run trained at 40 x 20 (not the default 256 x 128), evaluated from the checkpoint
    alone and with the run's config file: the same mAP (the issue: 3.80 instead of 65.03)."""
    out = tmp_path / "run"
    opts = tiny_opts(out, data_root) + ["INPUT.SIZE_TRAIN", str(SIZE).replace(" ", ""), "INPUT.SIZE_TEST",
                                        str(SIZE).replace(" ", ""), "TEST.EVAL_PERIOD", "0"]
    assert cli.main(["train", *opts]) == 0
    data = ["DATASETS.TESTS", "('TinySyntheticReID',)", "DATASETS.ROOT", str(data_root), "MODEL.DEVICE", "cpu",
            "DATALOADER.NUM_WORKERS", "0", "OUTPUT_DIR", str(tmp_path / "eval")]
    weights = ["MODEL.WEIGHTS", str(out / "model_final.pth")]
    alone = cli.evaluate([*weights, *data], "cdnet-reid eval")
    with_config = cli.evaluate(["--config-file", str(out / "config.yaml"), *weights, *data], "cdnet-reid eval")
    capsys.readouterr()
    assert abs(alone["TinySyntheticReID"]["mAP"] - with_config["TinySyntheticReID"]["mAP"]) <= 0.01
    assert alone["TinySyntheticReID"]["Rank-1"] == with_config["TinySyntheticReID"]["Rank-1"]


def test_a_renamed_flag_keeps_its_old_spelling_for_a_release_with_a_warning(caplog):
    from cdnet_reid.apps.args import add_flag, add_topk, tool_parser

    parser = tool_parser("t", None)
    add_topk(parser)
    add_flag(parser, "--query-indices", deprecated=("--queries",), default=None)
    with caplog.at_level(logging.WARNING, logger="cdnet_reid"):
        args = parser.parse_args(["--k", "3", "--queries", "0,5"])
    assert args.topk == 3 and args.query_indices == "0,5"
    assert "--k is deprecated" in caplog.text and "use --topk" in caplog.text
    assert "--queries is deprecated" in caplog.text
    assert parser.parse_args([]).topk == 10
