""":func:`create_predictor`, the one factory of predictors, the runtimes beyond PyTorch fp32 and
onnxruntime, and the precision rules of all of them: PyTorch bf16 (where the CPU computes bf16
natively) and OpenVINO (fp32, bf16, int8 from a quantised file).

Precision ``auto``: the torch runtime runs fp32 (the evaluator's exact embeddings; bf16 is asked
for with ``bf16``), onnxruntime the file's precision (fp32, or int8 for a quantised file),
OpenVINO bf16 where the CPU has native bf16 arithmetic (AVX512-BF16 or AMX-BF16: Intel Sapphire
Rapids and later, AMD Zen 4 and later), else fp32, and int8 for a quantised file. The choice is
logged.

A file written by ``export --for boxmot`` takes ImageNet-normalised input (its metadata says so);
the predictors normalise the test transform's 0-255 pixels for it, so every file of ours runs
behind the same API.
"""

import json
import logging
import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..config import ConfigError
from ..data.transforms import build_transforms
from ..evaluation.evaluator import embed
from ..modeling.fuse import to_bf16
from ..utils.env import cpu_flags
from ..utils.file_io import InputFileError, InputFileNotFoundError
from ..utils.input_convention import IMAGENET_CONVENTION, read_onnx_metadata, to_model_input
from .predictor import (
    DefaultPredictor,
    OnnxPredictor,
    Predictor,
    cfg_for_model_file,
    check_input_format,
    check_onnx_file,
)

logger = logging.getLogger(__name__)

__all__ = ["PRECISIONS", "RUNTIMES", "Bf16TorchPredictor", "OpenVinoPredictor", "PredictorModule", "RuntimeChoiceError",
           "check_runtime", "create_predictor", "cpu_flags", "cpu_has_native_bf16", "infer_runtime",
           "resolve_precision"]

#: The runtimes of ``create_predictor``.
RUNTIMES = ("torch", "onnxruntime", "openvino")
#: Their precisions.
PRECISIONS = ("auto", "fp32", "bf16", "int8")


class RuntimeChoiceError(ConfigError):
    """A runtime / precision / model file combination that cannot run."""


