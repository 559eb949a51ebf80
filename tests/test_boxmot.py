"""boxmot (optional extra ``track``): the files of ``export --for boxmot`` run in boxmot's own
backends and give our embeddings; BoxmotReID serves boxmot's ``reid_model=``; a tracker runs.

boxmot is imported only in a child process: its import (through huggingface_hub / filelock)
registers fork handlers that made this pytest process crash (SIGSEGV) in a later test that
started subprocesses after DataLoader workers had run."""

import importlib.util
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from tiny import TinySyntheticReID, seeded_model, tiny_cfg

from cdnet_reid.export import EmbeddingModel, ImageCalibrationReader
from cdnet_reid.export.boxmot import boxmot_format, boxmot_metadata_path, export_for_boxmot, imagenet_normalize

for _package in ("boxmot", "onnxruntime", "openvino"):
    if importlib.util.find_spec(_package) is None:
        pytest.skip(f"{_package} is not installed (pip install -e .[track,openvino,export])", allow_module_level=True)
#: Set in the child process that runs the test itself.
CHILD = os.environ.get("CDNET_BOXMOT_CHILD") == "1"

SCALE = 3  # crops are pasted 3x enlarged, so that both sides resize them down


def _model(tmp_path, data_root):
    cfg = tiny_cfg(tmp_path, data_root, MODEL__HEADS__NUM_CLASSES="12", INPUT__RESIZE_BACKEND="cv2")
    model = seeded_model(cfg)
    return cfg, model


def _frame(data_root, n=6, offset=0):
    """A BGR frame with ``n`` enlarged crops of the embedded data and their xyxy boxes."""
    items = TinySyntheticReID(str(data_root)).query[offset:offset + n]
    frame = np.full((32 * SCALE + 20, (16 * SCALE + 10) * n + 10, 3), 90, dtype=np.uint8)
    boxes = []
    for i, (path, _, _) in enumerate(items):
        crop = cv2.imread(path)
        crop = cv2.resize(crop, (crop.shape[1] * SCALE, crop.shape[0] * SCALE), interpolation=cv2.INTER_NEAREST)
        x, y = 10 + i * (16 * SCALE + 10), 10
        frame[y:y + crop.shape[0], x:x + crop.shape[1]] = crop
        boxes.append([x, y, x + crop.shape[1], y + crop.shape[0]])
    return frame, np.array(boxes, dtype=np.float32)


def _our_embeddings(embedder, frame, boxes, size):
    """Our model on the crops resized as boxmot resizes them (OpenCV linear), L2-normalised."""
    crops = []
    for x1, y1, x2, y2 in boxes.astype(int):
        rgb = cv2.cvtColor(frame[y1:y2, x1:x2], cv2.COLOR_BGR2RGB)
        crops.append(torch.from_numpy(cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)))
    with torch.no_grad():
        out = embedder(torch.stack(crops).permute(0, 3, 1, 2).float())
    return torch.nn.functional.normalize(out, dim=1).numpy()


def _boxmot_backend(path):
    from boxmot.reid.core import ReID

    from cdnet_reid.integrations.boxmot import boxmot_accepts_installed_onnxruntime

    with boxmot_accepts_installed_onnxruntime():
        return ReID(weights=path, device="cpu", half=False).model


@pytest.mark.slow
@pytest.mark.skipif(CHILD, reason="the child process runs the test itself")
def test_boxmot_in_a_child_process(tmp_path):
    name = "test_boxmot_backends_give_our_embeddings_and_trackers_run"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"{__file__}::{name}",
                           "--basetemp", str(tmp_path / "child")], env={**os.environ, "CDNET_BOXMOT_CHILD": "1"},
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout[-4000:] + proc.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.skipif(not CHILD, reason="runs in a child process (test_boxmot_in_a_child_process)")
def test_boxmot_backends_give_our_embeddings_and_trackers_run(tmp_path, data_root):
    from boxmot import BotSort

    from cdnet_reid.integrations.boxmot import BoxmotReID, boxmot_accepts_installed_onnxruntime

    cfg, model = _model(tmp_path, data_root)
    embedder = EmbeddingModel.with_test_settings(model, cfg)
    size = tuple(cfg.INPUT.SIZE_TEST)
    frame, boxes = _frame(data_root)
    ours = _our_embeddings(embedder, frame, boxes, size)
    train = [p for p, _, _ in TinySyntheticReID(str(data_root)).train]
    from cdnet_reid.data.transforms import build_transforms

    pixels = build_transforms(cfg, is_train=False)

    def calibration():
        return ImageCalibrationReader(train, size, transform=lambda im: imagenet_normalize(pixels(im)),
                                      max_images=32)

    files = {}
    for name in ("m.onnx", "m.torchscript", "m_openvino_model"):
        out = str(tmp_path / name)
        written = export_for_boxmot(embedder, out, size, model_name="tinynet", num_classes=12,
                                    calibration=None if name.endswith("torchscript") else calibration)
        meta = json.loads(open(boxmot_metadata_path(out)).read())
        assert meta["img_size"] == list(size) and meta["model_kwargs"]["img_size"] == list(size)
        assert meta["model_name"] == "tinynet" and meta["num_classes"] == 12
        files.update({f"{boxmot_format(out)} {k}": p for k, p in written.items()})
    assert sorted(files) == ["onnx fp32", "onnx int8", "openvino fp32", "openvino int8", "torchscript fp32"]

    for label, path in files.items():
        backend = _boxmot_backend(path)
        assert tuple(backend.input_shape) == size, label
        feats = backend.get_features(boxes, frame)
        cosine = (feats * ours).sum(1)
        assert cosine.min() >= (0.999 if "fp32" in label else 0.99), (label, cosine)

    # our runtimes behind boxmot's reid_model protocol, with boxmot's resize (INPUT.RESIZE_BACKEND cv2)
    for runtime, path in (("onnxruntime", files["onnx fp32"]), ("openvino", files["openvino fp32"])):
        reid = BoxmotReID(path, runtime=runtime, precision="fp32", cfg=cfg)
        assert (reid.get_features(boxes, frame) * ours).sum(1).min() >= 0.999, runtime

    # trackers: reid_weights= (boxmot's backend) and reid_model= (ours); the same people keep their ids
    for kwargs in ({"reid_weights": files["onnx fp32"]}, {"reid_model": BoxmotReID(files["onnx fp32"], cfg=cfg)}):
        with boxmot_accepts_installed_onnxruntime():
            tracker = BotSort(**kwargs, use_cmc=False)
            ids = []
            for step in range(4):
                shifted = boxes + np.array([2 * step, 0, 2 * step, 0], dtype=np.float32)
                f = np.roll(frame, 2 * step, axis=1)
                dets = np.concatenate([shifted, np.full((len(boxes), 1), 0.9), np.zeros((len(boxes), 1))], 1)
                tracks = tracker.update(dets.astype(np.float32), f)
                ids.append(sorted(int(t) for t in tracks[:, 4]) if len(tracks) else [])
        assert len(ids[-1]) == len(boxes) and ids[-1] == ids[-2], (kwargs, ids)
