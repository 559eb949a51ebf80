"""Inference runtimes behind :class:`~cdnet_reid.engine.predictor.DefaultPredictor`'s API:
PyTorch (fp32, or bf16 where the CPU computes bf16 natively), onnxruntime (the file's precision)
and OpenVINO (fp32, bf16, int8 from a quantised file), chosen by :func:`build_runtime_predictor`.

Precision ``auto`` follows the CPU: bf16 where it has native bf16 arithmetic (AVX512-BF16 or
AMX-BF16: Intel Sapphire Rapids and later, AMD Zen 4 and later), else fp32; a statically
quantised file (``export --int8``) runs int8. The choice is logged.

A file written by ``export --for boxmot`` takes ImageNet-normalised input (its metadata says so);
the predictors here normalise the test transform's 0-255 pixels for it, so every file of ours runs
behind the same API.
"""

import json
import logging
import os
from functools import lru_cache
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from ..engine.predictor import DefaultPredictor, OnnxPredictor
from ..evaluation.evaluator import embed
from .boxmot import imagenet_normalize

logger = logging.getLogger(__name__)

__all__ = ["PRECISIONS", "RUNTIMES", "Bf16TorchPredictor", "OpenVinoPredictor", "RuntimeChoiceError",
           "RuntimeOnnxPredictor", "build_runtime_predictor", "cpu_flags", "cpu_has_native_bf16", "infer_runtime",
           "resolve_precision", "to_bf16"]

#: ``--runtime`` values.
RUNTIMES = ("torch", "onnxruntime", "openvino")
#: ``--precision`` values.
PRECISIONS = ("auto", "fp32", "bf16", "int8")
#: The input convention of ``export --for boxmot`` files (ONNX metadata ``input_convention``).
IMAGENET_CONVENTION = "imagenet_normalized_rgb"


class RuntimeChoiceError(ValueError):
    """A runtime / precision / model file combination that cannot run."""


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset:
    """The CPU's feature flags (``/proc/cpuinfo``; empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


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


def _file_is_quantized(model_path: str, runtime: str) -> bool:
    p = str(model_path)
    if p.lower().endswith(".onnx"):
        from .quantize import read_onnx_metadata

        if "quantization" in read_onnx_metadata(p):
            return True
        import onnx

        return any(n.op_type == "QuantizeLinear" for n in onnx.load(p, load_external_data=False).graph.node)
    if runtime == "openvino":
        meta = _openvino_manifest(p)
        if meta.get("precision", "fp32") != "fp32":
            return True
        with open(_openvino_xml(p)) as f:
            return "FakeQuantize" in f.read()
    return False


def resolve_precision(runtime: str, precision: str, model_path: Optional[str] = None) -> str:
    """The precision a predictor runs: ``precision``, or for ``auto`` the CPU's (see the module
    docstring). Raises :class:`RuntimeChoiceError` for a combination the runtime cannot run."""
    if runtime not in RUNTIMES:
        raise RuntimeChoiceError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    if precision not in PRECISIONS:
        raise RuntimeChoiceError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    quantized = model_path is not None and runtime != "torch" and _file_is_quantized(model_path, runtime)
    native = cpu_has_native_bf16()
    if precision == "auto":
        if quantized:
            chosen = "int8"
        elif runtime == "onnxruntime":
            chosen = "fp32"
        else:
            chosen = "bf16" if native else "fp32"
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
        raise RuntimeChoiceError("onnxruntime runs no bf16 on CPU: use --runtime openvino or torch for bf16")
    if precision == "bf16" and not native:
        raise RuntimeChoiceError("precision bf16: this CPU has no native bf16 (AVX512-BF16 / AMX-BF16); use fp32")
    return precision


def _normalize_if_boxmot(batch: torch.Tensor, convention: str) -> torch.Tensor:
    return imagenet_normalize(batch) if convention == IMAGENET_CONVENTION else batch.float()


# ----------------------------------------------------------------------------------- PyTorch
class Bf16TorchPredictor(DefaultPredictor):
    """:class:`DefaultPredictor` in bf16: the BatchNorm-folded, channels-last model
    (:func:`~cdnet_reid.modeling.fuse.fuse_for_inference` without the fp32-only epilogues) whose
    backbone and head hold bf16 weights; the pixel normalisation runs in float32 and its output
    enters the backbone as bf16. Embeddings are returned in float32."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.model = to_bf16(self.model)

    @torch.no_grad()
    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            out = embed(self.model, batch, self.flip).float()
        return (F.normalize(out, dim=1) if self.feat_norm else out).cpu()


