"""int8 deployment: static quantization of the exported model (QDQ, per-channel weights, calibrated
on real crops) agrees with fp32, and tools/export_onnx.py --int8 evaluates both side by side."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny import tiny_cfg, tiny_opts

from cdnet_reid.data.datasets import DATASET_REGISTRY
from cdnet_reid.data.transforms import build_transforms
from cdnet_reid.engine import DefaultTrainer
from cdnet_reid.engine.predictor import OnnxPredictor
from cdnet_reid.export import EmbeddingModel, ImageCalibrationReader, export_onnx, quantize_onnx, read_onnx_metadata
from cdnet_reid.utils.checkpoint import Checkpointer

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[1]
# a tiny CDNet + FBL neck (the real blocks: gates, residuals, two output maps) at 64 x 32
CDNET = dict(MODEL__BACKBONE__NAME="CDNet", MODEL__BACKBONE__GENOTYPE="cdnet_top2",
             MODEL__BACKBONE__WIDTH_MULT="0.25", MODEL__HEADS__NAME="FBLNeck",
             MODEL__HEADS__FC_DIMS="[64]", MODEL__HEADS__PART_DIM="32", MODEL__HEADS__NUM_CLASSES="12",
             INPUT__SIZE_TEST="[64,32]", INPUT__SIZE_TRAIN="[64,32]")


def _dataset(data_root):
    return DATASET_REGISTRY.get("TinySyntheticReID")(str(data_root))


@pytest.fixture(scope="module")
def cdnet(tmp_path_factory, data_root):
    """A tiny CDNet trained briefly on the embedded-style training crops (a random network's
    embeddings are not what a deployed model computes: quantization is judged on a trained one)."""
    from cdnet_reid.data.common import load_image

    out = tmp_path_factory.mktemp("int8")
    cfg = tiny_cfg(out, data_root, **CDNET)
    ds = _dataset(data_root)
    torch.manual_seed(0)
    model = DefaultTrainer.build_model(cfg)
    transform = build_transforms(cfg, is_train=False)
    images = torch.stack([transform(load_image(item[0])) for item in ds.train])
    pids = sorted({item[1] for item in ds.train})
    labels = torch.tensor([pids.index(item[1]) for item in ds.train])
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(40):  # P x K batches: 4 identities x 4 images
        ids = torch.randperm(len(pids), generator=gen)[:4]
        idx = torch.cat([torch.nonzero(labels == i).flatten()[torch.randperm(int((labels == i).sum()),
                                                                              generator=gen)[:4]] for i in ids])
        loss = sum(model({"images": images[idx], "targets": labels[idx]}).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    fp32 = export_onnx(EmbeddingModel.with_test_settings(model, cfg), str(out / "cdnet.onnx"), (64, 32))
    Checkpointer(model, str(out)).save("model", num_classes=12)
    return cfg, model, fp32, ds, str(out / "model.pth")


@pytest.mark.slow
def test_int8_export_correlates_with_fp32(tmp_path, cdnet):
    cfg, model, fp32, ds, _ = cdnet
    calib = [item[0] for item in ds.train]
    reader = ImageCalibrationReader(calib, (64, 32), transform=build_transforms(cfg, is_train=False),
                                    max_images=48, batch_size=16)
    assert len(reader) == 48
    int8 = quantize_onnx(fp32, str(tmp_path / "cdnet_int8.onnx"), reader)

    proto = onnx.load(int8)
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    inits = {i.name: i for i in proto.graph.initializer}
    int8_weights = [i for i in inits.values() if i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 4]
    assert int8_weights, "no int8 convolution weights"
    # per-channel: the weights' DequantizeLinear take one scale per output channel
    per_channel = [n for n in proto.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in
                   {w.name for w in int8_weights}]
    assert per_channel and all(inits[n.input[1]].dims and inits[n.input[1]].dims[0] > 1 for n in per_channel)
    meta = read_onnx_metadata(int8)
    assert meta["input_size"] == "64,32" and "per-channel" in meta["quantization"]
    assert (proto.graph.input[0].name, proto.graph.output[0].name) == ("images", "embeddings")

    # the embeddings of the test crops (queries + gallery) agree with fp32
    test = [item[0] for item in ds.query + ds.gallery]
    f32 = OnnxPredictor(cfg, fp32)(test)
    q8 = OnnxPredictor(cfg, int8)(test)
    assert q8.shape == f32.shape and torch.allclose(q8.norm(dim=1), torch.ones(len(test)), atol=1e-4)
    cos = (f32 * q8).sum(1)
    assert cos.mean() > 0.98, cos.mean()
    # ... much closer than the embeddings of two different images are
    other = (f32 * f32.roll(1, 0)).sum(1)
    assert cos.mean() > other.mean() + 0.01


def test_calibration_reader_protocol():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40 + i, 20, 3), dtype=np.uint8) for i in range(5)]
    reader = ImageCalibrationReader(images, (32, 16), batch_size=2)
    batches = []
    while (b := reader.get_next()) is not None:
        batches.append(b["images"])
    assert [x.shape for x in batches] == [(2, 3, 32, 16), (2, 3, 32, 16), (1, 3, 32, 16)]
    assert batches[0].dtype == np.float32 and batches[0].max() > 1  # 0-255 pixels
    reader.rewind()
    np.testing.assert_array_equal(reader.get_next()["images"], batches[0])
    assert len(ImageCalibrationReader(images, (32, 16), max_images=3)) == 3
    with pytest.raises(ValueError, match="no calibration images"):
        ImageCalibrationReader([], (32, 16))


def _tool(name, args, cwd):
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / f"{name}.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_export_tool_int8_reports_both_models(tmp_path, data_root, cdnet):
    cfg, model, _, ds, weights = cdnet
    opts = tiny_opts(tmp_path / "out", data_root) + [x for kv in CDNET.items() for x in
                                                      (kv[0].replace("__", "."), kv[1])]
    train_dir = os.path.dirname(ds.train[0][0])
    out = _tool("export_onnx", ["--import-module", str(ROOT / "tests" / "tiny.py"), "--output",
                                str(tmp_path / "m.onnx"), "--int8", "--calibration", train_dir,
                                "--calibration-images", "32", "--bench-batch", "8", "--bench-runs", "2",
                                *opts, "MODEL.WEIGHTS", weights], cwd=tmp_path)
    assert (tmp_path / "m.onnx").exists() and (tmp_path / "m_int8.onnx").exists()
    assert "calibration on 32 images" in out
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in out.splitlines() if line.startswith("| fp32") or line.startswith("| int8")}
    assert set(rows) == {"fp32 (onnxruntime)", "int8 (onnxruntime)"}
    header = next(line for line in out.splitlines() if "TinySyntheticReID mAP" in line)
    assert "TinySyntheticReID Rank-1" in header and "images/s" in header
    fp32_map, int8_map = float(rows["fp32 (onnxruntime)"][1]), float(rows["int8 (onnxruntime)"][1])
    assert 0 < fp32_map <= 100 and abs(fp32_map - int8_map) < 10
    assert float(rows["int8 (onnxruntime)"][2]) > 0

    # the PyTorch evaluation of the same checkpoint gives the fp32 file's figures
    loader, meta = DefaultTrainer.build_test_loader(cfg, "TinySyntheticReID")
    evaluator = DefaultTrainer.build_evaluator(cfg, "TinySyntheticReID", meta)
    from cdnet_reid.evaluation import inference_on_dataset

    ref = inference_on_dataset(model, loader, evaluator, flip_test=cfg.TEST.FLIP.ENABLED)
    assert abs(ref["mAP"] - fp32_map) < 0.02

    # --int8 without crops is refused; a folder without images too
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "export_onnx.py"), "--output",
                           str(tmp_path / "x.onnx"), "--int8"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "--calibration" in proc.stderr


@pytest.mark.slow
def test_extract_features_runs_the_int8_file(tmp_path, data_root, cdnet):
    cfg, model, fp32, ds, weights = cdnet
    reader = ImageCalibrationReader([item[0] for item in ds.train], (64, 32), max_images=32)
    int8 = quantize_onnx(fp32, str(tmp_path / "q.onnx"), reader)
    query_dir = os.path.dirname(ds.query[0][0])
    log = _tool("extract_features", ["--onnx", int8, "--input", query_dir, "--output",
                                     str(tmp_path / "f.npy"), "--no-progress"], cwd=tmp_path)
    assert f"{len(ds.query)} images -> " in log
    feats = np.load(tmp_path / "f.npy")
    ref = OnnxPredictor(fp32)([os.path.join(query_dir, n) for n in
                               (tmp_path / "f.paths.txt").read_text().splitlines()]).numpy()
    assert (feats * ref).sum(1).mean() > 0.98
