"""Using trained models: DefaultPredictor, tools/extract_features.py, rank-list pictures and
training curves (TinyNet on TinySyntheticReID, CPU, seconds)."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from tiny import seeded_model, tiny_cfg, tiny_opts

from cdnet_reid.data import build_transforms
from cdnet_reid.data.datasets import DATASET_REGISTRY
from cdnet_reid.engine import DefaultPredictor, DefaultTrainer, hooks
from cdnet_reid.evaluation import inference_on_dataset
from cdnet_reid.utils.checkpoint import Checkpointer
from cdnet_reid.utils.visualizer import plot_training_curves, read_metrics

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def weights(tmp_path_factory, data_root):
    """A TinyNet checkpoint with random weights and non-trivial BatchNorm statistics."""
    out = tmp_path_factory.mktemp("predictor")
    cfg = tiny_cfg(out, data_root, MODEL__HEADS__NUM_CLASSES="12")
    model = seeded_model(cfg)
    Checkpointer(model, str(out)).save("model", num_classes=12)
    return str(out / "model.pth"), model.eval()


def _cfg(tmp_path, data_root, weights, **kw):
    return tiny_cfg(tmp_path, data_root, MODEL__WEIGHTS=weights[0], **kw)


def _images(tmp_path):
    """Five images of different sizes and kinds: PIL, HWC array, file path, grey, RGBA."""
    rng = np.random.default_rng(0)
    path = tmp_path / "file.png"
    Image.fromarray(rng.integers(0, 256, (17, 60, 3), dtype=np.uint8)).save(path)
    return [Image.fromarray(rng.integers(0, 256, (40, 20, 3), dtype=np.uint8)),
            rng.integers(0, 256, (100, 37, 3), dtype=np.uint8),
            str(path),
            rng.integers(0, 256, (30, 30), dtype=np.uint8),
            rng.integers(0, 256, (64, 24, 4), dtype=np.uint8)]


def _manual(cfg, model, images, flip=False):
    """What the predictor must return: test transform of each RGB image, eval model, L2."""
    tf = build_transforms(cfg, is_train=False)
    rgb = []
    for img in images:
        if isinstance(img, str):
            img = Image.open(img)
        elif isinstance(img, np.ndarray):
            img = Image.fromarray(img[..., :3] if img.ndim == 3 else img)
        rgb.append(tf(img.convert("RGB")))
    x = torch.stack(rgb)
    with torch.no_grad():
        out = model(x)
        if flip:
            out = (out + model(x.flip(dims=[3]))) / 2
    return F.normalize(out, dim=1)


def test_predictor_on_images_of_several_sizes(tmp_path, data_root, weights):
    cfg = _cfg(tmp_path, data_root, weights)
    predictor = DefaultPredictor(cfg)
    assert not predictor.model.training
    images = _images(tmp_path)
    feats = predictor(images)
    assert feats.shape == (5, 32) and feats.dtype == torch.float32
    torch.testing.assert_close(feats.norm(dim=1), torch.ones(5))
    torch.testing.assert_close(feats, _manual(cfg, weights[1], images), atol=1e-6, rtol=0)
    # batching does not change anything; one image gives a 1 x D result
    small = DefaultPredictor(_cfg(tmp_path, data_root, weights, TEST__IMS_PER_BATCH="2"))
    torch.testing.assert_close(small(images), feats, atol=1e-6, rtol=0)
    torch.testing.assert_close(predictor(images[1]), feats[1:2], atol=1e-6, rtol=0)
    with pytest.raises(TypeError, match="uint8"):
        predictor([np.zeros((8, 8, 3), dtype=np.float32)])


def test_predictor_flip_averaging(tmp_path, data_root, weights):
    cfg = _cfg(tmp_path, data_root, weights, TEST__FLIP__ENABLED="True")
    images = _images(tmp_path)
    feats = DefaultPredictor(cfg)(images)
    torch.testing.assert_close(feats, _manual(cfg, weights[1], images, flip=True), atol=1e-6,
                               rtol=0)
    plain = _manual(cfg, weights[1], images)
    assert (feats - plain).abs().max() > 1e-3


def test_predictor_gives_the_evaluated_embeddings(tmp_path, data_root, weights):
    cfg = _cfg(tmp_path, data_root, weights)
    loader, meta = DefaultTrainer.build_test_loader(cfg, "TinySyntheticReID")
    evaluator = DefaultTrainer.build_evaluator(cfg, "TinySyntheticReID", meta)
    inference_on_dataset(DefaultTrainer.build_model_for_eval(cfg), loader, evaluator)
    data = evaluator.query_gallery(with_paths=True)
    feats = DefaultPredictor(cfg)(data["q_paths"] + data["g_paths"])
    torch.testing.assert_close(feats, torch.cat([data["q_feats"], data["g_feats"]]), atol=1e-5,
                               rtol=0)


def _run_tool(name, args, cwd):
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / f"{name}.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_extract_features_cli(tmp_path, data_root, weights):
    crops = tmp_path / "crops"
    (crops / "cam2").mkdir(parents=True)
    rng = np.random.default_rng(1)
    sizes = {"a.jpg": (50, 20), "b.png": (128, 64), "cam2/c.jpeg": (33, 71), "cam2/d.bmp": (9, 5)}
    for name, (h, w) in sizes.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(crops / name)
    (crops / "notes.txt").write_text("not an image")
    opts = tiny_opts(tmp_path / "out", data_root) + ["MODEL.WEIGHTS", weights[0]]
    log = _run_tool("extract_features", ["--import-module", str(ROOT / "tests" / "tiny.py"),
                                         "--input", str(crops), "--output",
                                         str(tmp_path / "f.npy"), *opts], cwd=tmp_path)
    assert "4 images -> 32-d features" in log
    feats = np.load(tmp_path / "f.npy")
    names = (tmp_path / "f.paths.txt").read_text().splitlines()
    assert names == ["a.jpg", "b.png", os.path.join("cam2", "c.jpeg"),
                     os.path.join("cam2", "d.bmp")]
    expected = DefaultPredictor(_cfg(tmp_path, data_root, weights))([str(crops / n) for n in names])
    np.testing.assert_allclose(feats, expected.numpy(), atol=1e-5)

    # a list file (relative to itself) and a single .npz output
    (tmp_path / "list.txt").write_text("# two crops\ncrops/b.png\n\ncrops/a.jpg\n")
    other = tmp_path / "elsewhere"
    other.mkdir()
    _run_tool("extract_features", ["--import-module", str(ROOT / "tests" / "tiny.py"), "--input",
                                   str(tmp_path / "list.txt"), "--output", "g.npz",
                                   "--no-progress", *opts], cwd=other)
    z = np.load(other / "g.npz")
    assert [os.path.basename(p) for p in z["paths"]] == ["b.png", "a.jpg"]
    np.testing.assert_allclose(z["feats"], feats[[1, 0]], atol=1e-6)


@pytest.mark.parametrize("flip", [False, True])
def test_onnx_predictor_equals_the_pytorch_predictor(tmp_path, data_root, weights, flip):
    pytest.importorskip("onnxruntime")
    from cdnet_reid.engine.predictor import OnnxPredictor
    from cdnet_reid.engine.runtimes import create_predictor
    from cdnet_reid.export import EmbeddingModel, export_onnx

    cfg = _cfg(tmp_path, data_root, weights, TEST__FLIP__ENABLED=str(flip))
    torch_predictor = DefaultPredictor(cfg)
    path = export_onnx(EmbeddingModel.with_test_settings(torch_predictor.model, cfg), str(tmp_path / "m.onnx"),
                       cfg.INPUT.SIZE_TEST)
    onnx_predictor = create_predictor(cfg, runtime="onnxruntime", model_file=path)
    assert isinstance(onnx_predictor, OnnxPredictor) and onnx_predictor.model is None
    images = _images(tmp_path)
    ref = torch_predictor(images)
    torch.testing.assert_close(onnx_predictor(images), ref, atol=1e-4, rtol=0)
    # the file alone (no config) knows its input size, flip and normalisation
    alone = OnnxPredictor(path)
    assert alone.flip == flip and tuple(alone.cfg.INPUT.SIZE_TEST) == (32, 16)
    torch.testing.assert_close(alone(images), ref, atol=1e-4, rtol=0)
    torch.testing.assert_close(alone(images[2]), ref[2:3], atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="64x32"):
        OnnxPredictor(_cfg(tmp_path, data_root, weights, INPUT__SIZE_TEST="[48,24]"),
                      export_onnx(EmbeddingModel(torch_predictor.model), str(tmp_path / "big.onnx"), (64, 32)))
    assert type(create_predictor(cfg)) is DefaultPredictor


@pytest.mark.slow
def test_extract_features_with_onnx(tmp_path, data_root, weights):
    pytest.importorskip("onnxruntime")
    from cdnet_reid.export import EmbeddingModel, export_onnx

    crops = tmp_path / "crops"
    crops.mkdir()
    rng = np.random.default_rng(2)
    for i, (h, w) in enumerate([(50, 20), (128, 64), (33, 71)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(crops / f"{i}.png")
    cfg = _cfg(tmp_path, data_root, weights)
    predictor = DefaultPredictor(cfg)
    path = export_onnx(EmbeddingModel.with_test_settings(predictor.model, cfg), str(tmp_path / "m.onnx"),
                       cfg.INPUT.SIZE_TEST)
    opts = tiny_opts(tmp_path / "out", data_root)  # no MODEL.WEIGHTS: the .onnx file is all it needs
    log = _run_tool("extract_features", ["--import-module", str(ROOT / "tests" / "tiny.py"),
                                         "--onnx", path, "--input", str(crops), "--output",
                                         str(tmp_path / "f.npz"), "--no-progress", *opts], cwd=tmp_path)
    assert "3 images -> 32-d features" in log
    z = np.load(tmp_path / "f.npz")
    expected = predictor([str(crops / p) for p in z["paths"]])
    np.testing.assert_allclose(z["feats"], expected.numpy(), atol=1e-4)


# ---------------------------------------------------------------------------------------------
# pictures
# ---------------------------------------------------------------------------------------------
def _decoded(path, min_w, min_h):
    with Image.open(path) as img:
        assert img.format == "PNG"
        arr = np.asarray(img.convert("RGB"))
    assert arr.shape[1] >= min_w and arr.shape[0] >= min_h, arr.shape
    assert arr.std() > 10  # not a blank canvas
    return arr


def test_read_metrics_merges_lines_and_prefers_later_ones(tmp_path):
    path = tmp_path / "metrics.json"
    rows = [{"iteration": 0, "total_loss": 3.0, "lr": 0.1},
            {"iteration": 1, "total_loss": 2.0, "lr": 0.1},
            {"iteration": 1, "ds/mAP": 10.0},           # evaluation line of the same iteration
            {"iteration": 1, "total_loss": 1.5}]        # a resumed run rewrites iteration 1
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"iteration": 2, "tot')
    series = read_metrics(str(path))
    assert series["total_loss"][0].tolist() == [0, 1]
    assert series["total_loss"][1].tolist() == [3.0, 1.5]
    assert series["ds/mAP"][0].tolist() == [1] and series["lr"][1].tolist() == [0.1, 0.1]
    _decoded(plot_training_curves(str(path), str(tmp_path / "c.png")), 600, 200)


def test_evaluation_points_are_markers_in_metric_order(tmp_path, monkeypatch):
    """Evaluations are separate measurements: drawn as markers without a connecting line; the
    legend lists Rank-1, Rank-5, Rank-10, mAP (numbers by value), losses keep their lines."""
    from cdnet_reid.utils import visualizer as vis

    path = tmp_path / "metrics.json"
    rows = [{"iteration": i, "total_loss": 3.0 - i, "lr": 0.1} for i in range(3)]
    rows += [{"iteration": i, "ds/Rank-10": 50.0 + i, "ds/Rank-1": 10.0 + i, "ds/mAP": 5.0 + i,
              "ds/Rank-5": 30.0 + i} for i in (1, 2)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    figures = []
    monkeypatch.setattr(vis, "_save", lambda fig, out: figures.append(fig) or out)
    vis.plot_training_curves(str(path), str(tmp_path / "c.png"))
    axes = {ax.get_title(): ax for ax in figures[0].axes}
    evaluation = next(ax for title, ax in axes.items() if title.startswith("evaluation"))
    assert [line.get_label() for line in evaluation.lines] == ["ds/Rank-1", "ds/Rank-5", "ds/Rank-10", "ds/mAP"]
    assert all(line.get_linestyle() == "None" and line.get_marker() == "o" for line in evaluation.lines)
    assert all(line.get_linestyle() == "-" for line in axes["losses"].lines)


def test_training_writes_its_curves(tmp_path, data_root):
    cfg = tiny_cfg(tmp_path, data_root, SOLVER__MAX_EPOCH="2", TEST__EVAL_PERIOD="1",
                   SOLVER__CHECKPOINT_PERIOD="0", TEST__BEST_METRIC="''")
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    _decoded(tmp_path / "training_curves.png", 600, 200)


def test_curves_hook_never_breaks_training(tmp_path, monkeypatch):
    import cdnet_reid.utils.visualizer as vis

    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    log = logging.getLogger(hooks.__name__)
    log.addHandler(handler)
    try:
        metrics = tmp_path / "metrics.json"
        metrics.write_text("garbage\n")  # no metrics at all
        hooks.PlotTrainingCurves(str(metrics), str(tmp_path / "a.png")).after_train()
        metrics.write_text('{"iteration": 0, "total_loss": 1.0}\n')
        monkeypatch.setattr(vis, "plot_training_curves",
                            lambda *a, **k: (_ for _ in ()).throw(ImportError("no matplotlib")))
        hooks.PlotTrainingCurves(str(metrics), str(tmp_path / "b.png")).after_train()
        missing = hooks.PlotTrainingCurves(str(tmp_path / "missing.json"), str(tmp_path / "c.png"))
        missing.after_train()
    finally:
        log.removeHandler(handler)
    assert len(messages) == 2 and "no matplotlib" in messages[1], messages
    assert not any((tmp_path / f"{x}.png").exists() for x in "abc")


def test_rank_list_pictures(tmp_path, data_root, weights):
    from cdnet_reid.apps import visualize as tool

    cfg = _cfg(tmp_path, data_root, weights)
    model = DefaultTrainer.build_model_for_eval(cfg)
    written = tool.visualize_dataset(cfg, model, "TinySyntheticReID", str(tmp_path / "vis"),
                                     worst=2, topk=5)
    assert len(written) == 3 and written[-1].endswith("summary.png")
    green, red = np.array([40, 170, 60]), np.array([220, 40, 40])
    for path in written[:2]:
        arr = _decoded(path, 6 * 16, 32)
        frames = sum(int((arr == c).all(-1).sum()) for c in (green, red))
        assert frames > 50  # the coloured frames of the gallery matches
    _decoded(written[-1], 600, 200)

    # chosen queries, after re-ranking
    cfg = _cfg(tmp_path, data_root, weights, TEST__RERANK__ENABLED="True", TEST__RERANK__K1="4",
               TEST__RERANK__K2="2")
    ds = DATASET_REGISTRY.get("TinySyntheticReID")(root=str(data_root))
    written = tool.visualize_dataset(cfg, model, "TinySyntheticReID", str(tmp_path / "rr"),
                                     queries=[0, len(ds.query) - 1], topk=3)
    assert [os.path.basename(p) for p in written] == [
        "rank_q00000.png", f"rank_q{len(ds.query) - 1:05d}.png", "summary.png"]
