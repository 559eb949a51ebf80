"""Exporting trained models: ONNX (fp32) and its static int8 quantization (onnxruntime); the
files trackers (boxmot) load (:mod:`.boxmot`)."""

from .boxmot import export_for_boxmot, verify_boxmot_export
from .onnx import EmbeddingModel, export_onnx, verify_onnx
from .quantize import ImageCalibrationReader, quantize_onnx, read_onnx_metadata

__all__ = ["EmbeddingModel", "ImageCalibrationReader", "export_for_boxmot", "export_onnx", "quantize_onnx",
           "read_onnx_metadata", "verify_boxmot_export", "verify_onnx"]
