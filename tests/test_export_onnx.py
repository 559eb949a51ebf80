"""ONNX export of the evaluation model (TinyNet): parity with PyTorch in onnxruntime."""

import numpy as np
import pytest
import torch
from tiny import seeded_model, tiny_cfg

from cdnet_reid.engine import DefaultPredictor
from cdnet_reid.export import EmbeddingModel, export_onnx, verify_onnx

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _model(tmp_path, data_root, **kw):
    cfg = tiny_cfg(tmp_path, data_root, MODEL__HEADS__NUM_CLASSES="12", **kw)
    model = seeded_model(cfg)
    return cfg, model


@pytest.mark.parametrize("flip", [False, True])
def test_onnx_matches_pytorch_with_dynamic_batch(tmp_path, data_root, flip):
    cfg, model = _model(tmp_path, data_root, TEST__FLIP__ENABLED=str(flip))
    module = EmbeddingModel.with_test_settings(model, cfg)
    path = export_onnx(module, str(tmp_path / "m.onnx"), cfg.INPUT.SIZE_TEST, opset=17)
    proto = onnx.load(path)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert inp.name == "images" and out.name == "embeddings"
    assert inp.type.tensor_type.shape.dim[0].dim_param == "batch"  # dynamic batch axis
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["input_size"] == "32,16" and meta["flip"] == str(int(flip)) and meta["l2_normalize"] == "1"
    worst, per_batch = verify_onnx(module, path, cfg.INPUT.SIZE_TEST, batch_sizes=(1, 5))
    assert set(per_batch) == {1, 5} and worst <= 1e-4

    # the graph computes what the predictor returns (normalisation and flip included)
    predictor = DefaultPredictor(cfg)
    predictor.model = model
    x = torch.randint(0, 256, (4, 3, 32, 16), dtype=torch.uint8)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = sess.run(None, {"images": x.float().numpy()})[0]
    np.testing.assert_allclose(got, predictor.embed(x).numpy(), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_verify_detects_a_different_model(tmp_path, data_root):
    cfg, model = _model(tmp_path, data_root)
    path = export_onnx(EmbeddingModel(model), str(tmp_path / "m.onnx"), (32, 16))
    with torch.no_grad():
        model.backbone.body[0].weight.mul_(-1)  # PyTorch side changed after the export
    worst, _ = verify_onnx(EmbeddingModel(model), path, (32, 16), batch_sizes=(2,))
    assert worst > 1e-2
    with pytest.raises(ValueError, match="opset"):
        export_onnx(EmbeddingModel(model), str(tmp_path / "x.onnx"), (32, 16), opset=13)


@pytest.mark.parametrize("backbone", ["CDNet", "CNet"])
def test_onnx_parity_for_cdnet_and_cnet(tmp_path, backbone):
    from cdnet_reid.config import get_cfg
    from cdnet_reid.modeling import build_model

    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.HEADS.NUM_CLASSES", "10", "MODEL.BACKBONE.NAME",
                         backbone, "MODEL.BACKBONE.GENOTYPE", backbone.lower() + "_top2",
                         "MODEL.BACKBONE.WIDTH_MULT", "0.5", "INPUT.SIZE_TEST", "[64,32]"])
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    module = EmbeddingModel.with_test_settings(model, cfg)
    path = export_onnx(module, str(tmp_path / "cdnet.onnx"), cfg.INPUT.SIZE_TEST)
    worst, _ = verify_onnx(module, path, cfg.INPUT.SIZE_TEST, batch_sizes=(1, 3))
    assert worst <= 1e-4