def cpu_has_native_bf16() -> bool:
    """Whether the CPU multiplies bf16 natively (AVX512-BF16 or AMX-BF16)."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def infer_runtime(model_path: str) -> str:
    """The runtime a model file runs in by default: ``.onnx`` onnxruntime, ``.xml`` or an
    ``*_openvino_model`` folder OpenVINO, anything else (a checkpoint) PyTorch."""
    p = os.path.normpath(str(model_path)).lower()
    if p.endswith(".onnx"):
        return "onnxruntime"
    if p.endswith(".xml") or p.endswith("_openvino_model") or os.path.isdir(model_path):
        return "openvino"
    return "torch"


def check_runtime(runtime: str, model_file: str | None = None) -> None:
    """:class:`RuntimeChoiceError` unless ``runtime`` is one of :data:`RUNTIMES` and, where
    ``model_file`` is given (not None), has the model it runs (the exported-file runtimes need
    ``model_file``, an existing path; torch reads ``MODEL.WEIGHTS``)."""
    if runtime not in RUNTIMES:
        raise RuntimeChoiceError(f"runtime {runtime!r}: expected one of {', '.join(RUNTIMES)}")
    if model_file is None:
        return
    if runtime != "torch" and not model_file:
        raise RuntimeChoiceError(f"runtime {runtime} runs an exported model file (cdnet-reid export): "
                                 "give its path")
    if runtime != "torch" and not os.path.exists(model_file):
        raise InputFileNotFoundError(f"model file not found: {model_file}")


def _file_is_quantized(model_path: str, runtime: str) -> bool:
    p = str(model_path)
    if p.lower().endswith(".onnx"):
        import onnx

        check_onnx_file(p)
        try:
            graph = onnx.load(p, load_external_data=False)
        except Exception as e:  # onnx raises protobuf's DecodeError and others
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise InputFileError(f"cannot load ONNX model {p}: {first}") from None
        return any(m.key == "quantization" for m in graph.metadata_props) or any(
            n.op_type == "QuantizeLinear" for n in graph.graph.node)
    if runtime == "openvino":
        meta = _openvino_manifest(p)
        if meta.get("precision", "fp32") != "fp32":
            return True
        with open(_openvino_xml(p)) as f:
            return "FakeQuantize" in f.read()
    return False


def resolve_precision(runtime: str, precision: str, model_path: str | None = None) -> str:
    """The precision a predictor runs: ``precision``, or for ``auto`` the rule of the module
    docstring (logged). :class:`RuntimeChoiceError` for a combination that cannot run."""
    check_runtime(runtime)
    if precision not in PRECISIONS:
        raise RuntimeChoiceError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    quantized = model_path is not None and runtime != "torch" and _file_is_quantized(model_path, runtime)
    native = cpu_has_native_bf16()
    if precision == "auto":
        if quantized:
            chosen = "int8"
        elif runtime == "openvino":
            chosen = "bf16" if native else "fp32"
        else:
            chosen = "fp32"
        logger.info("%s precision: %s (auto: the CPU %s native bf16%s)", runtime, chosen,
                    "has" if native else "has no", "; the file is int8-quantised" if quantized else "")
        return chosen
    if precision == "int8" and not quantized:
        raise RuntimeChoiceError(f"precision int8 needs a statically quantised file (cdnet-reid export --int8): "
                                 f"{model_path} is not one" if runtime != "torch" else
                                 "precision int8: the torch runtime runs fp32 or bf16; export --int8 and use "
                                 "onnxruntime or openvino")
    if precision in ("fp32", "bf16") and quantized:
        raise RuntimeChoiceError(f"{model_path} is int8-quantised: its precision is int8 (or use the fp32 file)")
    if precision == "bf16" and runtime == "onnxruntime":
        raise RuntimeChoiceError("onnxruntime runs no bf16 on CPU: use the openvino or torch runtime for bf16")
    if precision == "bf16" and not native:
        raise RuntimeChoiceError("precision bf16: this CPU has no native bf16 (AVX512-BF16 / AMX-BF16); use fp32")
    return precision


# ----------------------------------------------------------------------------------- PyTorch
class Bf16TorchPredictor(DefaultPredictor):
    """:class:`DefaultPredictor` in bf16 (same checkpoint, same config rule): the BatchNorm-folded,
    channels-last model (:func:`~cdnet_reid.modeling.fuse.to_bf16`) with bf16 weights; the pixel
    normalisation runs in float32. Embeddings are returned in float32."""

    precision = "bf16"

    def __init__(self, cfg, *, input_format: str = "RGB",
                 config_keys: Sequence[str] | None = None, explicit: Sequence[str] = ()):
        super().__init__(cfg, input_format=input_format, config_keys=config_keys, explicit=explicit)
        self.model = to_bf16(self.model)

    @torch.no_grad()
    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            out = embed(self.model, batch, self.flip).float()
        return (F.normalize(out, dim=1) if self.feat_norm else out).cpu()


# ----------------------------------------------------------------------------------- OpenVINO
def _openvino_xml(path: str) -> str:
    if os.path.isdir(path):
        xmls = sorted(f for f in os.listdir(path) if f.endswith(".xml"))
        if not xmls:
            raise InputFileNotFoundError(f"{path}: no OpenVINO .xml model in this folder")
        return os.path.join(path, xmls[0])
    return path


def _openvino_manifest(path: str) -> dict:
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    manifest = os.path.join(folder, "manifest.json")
    if os.path.isfile(manifest):
        with open(manifest) as f:
            return json.load(f)
    return {}


def _openvino_metadata(path: str) -> dict:
    """ONNX metadata of ``path``, or its folder's ``manifest.json`` in the same keys."""
    if path.lower().endswith(".onnx"):
        return read_onnx_metadata(path)
    manifest = _openvino_manifest(path)
    meta = {"flip": "1" if manifest.get("flip_average") else "0",
            "l2_normalize": "1" if manifest.get("l2_normalize") else "0"}
    if manifest.get("input", {}).get("mean"):
        meta["input_convention"] = IMAGENET_CONVENTION
    if manifest.get("img_size"):
        meta["input_size"] = ",".join(str(int(s)) for s in manifest["img_size"])
    return meta


