"""Static int8 quantization of an exported embedding model (onnxruntime).

:func:`quantize_onnx` takes the fp32 ``.onnx`` written by :func:`~cdnet_reid.export.export_onnx`
and writes a QDQ model (QuantizeLinear / DequantizeLinear pairs around every quantized operator,
the format onnxruntime's CPU kernels fuse into int8 convolutions): weights int8, symmetric, one
scale per output channel; activations uint8 with ranges calibrated on real crops
(:class:`ImageCalibrationReader`). The graph's input and output stay float32 (0-255 pixels in,
embeddings out), so an int8 file is a drop-in replacement for the fp32 one.

``onnx`` and ``onnxruntime`` are imported lazily.
"""

import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch

from ..data.common import load_image
from ..utils.input_convention import read_onnx_metadata

logger = logging.getLogger(__name__)

__all__ = ["ImageCalibrationReader", "quantize_onnx", "read_onnx_metadata"]

#: Operators quantized by default: the convolutions, matrix products and the pooling / elementwise
#: operators between them that onnxruntime runs in int8 (the pixel normalisation, the gate's
#: sigmoid and the final L2 normalisation stay float).
DEFAULT_OP_TYPES = ("Conv", "Gemm", "MatMul", "Add", "Mul", "Relu", "MaxPool", "AveragePool",
                    "GlobalAveragePool", "Concat")


class ImageCalibrationReader:
    """Batches of calibration images for ``onnxruntime.quantization.quantize_static``.

    ``images``: paths (or PIL images) of real crops; ``transform``: one image -> ``3 x H x W``
    uint8 tensor (normally the test transform, ``build_transforms(cfg, is_train=False)``), or
    ``None`` for a plain bilinear resize to ``input_size``. Feeds float32 0-255 batches of
    ``batch_size`` to the input ``input_name``; ``max_images`` > 0 takes that many images, evenly
    spaced over the list.
    """

    def __init__(self, images: Sequence, input_size: Sequence[int], *, transform: Callable | None = None,
                 batch_size: int = 16, max_images: int = 0, input_name: str = "images"):
        images = list(images)
        if not images:
            raise ValueError("no calibration images")
        if max_images and len(images) > max_images:
            images = [images[i] for i in np.linspace(0, len(images) - 1, max_images).round().astype(int)]
        self.images, self.input_name = images, input_name
        self.batch_size = max(1, int(batch_size))
        self.transform = transform or _resize_transform(input_size)
        self._iter: Iterable | None = None

    def __len__(self) -> int:
        return len(self.images)

    def batches(self):
        for i in range(0, len(self.images), self.batch_size):
            chunk = [self.transform(load_image(p)) for p in self.images[i:i + self.batch_size]]
            yield {self.input_name: torch.stack(chunk).float().numpy()}

    # the onnxruntime CalibrationDataReader protocol
    def get_next(self):
        if self._iter is None:
            self._iter = self.batches()
        return next(self._iter, None)

    def rewind(self):
        self._iter = None


def _resize_transform(input_size):
    import torchvision.transforms as T
    from torchvision.transforms import InterpolationMode

    from ..data.transforms import ToUint8Tensor

    return T.Compose([T.Resize(tuple(int(s) for s in input_size), interpolation=InterpolationMode.BILINEAR),
                      ToUint8Tensor()])


def quantize_onnx(fp32_path: str, int8_path: str, calibration: ImageCalibrationReader, *,
                  per_channel: bool = True, op_types: Sequence[str] | None = DEFAULT_OP_TYPES,
                  calibrate_method: str = "MinMax", preprocess: bool = True) -> str:
    """Write the statically quantised (QDQ, int8) version of ``fp32_path`` to ``int8_path``.

    ``calibration`` supplies the activation ranges (``calibrate_method``: ``MinMax``,
    ``Percentile`` or ``Entropy``); ``per_channel``: one weight scale per output channel;
    ``op_types``: the operator types to quantize (``None``: every type onnxruntime supports).
    With ``preprocess`` the model first goes through onnxruntime's quantization pre-processing
    (graph optimisation + shape inference). The fp32 file's metadata (input size, flip, L2
    normalisation) is copied, with ``quantization`` recording the settings. Returns ``int8_path``.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    methods = {m.name.lower(): m for m in CalibrationMethod}
    if calibrate_method.lower() not in methods:
        raise ValueError(f"calibrate_method must be one of {sorted(m.name for m in CalibrationMethod)}, "
                         f"got {calibrate_method!r}")
    with tempfile.TemporaryDirectory() as tmp:
        source = fp32_path
        if preprocess:
            from onnxruntime.quantization.shape_inference import quant_pre_process

            source = os.path.join(tmp, "preprocessed.onnx")
            quant_pre_process(fp32_path, source, skip_symbolic_shape=True)
        calibration.rewind()
        quantize_static(source, int8_path, calibration, quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=list(op_types) if op_types else None,
                        per_channel=per_channel, reduce_range=False,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=methods[calibrate_method.lower()],
                        extra_options={"WeightSymmetric": True})
    meta = read_onnx_metadata(fp32_path)
    meta["quantization"] = (f"int8 static QDQ, weights per-{'channel' if per_channel else 'tensor'}, "
                            f"{calibrate_method} calibration on {len(calibration)} images")
    model = onnx.load(int8_path)
    _set_metadata(model, meta)
    onnx.save(model, int8_path)
    logger.info("Wrote %s (%s)", int8_path, meta["quantization"])
    return int8_path


def _set_metadata(model, meta: dict) -> None:
    del model.metadata_props[:]
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = str(k), str(v)

