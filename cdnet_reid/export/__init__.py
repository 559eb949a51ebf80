"""Exporting trained models (ONNX)."""

from .onnx import EmbeddingModel, export_onnx, verify_onnx

__all__ = ["EmbeddingModel", "export_onnx", "verify_onnx"]
