"""ONNX export of the evaluation model, checked against PyTorch with onnxruntime.

The exported graph computes exactly what ``DefaultPredictor.embed`` (and the evaluator) computes
from a resized batch:

* input ``images``: float32 ``N x 3 x H x W`` RGB pixels in 0-255 (``H x W`` = the export size,
  normally ``INPUT.SIZE_TEST``), dynamic batch axis ``N``;
* inside: the model's own pixel normalisation (``MODEL.PIXEL_MEAN/STD``), the eval forward,
  optionally the flip average (``TEST.FLIP.ENABLED``) and the L2 normalisation
  (``TEST.FEAT_NORM``);
* output ``embeddings``: float32 ``N x D``;
* metadata (``metadata_props``): ``input_size`` ("H,W"), ``flip`` and ``l2_normalize``
  ("0"/"1") of an :class:`EmbeddingModel`, read back by ``OnnxPredictor``.

Uses the TorchScript-based exporter (``dynamo=False``: no onnxscript dependency), opset 17 by
default; ``onnx`` and ``onnxruntime`` are imported lazily.
"""

import logging
import warnings
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..evaluation.evaluator import embed

logger = logging.getLogger(__name__)

__all__ = ["EmbeddingModel", "export_onnx", "verify_onnx"]


class EmbeddingModel(nn.Module):
    """``model`` in eval mode + optional flip averaging + optional L2 normalisation."""

    def __init__(self, model: nn.Module, *, flip: bool = False, l2_normalize: bool = True):
        super().__init__()
        self.model = model.eval()
        self.flip = bool(flip)
        self.l2_normalize = bool(l2_normalize)

    @classmethod
    def with_test_settings(cls, model: nn.Module, cfg) -> "EmbeddingModel":
        """``model`` with the flip averaging and L2 normalisation of ``cfg.TEST`` (what the
        evaluator computes)."""
        return cls(model, flip=cfg.TEST.FLIP.ENABLED, l2_normalize=cfg.TEST.FEAT_NORM)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = embed(self.model, images, self.flip).float()
        return F.normalize(out, dim=1) if self.l2_normalize else out


def export_onnx(module: nn.Module, path: str, input_size: Sequence[int], *, opset: int = 17,
                example_batch: int = 2, metadata: dict[str, str] | None = None) -> str:
    """Export ``module`` (e.g. an :class:`EmbeddingModel`) to ``path`` with a dynamic batch
    axis; ``input_size`` is ``(H, W)``. The file's metadata records the input size (and, for an
    :class:`EmbeddingModel`, its flip and L2 settings), plus ``metadata``. Returns ``path``."""
    if opset < 17:
        raise ValueError(f"opset must be >= 17, got {opset}")
    module = module.eval().cpu()
    h, w = (int(s) for s in input_size)
    example = torch.rand(example_batch, 3, h, w) * 255
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated in favour of dynamo
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning, UserWarning))
        torch.onnx.export(module, (example,), path, dynamo=False, opset_version=int(opset),
                          input_names=["images"], output_names=["embeddings"],
                          dynamic_axes={"images": {0: "batch"}, "embeddings": {0: "batch"}},
                          do_constant_folding=True)
    import onnx

    proto = onnx.load(path)
    meta = {"input_size": f"{h},{w}", "producer": "cdnet_reid.export"}
    if isinstance(module, EmbeddingModel):
        meta.update(flip=str(int(module.flip)), l2_normalize=str(int(module.l2_normalize)))
    meta.update({str(k): str(v) for k, v in (metadata or {}).items()})
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(proto)
    onnx.save(proto, path)
    logger.info("Exported ONNX model to %s (opset %d, input N x 3 x %d x %d)", path, opset, h, w)
    return path


def verify_onnx(module: nn.Module, path: str, input_size: Sequence[int],
                batch_sizes: Sequence[int] = (1, 3, 8), *, seed: int = 0,
                threads: int = 0) -> tuple[float, dict[int, float]]:
    """Run the ONNX file with onnxruntime (CPU) and ``module`` with PyTorch on random 0-255
    images of each batch size; return the max abs difference of the L2-normalised outputs,
    overall and per batch size."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    module = module.eval().cpu()
    h, w = (int(s) for s in input_size)
    gen = torch.Generator().manual_seed(seed)
    diffs = {}
    for n in batch_sizes:
        x = torch.randint(0, 256, (n, 3, h, w), generator=gen).float()
        with torch.no_grad():
            ref = F.normalize(module(x).float(), dim=1).numpy()
        out = session.run(["embeddings"], {"images": x.numpy()})[0]
        out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        if out.shape != ref.shape:
            raise AssertionError(f"onnxruntime output {out.shape} != PyTorch {ref.shape}")
        diffs[int(n)] = float(np.abs(out - ref).max())
    return max(diffs.values()), diffs