def to_bf16(model: torch.nn.Module) -> torch.nn.Module:
    """An eval-only copy of a meta-architecture (``backbone`` + ``head``) for bf16 inference: BN
    folded, channels-last, backbone and head in bf16, their input cast to bf16."""
    from ..modeling.fuse import fuse_for_inference

    if not (hasattr(model, "backbone") and hasattr(model, "head")):
        raise RuntimeChoiceError(f"bf16 inference needs a model with .backbone and .head, got {type(model).__name__}")
    fast = fuse_for_inference(model, epilogues=False)
    fast.backbone.to(torch.bfloat16)
    fast.head.to(torch.bfloat16)
    fast.backbone.register_forward_pre_hook(lambda m, args: (args[0].to(torch.bfloat16),) + tuple(args[1:]))
    return fast


# ----------------------------------------------------------------------------------- onnxruntime
class RuntimeOnnxPredictor(OnnxPredictor):
    """:class:`OnnxPredictor` that also runs ``export --for boxmot`` files (ImageNet-normalised
    input)."""

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        return super().embed(_normalize_if_boxmot(batch, self.metadata.get("input_convention", "")))


# ----------------------------------------------------------------------------------- OpenVINO
def _openvino_xml(path: str) -> str:
    if os.path.isdir(path):
        xmls = sorted(f for f in os.listdir(path) if f.endswith(".xml"))
        if not xmls:
            raise FileNotFoundError(f"{path}: no OpenVINO .xml model in this folder")
        return os.path.join(path, xmls[0])
    return path


def _openvino_manifest(path: str) -> dict:
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    manifest = os.path.join(folder, "manifest.json")
    if os.path.isfile(manifest):
        with open(manifest) as f:
            return json.load(f)
    return {}


