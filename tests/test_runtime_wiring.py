"""The one predictor factory reaches every tool: ``FeatureExtractor(runtime="openvino")`` and
``cdnet-reid extract --runtime openvino`` give the PyTorch fp32 embeddings of the same model, and a
runtime / precision pair that cannot run is one ``error:`` line with exit status 2 (TinyNet, CPU)."""

import numpy as np
import pytest
import torch
from PIL import Image
from tiny import seeded_model, tiny_cfg, tiny_opts

from cdnet_reid import FeatureExtractor
from cdnet_reid.cli import run_command
from cdnet_reid.engine.runtimes import cpu_has_native_bf16
from cdnet_reid.export import EmbeddingModel, export_onnx
from cdnet_reid.utils.checkpoint import Checkpointer

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")
pytestmark = pytest.mark.openvino


@pytest.fixture(scope="module")
def model_files(tmp_path_factory, data_root):
    """A TinyNet checkpoint (seeded random weights, BN statistics away from identity), its
    exported ``.onnx`` file and that file as an OpenVINO IR (``.xml``, which only OpenVINO runs):
    ``(checkpoint, onnx, xml)``."""
    import openvino as ov

    out = tmp_path_factory.mktemp("runtime_wiring")
    cfg = tiny_cfg(out, data_root, MODEL__HEADS__NUM_CLASSES="12")
    model = seeded_model(cfg)
    Checkpointer(model, str(out)).save("model", num_classes=12)
    onnx_path = export_onnx(EmbeddingModel.with_test_settings(model, cfg), str(out / "model.onnx"),
                            cfg.INPUT.SIZE_TEST)
    ov.save_model(ov.convert_model(onnx_path), str(out / "model.xml"))
    return str(out / "model.pth"), onnx_path, str(out / "model.xml")


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wiring_crops")
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(50, 20), (40, 16), (33, 71), (64, 32), (90, 41)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def _cos(a, b):
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    return float(torch.nn.functional.cosine_similarity(a, b, dim=1).min())


def test_feature_extractor_runs_openvino_like_torch(model_files, crops, tmp_path, data_root):
    ckpt, onnx_path, _ = model_files
    images = sorted(str(p) for p in crops.iterdir())
    ref = FeatureExtractor(ckpt, overrides=tiny_opts(tmp_path / "unused", data_root))(images)
    for precision in ("auto", "fp32"):
        extractor = FeatureExtractor(onnx_path, runtime="openvino", precision=precision)
        assert type(extractor.predictor).__name__ == "OpenVinoPredictor"
        got = extractor(images)
        assert got.shape == ref.shape
        assert _cos(got, ref) >= 0.999, (precision, _cos(got, ref))


def test_extract_runs_openvino_like_torch(model_files, crops, tmp_path, data_root):
    ckpt, _, xml = model_files
    opts = tiny_opts(tmp_path / "unused", data_root)
    base = ["--input", str(crops), "--no-progress"]
    assert run_command("extract", [*base, "--output", str(tmp_path / "torch.npy"), *opts,
                                   "MODEL.WEIGHTS", ckpt]) == 0
    assert run_command("extract", [*base, "--output", str(tmp_path / "ov.npy"), "--runtime", "openvino",
                                   "--precision", "fp32", "--model-file", xml, *opts]) == 0
    ref, got = np.load(tmp_path / "torch.npy"), np.load(tmp_path / "ov.npy")
    assert got.shape == ref.shape == (5, ref.shape[1])
    assert (tmp_path / "torch.paths.txt").read_text() == (tmp_path / "ov.paths.txt").read_text()
    assert _cos(got, ref) >= 0.999


@pytest.mark.parametrize("flags, says", [
    (["--runtime", "onnxruntime", "--precision", "bf16"], "onnxruntime runs no bf16"),
    (["--runtime", "openvino", "--precision", "int8"], "needs a statically quantised file"),
    (["--precision", "int8"], "the torch runtime runs fp32 or bf16"),
    (["--runtime", "openvino"], "--runtime openvino needs --onnx"),
])
def test_a_bad_runtime_precision_pair_is_one_error_line(model_files, crops, tmp_path, data_root, capsys, flags,
                                                        says):
    ckpt, onnx_path, _ = model_files
    model = ["MODEL.WEIGHTS", ckpt] if "--runtime" not in flags or flags[1:2] == ["torch"] else []
    if flags[:2] in (["--runtime", "onnxruntime"], ["--runtime", "openvino"]) and len(flags) > 2:
        flags = [*flags, "--onnx", onnx_path]
    code = run_command("extract", ["--input", str(crops), "--output", str(tmp_path / "f.npy"), "--no-progress",
                                   *flags, *tiny_opts(tmp_path / "unused", data_root), *model])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error:") and err.count("\n") == 1, err
    assert says in err
    assert not (tmp_path / "f.npy").exists()


def test_the_gallery_cache_tells_runtimes_and_precisions_apart(model_files, crops):
    from cdnet_reid.apps.search_gallery import _fingerprint
    from cdnet_reid.engine import create_predictor

    _, onnx_path, xml = model_files
    paths = sorted(str(p) for p in crops.iterdir())
    keys = {_fingerprint(create_predictor(None, runtime="onnxruntime", model_file=onnx_path), paths),
            _fingerprint(create_predictor(None, runtime="openvino", precision="fp32", model_file=onnx_path), paths)}
    if cpu_has_native_bf16():
        keys.add(_fingerprint(create_predictor(None, runtime="openvino", precision="bf16", model_file=onnx_path),
                              paths))
    assert len(keys) == (3 if cpu_has_native_bf16() else 2)


def test_eval_runs_openvino_with_the_metrics_of_torch(model_files, tmp_path, data_root):
    from cdnet_reid.engine import main

    ckpt, onnx_path, _ = model_files
    opts = tiny_opts(tmp_path / "eval", data_root)
    ref = main(["--eval-only", *opts, "MODEL.WEIGHTS", ckpt])["TinySyntheticReID"]
    got = main(["--eval-only", "--runtime", "openvino", "--precision", "fp32", "--onnx", onnx_path, *opts])
    got = got["TinySyntheticReID"]
    assert set(got) == set(ref) and "mAP" in ref and 0 < ref["mAP"] < 100
    # fp32 in both: the same ranking (a random model: Rank-1 is 0, mAP a few points)
    assert all(abs(got[k] - ref[k]) < 0.01 for k in ref), (dict(got), dict(ref))


def test_train_refuses_the_evaluation_runtime_flags(tmp_path, data_root, capsys):
    assert run_command("train", ["--runtime", "openvino", *tiny_opts(tmp_path, data_root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and "cdnet-reid eval" in err