class OpenVinoPredictor(Predictor):
    """:class:`DefaultPredictor`'s API on an ONNX file or an OpenVINO IR (``.xml`` or an
    ``*_openvino_model`` folder) run by OpenVINO on the CPU, in ``precision`` (``fp32``,
    ``bf16``; ``int8`` for a quantised file, the rest of the graph in bf16 where the CPU has it).

    As :class:`~cdnet_reid.engine.predictor.OnnxPredictor`: the input size comes from the file
    (ONNX metadata, the folder's ``manifest.json`` or the graph's static dimensions; see
    :func:`~cdnet_reid.engine.predictor.cfg_for_model_file`), ``cfg`` gives the test transform,
    the batch size and ``TEST.FEAT_NORM``. ``threads``: inference threads (0 = torch's)."""

    def __init__(self, cfg=None, model_path: str | None = None, *, precision: str = "auto", threads: int = 0,
                 input_format: str = "RGB", size_from_file: bool = False):
        import openvino as ov

        if model_path is None:
            raise TypeError("OpenVinoPredictor needs model_path")
        self.input_format = check_input_format(input_format)
        self.model_path = self.model_file = str(model_path)
        self.runtime = "openvino"
        check_runtime("openvino", self.model_path)
        self.precision = resolve_precision("openvino", precision, self.model_path)
        self.metadata = _openvino_metadata(self.model_path)
        core = ov.Core()
        model = core.read_model(self.model_path if self.model_path.lower().endswith(".onnx")
                                else _openvino_xml(self.model_path))
        shape = model.inputs[0].get_partial_shape()
        size = None
        if self.metadata.get("input_size"):
            size = tuple(int(s) for s in self.metadata["input_size"].split(","))
        elif shape.rank.get_length() == 4 and shape[2].is_static and shape[3].is_static:
            size = (shape[2].get_length(), shape[3].get_length())
        hint = "bf16" if self.precision == "bf16" or (self.precision == "int8" and cpu_has_native_bf16()) else "f32"
        config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_NUM_THREADS": int(threads) or torch.get_num_threads()}
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.cfg = cfg_for_model_file(cfg, self.model_path, size, size_from_file).clone()
        self.model = None
        self.transform = build_transforms(self.cfg, is_train=False)
        self.batch_size = max(1, int(self.cfg.TEST.IMS_PER_BATCH))
        self.flip = self.metadata.get("flip") == "1"
        self.feat_norm = bool(self.cfg.TEST.FEAT_NORM) and self.metadata.get("l2_normalize") != "1"
        logger.info("OpenVinoPredictor: %s, precision %s (inference precision hint %s, OpenVINO %s)",
                    self.model_path, self.precision, hint, ov.__version__)

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        """A preprocessed ``N x 3 x H x W`` batch -> ``N x D`` float32 CPU embeddings."""
        x = to_model_input(batch.detach().cpu(), self.metadata.get("input_convention", ""))
        out = self.request.infer({0: x.contiguous().numpy()})
        emb = torch.from_numpy(out[self.compiled.outputs[0]].copy()).float()
        return F.normalize(emb, dim=1) if self.feat_norm else emb


class PredictorModule(torch.nn.Module):
    """A predictor as the module the evaluator runs: preprocessed ``N x 3 x H x W`` batches in,
    the predictor's float32 embeddings out (on the batch's device). No parameters."""

    def __init__(self, predictor: Predictor):
        super().__init__()
        self.predictor = predictor

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.predictor.embed(images).to(images.device)


# ----------------------------------------------------------------------------------- the factory
def create_predictor(cfg, *, runtime: str = "torch", precision: str = "auto", model_file: str = "",
                     input_format: str = "RGB", config_keys: Sequence[str] | None = None,
                     explicit: Sequence[str] = (), threads: int = 0) -> Predictor:
    """The predictor of ``runtime`` in ``precision``: the one place runtimes are chosen.

    * "torch" runs the checkpoint ``MODEL.WEIGHTS`` of ``cfg``: fp32 (:class:`DefaultPredictor`)
      or bf16 (:class:`Bf16TorchPredictor`), both rebuilding the model under the same config rule;
    * "onnxruntime" runs the exported ``model_file`` (:class:`OnnxPredictor`, the file's precision);
    * "openvino" runs ``model_file`` (an ``.onnx`` file, an ``.xml`` IR or an ``*_openvino_model``
      folder) in fp32, bf16 or int8 (:class:`OpenVinoPredictor`).

    Exported files give the input size unless the user chose INPUT.SIZE_TEST, which must then
    match. ``precision``: see :func:`resolve_precision` ("auto" is
    logged; an impossible runtime / precision / file combination is a
    :class:`RuntimeChoiceError`, a :class:`ConfigError`).
    ``config_keys`` / ``explicit``: the keys the user chose, see
    :func:`~cdnet_reid.modeling.resolve_model_config`. ``threads``: inference threads of the
    exported-file runtimes (0 = torch's)."""
    check_runtime(runtime, model_file)
    chosen = resolve_precision(runtime, precision, model_file or None)
    if runtime == "torch":
        cls = Bf16TorchPredictor if chosen == "bf16" else DefaultPredictor
        return cls(cfg, input_format=input_format, config_keys=config_keys, explicit=explicit)
    keys = None if config_keys is None else {*config_keys, *explicit}
    size_from_file = keys is not None and "INPUT.SIZE_TEST" not in keys
    if runtime == "onnxruntime":
        return OnnxPredictor(cfg, model_file, threads=threads, input_format=input_format,
                             size_from_file=size_from_file)
    return OpenVinoPredictor(cfg, model_file, precision=chosen, threads=threads, input_format=input_format,
                             size_from_file=size_from_file)