class OpenVinoPredictor(DefaultPredictor):
    """:class:`DefaultPredictor`'s API on an ONNX file or an OpenVINO IR (``.xml`` or an
    ``*_openvino_model`` folder) run by OpenVINO on the CPU, in ``precision`` (``fp32``,
    ``bf16``; ``int8`` for a quantised file, the rest of the graph in bf16 where the CPU has it).

    As :class:`OnnxPredictor`: the input size comes from the file (ONNX metadata, the folder's
    ``manifest.json`` or the graph's static dimensions), ``cfg`` gives the test transform, the
    batch size and ``TEST.FEAT_NORM``. ``threads``: inference threads (0 = torch's)."""

    def __init__(self, cfg=None, model_path: Optional[str] = None, *, precision: str = "auto", threads: int = 0):
        import openvino as ov

        from ..config import get_cfg
        from ..data.transforms import build_transforms

        if model_path is None:
            raise TypeError("OpenVinoPredictor needs model_path")
        self.model_path = str(model_path)
        if not os.path.exists(self.model_path):
            raise FileNotFoundError(f"{self.model_path}: no such file or folder")
        self.precision = resolve_precision("openvino", precision, self.model_path)
        meta = {}
        if self.model_path.lower().endswith(".onnx"):
            from .quantize import read_onnx_metadata

            meta = read_onnx_metadata(self.model_path)
            source = self.model_path
        else:
            manifest = _openvino_manifest(self.model_path)
            if manifest.get("input", {}).get("mean"):
                meta["input_convention"] = IMAGENET_CONVENTION
            if manifest.get("img_size"):
                meta["input_size"] = ",".join(str(int(s)) for s in manifest["img_size"])
            meta["flip"] = "1" if manifest.get("flip_average") else "0"
            meta["l2_normalize"] = "1" if manifest.get("l2_normalize") else "0"
            source = _openvino_xml(self.model_path)
        core = ov.Core()
        model = core.read_model(source)
        shape = model.inputs[0].get_partial_shape()
        size = None
        if meta.get("input_size"):
            size = tuple(int(s) for s in meta["input_size"].split(","))
        elif shape.rank.get_length() == 4 and shape[2].is_static and shape[3].is_static:
            size = (shape[2].get_length(), shape[3].get_length())
        hint = "bf16" if self.precision == "bf16" or (self.precision == "int8" and cpu_has_native_bf16()) else "f32"
        config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_NUM_THREADS": int(threads) or torch.get_num_threads()}
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.metadata = meta
        if cfg is None:
            if size is None:
                raise ValueError(f"{self.model_path} records no input size: pass a cfg with INPUT.SIZE_TEST")
            cfg = get_cfg()
            cfg.INPUT.SIZE_TEST = list(size)
            cfg.INPUT.RESIZE_SHORT_TEST = 0
        elif size is not None and tuple(int(s) for s in cfg.INPUT.SIZE_TEST) != size:
            raise ValueError(f"{self.model_path} takes {size[0]}x{size[1]} images but INPUT.SIZE_TEST "
                             f"is {list(cfg.INPUT.SIZE_TEST)}")
        self.cfg = cfg.clone()
        self.model = None
        self.transform = build_transforms(self.cfg, is_train=False)
        self.batch_size = max(1, int(self.cfg.TEST.IMS_PER_BATCH))
        self.flip = meta.get("flip") == "1"
        self.feat_norm = bool(self.cfg.TEST.FEAT_NORM) and meta.get("l2_normalize") != "1"
        logger.info("OpenVinoPredictor: %s, precision %s (inference precision hint %s, OpenVINO %s)",
                    self.model_path, self.precision, hint, ov.__version__)

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        x = _normalize_if_boxmot(batch.detach().cpu(), self.metadata.get("input_convention", ""))
        out = self.request.infer({0: x.contiguous().numpy()})
        emb = torch.from_numpy(out[self.compiled.outputs[0]].copy()).float()
        return F.normalize(emb, dim=1) if self.feat_norm else emb


# ----------------------------------------------------------------------------------- dispatch
def build_runtime_predictor(model_path, runtime: str = "", precision: str = "auto", *, cfg=None,
                            threads: int = 0, providers: Optional[Sequence[str]] = None) -> DefaultPredictor:
    """A predictor (images in, embeddings out) for ``model_path`` in ``runtime``:

    * ``torch``: ``model_path`` a checkpoint (it becomes ``MODEL.WEIGHTS`` of ``cfg``, which is
      required), fp32 (:class:`DefaultPredictor`) or bf16 (:class:`Bf16TorchPredictor`);
    * ``onnxruntime``: an ``.onnx`` file, in the file's precision (fp32, or int8 when quantised);
    * ``openvino``: an ``.onnx`` file, an ``.xml`` IR or an ``*_openvino_model`` folder, fp32, bf16
      or (quantised file) int8.

    ``runtime`` "" infers it from the file (:func:`infer_runtime`); ``precision`` ``auto`` picks
    it from the CPU (:func:`resolve_precision`, logged). ``cfg`` is optional for the exported files
    (test transform, batch size)."""
    runtime = runtime or infer_runtime(str(model_path))
    chosen = resolve_precision(runtime, precision, None if runtime == "torch" else str(model_path))
    if runtime == "torch":
        if cfg is None:
            raise RuntimeChoiceError("the torch runtime builds the model from a config: pass cfg")
        cfg = cfg.clone()
        cfg.defrost()
        if model_path:
            cfg.MODEL.WEIGHTS = str(model_path)
        cfg.freeze()
        return Bf16TorchPredictor(cfg) if chosen == "bf16" else DefaultPredictor(cfg)
    if runtime == "onnxruntime":
        return RuntimeOnnxPredictor(cfg, str(model_path), threads=threads, providers=providers)
    return OpenVinoPredictor(cfg, str(model_path), precision=chosen, threads=threads)
