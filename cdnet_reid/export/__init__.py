"""Exporting trained models: ONNX (fp32) and its static int8 quantization (onnxruntime)."""

from .onnx import EmbeddingModel, export_onnx, verify_onnx
from .quantize import ImageCalibrationReader, quantize_onnx, read_onnx_metadata

__all__ = ["EmbeddingModel", "ImageCalibrationReader", "export_onnx", "quantize_onnx",
           "read_onnx_metadata", "verify_onnx"]
