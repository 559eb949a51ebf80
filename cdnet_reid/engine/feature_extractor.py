"""``FeatureExtractor``: a trained model file behind one call, images in, embeddings out (the
counterpart of torchreid's ``FeatureExtractor``)."""

import os
from collections.abc import Sequence

import torch

from ..config import ConfigError, config_file_keys, get_cfg
from ..config.packaged import resolve_config_file
from .predictor import ImageLike, _is_single_image, check_input_format
from .runtimes import create_predictor

__all__ = ["FeatureExtractor"]


class FeatureExtractor:
    """Embeddings of person crops from a trained model file::

        from cdnet_reid import FeatureExtractor

        extractor = FeatureExtractor("logs/run/model_final.pth")
        feats = extractor(["a.jpg", "b.jpg"])          # (2, D) float32 tensor, L2-normalised

    ``weights``: a checkpoint written by this package (it records the model and its input: no
    config needed), or with ``runtime="onnxruntime"`` or ``"openvino"`` a file written by ``cdnet-reid export``.
    ``config_file``: optional, a path or a shipped config name; it must agree with the model
    file on everything that changes the embeddings (else :class:`~cdnet_reid.config.ConfigError`
    naming the key and both values). ``overrides``: ``KEY VALUE`` pairs applied after it, used as
    given. ``device``: e.g. "cpu", "cuda" (default: ``MODEL.DEVICE``, "auto").
    ``runtime``: "torch", "onnxruntime" or "openvino" (:data:`~cdnet_reid.engine.runtimes.RUNTIMES`;
    the last two run a file written by ``cdnet-reid export``); ``precision``: "auto", "fp32",
    "bf16" or "int8" (:func:`~cdnet_reid.engine.runtimes.resolve_precision`; an impossible
    pair is a :class:`~cdnet_reid.config.ConfigError`). ``threads``: inference threads of the
    exported-file runtimes (0: torch's). ``input_format``: colour order of numpy
    arrays and tensors, "RGB" or "BGR" (``cv2.imread``).

    ``extractor(images)`` takes a path, a PIL image, an ``H x W x 3`` uint8 array, a ``3 x H x W``
    uint8 tensor, a list of these, or an ``N x 3 x H x W`` tensor (uint8: resized like any image;
    float: 0-255 pixels already at the model's input size), runs them in batches of
    ``TEST.IMS_PER_BATCH`` and returns an ``(N, D)`` float32 CPU tensor: exactly the embeddings of
    :class:`~cdnet_reid.engine.DefaultPredictor` with the model's config (and of the evaluator).
    """

    def __init__(self, weights: str | os.PathLike, *, config_file: str | None = None,
                 device: str | None = None, runtime: str = "torch", precision: str = "auto",
                 input_format: str = "RGB", overrides: Sequence[str] = (), threads: int = 0):
        weights = os.fspath(weights)
        check_input_format(input_format)
        if runtime == "torch" and weights.endswith(".onnx"):
            raise ConfigError(f"{weights} is an exported ONNX model: use runtime='onnxruntime' or 'openvino'")
        cfg = get_cfg()
        if config_file:
            cfg.merge_from_file(resolve_config_file(config_file))
        cfg.merge_from_list(list(overrides))
        if device is not None:
            cfg.MODEL.DEVICE = device
        if runtime == "torch":
            cfg.MODEL.WEIGHTS = weights
        keys = [str(k) for k in list(overrides)[0::2]]
        self.predictor = create_predictor(cfg, runtime=runtime, precision=precision,
                                          model_file=weights if runtime != "torch" else "",
                                          input_format=input_format, threads=threads,
                                          config_keys=config_file_keys(resolve_config_file(config_file or "")),
                                          explicit=keys)
        self.cfg = self.predictor.cfg
        self.input_format = input_format
        self.runtime = runtime

    @property
    def input_size(self):
        """``(H, W)`` of the model's input."""
        return tuple(int(s) for s in self.cfg.INPUT.SIZE_TEST)

    def _embed_tensor(self, batch: torch.Tensor) -> torch.Tensor:
        """An ``N x 3 x H x W`` float tensor of 0-255 pixels at the input size, in batches."""
        if tuple(batch.shape[-2:]) != self.input_size or batch.shape[1] != 3:
            raise ValueError(f"a float image tensor must be N x 3 x {self.input_size[0]} x {self.input_size[1]} "
                             f"(the model's input size), got {tuple(batch.shape)}; pass uint8 images to resize them")
        if self.input_format == "BGR":
            batch = batch.flip(1)
        step = self.predictor.batch_size
        parts = [self.predictor.embed(batch[i:i + step]) for i in range(0, len(batch), step)]
        return torch.cat(parts) if parts else torch.zeros(0, 0)

    def __call__(self, images: ImageLike | Sequence[ImageLike] | torch.Tensor) -> torch.Tensor:
        if isinstance(images, torch.Tensor) and images.ndim == 4:
            if images.dtype == torch.uint8:
                images = list(images)
            else:
                return self._embed_tensor(images.float()).float()
        elif _is_single_image(images):
            images = [images]
        return self.predictor(list(images)).float()
