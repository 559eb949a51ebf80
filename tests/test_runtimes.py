"""Inference runtimes (engine/runtimes.py, chosen by create_predictor): PyTorch fp32/bf16,
onnxruntime, OpenVINO fp32/bf16/int8 behind one predictor API, the precision rules, and the CPU's
matrix-product peak."""

import numpy as np
import pytest
import torch
from tiny import TinySyntheticReID, seeded_model, tiny_cfg

from cdnet_reid.config import ConfigError
from cdnet_reid.engine.runtimes import RuntimeChoiceError, cpu_has_native_bf16, create_predictor, resolve_precision
from cdnet_reid.export import EmbeddingModel, ImageCalibrationReader, export_onnx, quantize_onnx
from cdnet_reid.utils.checkpoint import Checkpointer

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.openvino


def _setup(tmp_path, data_root):
    cfg = tiny_cfg(tmp_path, data_root, MODEL__HEADS__NUM_CLASSES="12")
    model = seeded_model(cfg)
    ckpt = str(tmp_path / "model.pth")
    Checkpointer(model, save_dir=str(tmp_path)).save("model")
    images = [p for p, _, _ in TinySyntheticReID(str(data_root)).query[:12]]
    return cfg, model, ckpt, images


def _predictor(cfg, ckpt, runtime, precision):
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.WEIGHTS = ckpt
    return create_predictor(cfg, runtime=runtime, precision=precision)


def _cos(a, b):
    return float((torch.nn.functional.normalize(a, dim=1) * torch.nn.functional.normalize(b, dim=1)).sum(1).min())


@pytest.mark.slow
def test_runtimes_give_the_same_embeddings(tmp_path, data_root):
    cfg, model, ckpt, images = _setup(tmp_path, data_root)
    ref = _predictor(cfg, ckpt, "torch", "fp32")(images)
    onnx_path = export_onnx(EmbeddingModel.with_test_settings(model, cfg), str(tmp_path / "m.onnx"),
                            cfg.INPUT.SIZE_TEST)
    got = {"onnxruntime fp32": create_predictor(cfg, runtime="onnxruntime", model_file=onnx_path)(images)}
    if cpu_has_native_bf16():
        predictor = _predictor(cfg, ckpt, "torch", "bf16")
        assert next(predictor.model.backbone.parameters()).dtype == torch.bfloat16
        got["torch bf16"] = predictor(images)
    if pytest.importorskip("openvino"):
        got["openvino fp32"] = create_predictor(cfg, runtime="openvino", precision="fp32", model_file=onnx_path)(images)
        if cpu_has_native_bf16():
            predictor = create_predictor(cfg, runtime="openvino", precision="bf16", model_file=onnx_path)
            assert "bfloat16" in str(predictor.compiled.get_property("INFERENCE_PRECISION_HINT"))
            got["openvino bf16"] = predictor(images)
        reader = ImageCalibrationReader([p for p, _, _ in TinySyntheticReID(str(data_root)).train], cfg.INPUT.SIZE_TEST,
                                        max_images=32)
        int8 = quantize_onnx(onnx_path, str(tmp_path / "m_int8.onnx"), reader)
        predictor = create_predictor(cfg, runtime="openvino", model_file=int8)
        assert predictor.precision == "int8"
        got["openvino int8"] = predictor(images)
    for name, emb in got.items():
        assert emb.shape == ref.shape, name
        assert _cos(emb, ref) >= (0.9999 if "fp32" in name else 0.99), (name, _cos(emb, ref))


def test_precision_rules(tmp_path, data_root):
    cfg, model, ckpt, _ = _setup(tmp_path, data_root)
    onnx_path = export_onnx(EmbeddingModel.with_test_settings(model, cfg), str(tmp_path / "m.onnx"),
                            cfg.INPUT.SIZE_TEST)
    assert resolve_precision("onnxruntime", "auto", onnx_path) == "fp32"
    with pytest.raises(RuntimeChoiceError, match="no bf16"):
        resolve_precision("onnxruntime", "bf16", onnx_path)
    with pytest.raises(RuntimeChoiceError, match="quantised"):
        resolve_precision("openvino", "int8", onnx_path)
    with pytest.raises(RuntimeChoiceError, match="torch runtime runs fp32 or bf16"):
        resolve_precision("torch", "int8")
    assert resolve_precision("torch", "auto") == "fp32"  # the evaluator's embeddings unless bf16 is asked for
    with pytest.raises(RuntimeChoiceError, match="exported model file"):
        create_predictor(cfg, runtime="openvino")
    assert issubclass(RuntimeChoiceError, ConfigError)  # a user error: one error: line, exit 2


def test_gemm_peak_is_measured():
    from cdnet_reid.export.peak import gemm_rate, peak_images_per_s

    rate = gemm_rate("fp32", n=256, seconds=0.05)
    assert rate > 1e8  # operations/s of a 256 x 256 product: any CPU does more than 0.1 GFLOP/s
    assert peak_images_per_s(1e9, 2e12) == pytest.approx(1000.0)
    assert np.isfinite(rate)
