"""Export for trackers: the files boxmot's ``reid_weights=`` loads as they are.

boxmot (StrongSORT, BoT-SORT, DeepOCSORT, ...) picks its re-ID backend from the file name and
feeds every backend the same input: BGR detection crops resized with OpenCV (``INTER_LINEAR``) to
the model's input size, converted to RGB, scaled to 0-1 and normalised with the ImageNet mean and
std, NCHW float32. It reads the model name, input size, preprocessing and class count from a JSON
file next to the model: ``<file>.metadata.json`` for a file, ``manifest.json`` inside an
``*_openvino_model`` folder (without it a TorchScript model is assumed to take 256x128 and an
OpenVINO folder fails on the input shape). It L2-normalises the output itself.

:func:`export_for_boxmot` writes, by the output's name (boxmot's conventions):

* ``x.onnx``: the ONNX graph (opset 17, dynamic batch) with :class:`ImageNetInput` in front;
* ``x.torchscript``: the same module traced with TorchScript;
* ``x_openvino_model``: a folder with the OpenVINO IR (``x.xml`` / ``x.bin``, converted from the
  ONNX graph with ``openvino.convert_model``, weights kept in fp32);

each with its metadata file (:func:`boxmot_metadata`). ``int8`` (ONNX and OpenVINO): the graph is
statically quantised (QDQ, :func:`~cdnet_reid.export.quantize.quantize_onnx`) on calibration
crops fed in boxmot's input convention; OpenVINO runs the QDQ operators in int8.
"""

import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..utils.file_io import atomic_write
from ..utils.input_convention import IMAGENET_CONVENTION, IMAGENET_MEAN, IMAGENET_STD, imagenet_normalize
from .onnx import EmbeddingModel, export_onnx

logger = logging.getLogger(__name__)

__all__ = ["BOXMOT_FORMATS", "IMAGENET_MEAN", "IMAGENET_STD", "ImageNetInput", "boxmot_format",
           "boxmot_metadata", "boxmot_metadata_path", "export_for_boxmot", "imagenet_normalize"]

#: The formats written, by output name: (suffix, format).
BOXMOT_FORMATS = ((".onnx", "onnx"), (".torchscript", "torchscript"), ("_openvino_model", "openvino"))


def boxmot_format(output: str) -> str:
    """``onnx``, ``torchscript`` or ``openvino`` from the output name (boxmot's file-name
    conventions); ValueError for any other name."""
    name = os.path.basename(os.path.normpath(output)).lower()
    for suffix, fmt in BOXMOT_FORMATS:
        if name.endswith(suffix) and len(name) > len(suffix):
            return fmt
    raise ValueError(f"--output {output}: boxmot loads <name>.onnx, <name>.torchscript or "
                     f"<name>_openvino_model (a folder); name the output one of these")


def boxmot_metadata_path(output: str) -> str:
    """Where boxmot reads the metadata of ``output``: ``manifest.json`` inside a model folder,
    else ``<output>.metadata.json``."""
    if boxmot_format(output) == "openvino":
        return os.path.join(output, "manifest.json")
    return output + ".metadata.json"


