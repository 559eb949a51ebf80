"""``cdnet-reid extract`` (tools/extract_features.py): unreadable images follow
``DATALOADER.ON_BAD_IMAGE`` (also in the gallery search), ``--output`` writes what its suffix says,
16-bit PNGs are read like the evaluation reads them, and the moved tools answer ``--help`` through
the console command (TinyNet, CPU, seconds)."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny import tiny_cfg, tiny_opts

from cdnet_reid.apps import benchmark as bench_app
from cdnet_reid.apps import extract as app
from cdnet_reid.apps import search_gallery
from cdnet_reid.cli import run_command
from cdnet_reid.engine import DefaultPredictor
from cdnet_reid.utils.file_io import InputFileError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def weights(tiny_checkpoint):
    return tiny_checkpoint


@pytest.fixture
def crops(tmp_path):
    """A folder of 4 readable crops of different sizes and one file that is no image."""
    folder = tmp_path / "crops"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, (h, w) in {"a.jpg": (50, 20), "b.png": (40, 16), "d.png": (33, 71), "e.bmp": (9, 5)}.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / name)
    (folder / "c_broken.jpg").write_bytes(b"not an image at all")
    return folder


def _opts(tmp_path, data_root, weights, *extra):
    return [*tiny_opts(tmp_path / "unused", data_root), "MODEL.WEIGHTS", weights, *extra]


def _extract(crops, output, opts):
    app.main(["--input", str(crops), "--output", str(output), "--no-progress", *opts])


def test_a_bad_image_stops_the_run_with_one_line_naming_it(crops, tmp_path, data_root, weights):
    with pytest.raises(InputFileError) as info:
        _extract(crops, tmp_path / "f.npy", _opts(tmp_path, data_root, weights))
    message = str(info.value)
    assert "c_broken.jpg" in message and "\n" not in message and "ON_BAD_IMAGE" in message
    assert not (tmp_path / "f.npy").exists()


@pytest.mark.slow
def test_a_bad_image_read_by_a_loader_worker_stops_the_tool_without_a_traceback(
        crops, tmp_path, data_root, weights):
    opts = [*tiny_opts(tmp_path / "unused", data_root), "MODEL.WEIGHTS", weights,
            "DATALOADER.NUM_WORKERS", "1"]
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "extract_features.py"), "--import-module",
                           str(ROOT / "tests" / "tiny.py"), "--input", str(crops), "--output",
                           str(tmp_path / "f.npy"), "--no-progress", *opts],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode != 0
    assert "Traceback" not in proc.stdout + proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and "c_broken.jpg" in last, proc.stderr[-2000:]
    assert last.startswith("error: cannot decode image"), proc.stderr[-2000:]
    assert not (tmp_path / "f.npy").exists()


def test_skip_leaves_bad_images_out_and_names_them(crops, tmp_path, data_root, weights, capsys):
    _extract(crops, tmp_path / "f.npz", _opts(tmp_path, data_root, weights, "DATALOADER.ON_BAD_IMAGE", "skip"))
    out = capsys.readouterr().out
    assert "1 unreadable image(s) left out" in out and "c_broken.jpg" in out
    assert "4 images -> 32-d features" in out
    z = np.load(tmp_path / "f.npz")
    assert list(z["paths"]) == ["a.jpg", "b.png", "d.png", "e.bmp"] and z["feats"].shape == (4, 32)
    predictor = DefaultPredictor(tiny_cfg(tmp_path, data_root, MODEL__WEIGHTS=weights))
    np.testing.assert_allclose(z["feats"], predictor([str(crops / p) for p in z["paths"]]).numpy(), atol=1e-5)


def test_the_suffix_of_output_says_the_format(crops, tmp_path, data_root, weights):
    opts = _opts(tmp_path, data_root, weights, "DATALOADER.ON_BAD_IMAGE", "skip")
    for name in ("f.npy", "f.npz", "f.csv"):
        _extract(crops, tmp_path / name, opts)
    feats = np.load(tmp_path / "f.npy")
    names = (tmp_path / "f.paths.txt").read_text().splitlines()
    assert feats.shape == (4, 32) and feats.dtype == np.float32 and len(names) == 4
    z = np.load(tmp_path / "f.npz")
    assert list(z["paths"]) == names and np.array_equal(z["feats"], feats)
    with open(tmp_path / "f.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["path"] + [f"f{j}" for j in range(32)]
    assert [r[0] for r in rows[1:]] == names
    np.testing.assert_allclose(np.array([r[1:] for r in rows[1:]], dtype=np.float64), feats, atol=1e-6, rtol=0)
    assert not list(tmp_path.glob("*.csv.npy"))


@pytest.mark.parametrize("name", ["x.csv.txt", "x", "x.json"])
def test_another_output_suffix_is_refused_before_a_model_is_built(name, tmp_path, monkeypatch, capsys):
    def not_now(*args, **kwargs):
        raise AssertionError("built a model / config for a refused --output")

    monkeypatch.setattr(app, "setup_tool_cfg", not_now)
    monkeypatch.setattr(app, "create_predictor", not_now)
    assert run_command("extract", ["--input", str(tmp_path), "--output", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1
    assert name in err and ".npy, .npz, .csv" in err


def test_a_16_bit_png_gives_the_features_of_its_8_bit_version(tmp_path, data_root, weights):
    ramp = np.linspace(0, 65535, 40 * 16).round().astype(np.uint16).reshape(40, 16)
    Image.fromarray(ramp).save(tmp_path / "grey16.png")
    with Image.open(tmp_path / "grey16.png") as img:
        assert img.mode.startswith("I")  # really a 16-bit file
    Image.fromarray((ramp >> 8).astype(np.uint8)).save(tmp_path / "grey8.png")
    Image.new("L", (16, 40), 255).save(tmp_path / "white.png")
    predictor = DefaultPredictor(tiny_cfg(tmp_path, data_root, MODEL__WEIGHTS=weights))
    feats, kept, skipped = app.embed_files(predictor, [str(tmp_path / f"{n}.png") for n in
                                                       ("grey16", "grey8", "white")])
    assert kept == [0, 1, 2] and skipped == []
    np.testing.assert_allclose(feats[0], feats[1], atol=1e-6)
    assert np.abs(feats[0] - feats[2]).max() > 1e-2


def test_the_gallery_search_follows_the_same_policy(crops, tmp_path, data_root, weights, capsys):
    query = tmp_path / "query"
    query.mkdir()
    (query / "a.jpg").write_bytes((crops / "a.jpg").read_bytes())
    args = ["--query", str(query), "--gallery", str(crops), "--topk", "10", "--output",
            str(tmp_path / "r.csv")]
    with pytest.raises(InputFileError, match="c_broken.jpg"):
        search_gallery.main([*args, *_opts(tmp_path, data_root, weights)])
    cache = tmp_path / "g.npz"
    skip = _opts(tmp_path, data_root, weights, "DATALOADER.ON_BAD_IMAGE", "skip")
    search_gallery.main([*args, "--gallery-cache", str(cache), *skip])
    assert "c_broken.jpg" in capsys.readouterr().out
    with open(tmp_path / "r.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and not any("c_broken" in r["gallery"] for r in rows)
    assert rows[0]["gallery"].endswith("a.jpg")
    assert [os.path.basename(p) for p in np.load(cache)["paths"]] == ["a.jpg", "b.png", "d.png", "e.bmp"]
    search_gallery.main([*args, "--gallery-cache", str(cache), *skip])  # the cache: the same 4
    with open(tmp_path / "r.csv", newline="") as f:
        assert list(csv.DictReader(f)) == rows


@pytest.mark.slow
def test_benchmark_workers_run_the_app_module_from_any_folder(tmp_path, data_root, monkeypatch):
    assert bench_app.worker_command("infer-plain", [])[1:4] == ["-m", "cdnet_reid.apps.benchmark", "--worker"]
    monkeypatch.chdir(tmp_path)  # neither the checkout nor tools/ is the working folder
    argv = ["--batch-size", "2", "--warmup", "0", "--iters", "1", "--device", "cpu",
            "--import-module", str(ROOT / "tests" / "tiny.py"), *tiny_opts(tmp_path, data_root)]
    worker = bench_app.Worker("infer-plain", "default", argv)
    rate, _, _ = worker.run()
    assert rate > 0 and worker.close() > 0


@pytest.mark.slow
@pytest.mark.parametrize("command", ["extract", "export", "benchmark"])
def test_the_moved_tools_answer_help_through_the_console_command(command, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "cdnet_reid.cli", command, "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"usage: cdnet-reid {command}" in proc.stdout
    assert proc.stdout.count(f"cdnet-reid {command} ") >= 2 and "python tools/" in proc.stdout  # the examples