class ImageNetInput(nn.Module):
    """``embedder`` behind boxmot's input convention: ImageNet mean/std-normalised RGB (0-1 scale)
    in, converted back to the 0-255 pixels ``embedder`` takes (``x * 255 std + 255 mean``: one Mul
    and one Add in the exported graph)."""

    def __init__(self, embedder: nn.Module):
        super().__init__()
        self.embedder = embedder
        self.register_buffer("scale", 255.0 * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.register_buffer("shift", 255.0 * torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedder(x * self.scale + self.shift)


def boxmot_metadata(*, model_name: str, input_size: Sequence[int], num_classes: int, embedding_dim: int,
                    flip: bool, l2_normalize: bool, quantization: str = "",
                    extra: dict | None = None) -> dict:
    """The metadata boxmot reads (``model_name``, ``img_size`` / ``model_kwargs.img_size``,
    ``preprocess``, ``num_classes``) plus what the graph expects and computes."""
    h, w = (int(s) for s in input_size)
    meta = {
        "schema_version": 1,
        "model_name": str(model_name),
        "num_classes": int(num_classes),
        "preprocess": "resize",
        "img_size": [h, w],
        "model_kwargs_schema_version": 1,
        "model_kwargs": {"img_size": [h, w]},
        "input": {"layout": "NCHW", "color": "RGB", "dtype": "float32", "scale": "1/255",
                  "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
                  "resize": "OpenCV INTER_LINEAR to img_size (boxmot)"},
        "embedding_dim": int(embedding_dim),
        "flip_average": bool(flip),
        "l2_normalize": bool(l2_normalize),
        "precision": quantization or "fp32",
        "producer": "cdnet_reid.export.boxmot",
    }
    meta.update(extra or {})
    return meta


def _write_json(path: str, meta: dict) -> None:
    with atomic_write(path, "w") as f:
        json.dump(meta, f, indent=2)


def _trace_torchscript(module: nn.Module, path: str, size) -> None:
    example = imagenet_normalize(torch.rand(2, 3, *size) * 255)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", (torch.jit.TracerWarning, FutureWarning))
        traced = torch.jit.trace(module, example, check_trace=False)
    tmp = path + ".tmp"
    traced.save(tmp)
    os.replace(tmp, path)


def _openvino_ir(onnx_path: str, folder: str, stem: str) -> str:
    """Convert ``onnx_path`` to ``folder/stem.xml`` (+ ``.bin``), fp32 weights; returns the .xml."""
    import openvino as ov

    os.makedirs(folder, exist_ok=True)
    xml = os.path.join(folder, stem + ".xml")
    model = ov.convert_model(onnx_path)
    ov.save_model(model, xml, compress_to_fp16=False)
    return xml


def export_for_boxmot(embedder: EmbeddingModel, output: str, input_size: Sequence[int], *,
                      model_name: str, num_classes: int, opset: int = 17,
                      calibration: Callable[[], "object"] | None = None,
                      extra_metadata: dict | None = None) -> dict[str, str]:
    """Write ``embedder`` behind :class:`ImageNetInput` to ``output`` in the format its name says
    (:func:`boxmot_format`), with boxmot's metadata file; ``calibration`` (ONNX / OpenVINO): a
    callable returning an :class:`~cdnet_reid.export.quantize.ImageCalibrationReader` in boxmot's
    input convention, which also writes the int8 model next to it (``<name>_int8.onnx`` or
    ``<name>_int8_openvino_model``). Returns ``{"fp32": path[, "int8": path]}``."""
    fmt = boxmot_format(output)
    if calibration is not None and fmt == "torchscript":
        raise ValueError("int8 is written for .onnx and _openvino_model outputs, not TorchScript")
    size = tuple(int(s) for s in input_size)
    module = ImageNetInput(embedder).eval().cpu()
    with torch.no_grad():
        dim = int(module(imagenet_normalize(torch.zeros(1, 3, *size))).shape[1])

    def meta(quantization=""):
        return boxmot_metadata(model_name=model_name, input_size=size, num_classes=num_classes,
                               embedding_dim=dim, flip=embedder.flip, l2_normalize=embedder.l2_normalize,
                               quantization=quantization, extra=extra_metadata)

    out = {}
    parent = os.path.dirname(os.path.abspath(output))
    os.makedirs(parent, exist_ok=True)
    if fmt == "torchscript":
        _trace_torchscript(module, output, size)
        _write_json(boxmot_metadata_path(output), meta())
        return {"fp32": output}
    with tempfile.TemporaryDirectory(dir=parent) as tmp:
        onnx_path = output if fmt == "onnx" else os.path.join(tmp, "model.onnx")
        export_onnx(module, onnx_path, size, opset=opset,
                    metadata={"input_convention": IMAGENET_CONVENTION})
        int8_onnx = None
        if calibration is not None:
            from .quantize import quantize_onnx

            reader = calibration()
            int8_onnx = (os.path.splitext(output)[0] + "_int8.onnx" if fmt == "onnx"
                         else os.path.join(tmp, "model_int8.onnx"))
            quantize_onnx(onnx_path, int8_onnx, reader)
        if fmt == "onnx":
            out["fp32"] = output
            _write_json(boxmot_metadata_path(output), meta())
            if int8_onnx:
                out["int8"] = int8_onnx
                _write_json(boxmot_metadata_path(int8_onnx), meta("int8 static QDQ"))
            return out
        stem = os.path.basename(os.path.normpath(output))[: -len("_openvino_model")]
        folders = [(output, onnx_path, "")]
        if int8_onnx:
            folders.append((os.path.join(parent, stem + "_int8_openvino_model"), int8_onnx, "int8 static QDQ"))
        for folder, source, quant in folders:
            if os.path.isdir(folder):
                shutil.rmtree(folder)
            _openvino_ir(source, folder, os.path.basename(folder)[: -len("_openvino_model")])
            _write_json(boxmot_metadata_path(folder), meta(quant))
            out["int8" if quant else "fp32"] = folder
    return out


def run_boxmot_file(output: str, batch: torch.Tensor, threads: int = 0) -> torch.Tensor:
    """Run an exported file (any of the three formats) on a batch in boxmot's input convention
    with its own runtime (onnxruntime, TorchScript, OpenVINO fp32): ``N x D`` float32."""
    import numpy as np

    fmt = boxmot_format(output)
    x = batch.float().contiguous()
    if fmt == "torchscript":
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated; boxmot loads it
            return torch.jit.load(output).eval()(x).float()
    if fmt == "onnx":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads) or torch.get_num_threads()
        session = ort.InferenceSession(output, opts, providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]).float()
    import openvino as ov

    xml = next(os.path.join(output, f) for f in sorted(os.listdir(output)) if f.endswith(".xml"))
    compiled = ov.Core().compile_model(xml, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return torch.from_numpy(np.asarray(compiled([x.numpy()])[compiled.outputs[0]])).float()


def verify_boxmot_export(embedder: nn.Module, output: str, input_size: Sequence[int],
                         batch_sizes: Sequence[int] = (1, 3), seed: int = 0) -> float:
    """Max abs difference, after L2 normalisation, between the exported file run by its runtime
    and ``embedder`` in PyTorch, on random images in boxmot's input convention."""
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    for n in batch_sizes:
        pixels = torch.randint(0, 256, (n, 3, *input_size), generator=gen).float()
        with torch.no_grad():
            ref = F.normalize(embedder.eval()(pixels).float(), dim=1)
        got = F.normalize(run_boxmot_file(output, imagenet_normalize(pixels)), dim=1)
        worst = max(worst, float((got - ref).abs().max()))
    return worst
