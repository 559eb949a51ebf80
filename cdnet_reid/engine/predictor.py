"""Predictors: embed person crops (feature extraction) with a trained PyTorch model
(:class:`DefaultPredictor`) or an exported ``.onnx`` file, fp32 or int8 (:class:`OnnxPredictor`),
behind one API (:class:`Predictor`); :func:`~cdnet_reid.engine.runtimes.create_predictor` picks one by runtime."""

import abc
import logging
import os
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..config import ConfigError
from ..data.common import load_image
from ..data.transforms import build_transforms
from ..evaluation.evaluator import embed, inference_context
from ..modeling import ModelConfigMismatchError, load_model
from ..utils.file_io import InputFileError
from ..utils.input_convention import to_model_input

logger = logging.getLogger(__name__)

__all__ = ["DefaultPredictor", "INPUT_FORMATS", "ImageLike", "OnnxPredictor", "Predictor",
           "cfg_for_model_file", "to_pil_rgb"]

#: Colour orders of array images: "RGB" (PIL, torchvision) or "BGR" (``cv2.imread``).
INPUT_FORMATS = ("RGB", "BGR")


def check_input_format(input_format: str) -> str:
    """``input_format`` if it is one of :data:`INPUT_FORMATS`, else :class:`ConfigError`."""
    if input_format not in INPUT_FORMATS:
        raise ConfigError(f"input_format {input_format!r}: expected one of {', '.join(INPUT_FORMATS)}")
    return input_format

ImageLike = str | os.PathLike | Image.Image | np.ndarray | torch.Tensor


class Predictor(abc.ABC):
    """The steps shared by every predictor: test transform, batching, the call. Subclasses set
    ``cfg``, ``transform``, ``batch_size``, ``flip``, ``feat_norm``, ``input_format`` and ``model``
    (None when no PyTorch model runs), say what runs (``runtime``, ``precision``, ``model_file``)
    and define :meth:`embed`."""

    cfg = transform = model = None
    batch_size, flip, feat_norm, input_format = 1, False, True, "RGB"
    runtime, precision, model_file = "torch", "fp32", ""

    def preprocess(self, image: ImageLike) -> torch.Tensor:
        """One image -> the ``3 x H x W`` uint8 tensor of the test transform."""
        return self.transform(to_pil_rgb(image, self.input_format))

    @abc.abstractmethod
    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        """A preprocessed ``N x 3 x H x W`` batch -> ``N x D`` float32 CPU embeddings."""

    def iter_batches(self, images: Iterable[ImageLike]) -> Iterator[torch.Tensor]:
        """Embeddings of ``images`` one batch at a time (images are read lazily)."""
        batch: list[torch.Tensor] = []
        for img in images:
            batch.append(self.preprocess(img))
            if len(batch) == self.batch_size:
                yield self.embed(torch.stack(batch))
                batch = []
        if batch:
            yield self.embed(torch.stack(batch))

    def __call__(self, images: ImageLike | Sequence[ImageLike]) -> torch.Tensor:
        """Embeddings (``N x D`` float32, CPU) of a list of images, or ``1 x D`` for one image."""
        if _is_single_image(images):
            images = [images]
        parts = list(self.iter_batches(images))
        return torch.cat(parts) if parts else torch.zeros(0, 0)


class DefaultPredictor(Predictor):
    """A trained re-ID model behind a simple call: images in, L2-normalised embeddings out.

    * the model is rebuilt from ``MODEL.WEIGHTS`` by :func:`~cdnet_reid.modeling.load_model`
      (weights only; architecture, classifier size and genotype as the checkpoint records them),
      in eval mode on ``MODEL.DEVICE``. ``cfg`` must agree with the checkpoint on every key that
      changes the embeddings (input size, architecture, ...), except the keys of ``explicit``;
      with ``config_keys`` only on those keys (the ones a config file sets), the checkpoint
      giving the others (see :func:`~cdnet_reid.modeling.resolve_model_config`). An empty
      ``MODEL.WEIGHTS`` gives a randomly initialised model (with a warning);
    * every image is converted to RGB and resized by the test transform (``INPUT.SIZE_TEST``),
      so crops of any size can be mixed; numpy arrays and tensors are in ``input_format`` colour
      order ("RGB", or "BGR" as ``cv2.imread`` returns them);
    * images run in batches of ``TEST.IMS_PER_BATCH``; with ``TEST.FLIP.ENABLED`` the embeddings
      of each image and of its mirror are averaged; with ``TEST.FEAT_NORM`` (default) the result
      is L2-normalised -- the same embedding the evaluator ranks.

    Example::

        predictor = DefaultPredictor(cfg)
        feats = predictor(["a.jpg", pil_image, hwc_uint8_array])   # (3, D) float32 CPU tensor

    Accepted images: file paths, PIL images, numpy ``HxWx3``, ``HxWx4`` (alpha dropped) or
    ``HxW`` uint8 arrays, and ``3xHxW`` uint8 tensors. To use a faster model, subclass and
    override :meth:`build_model`. ``create_predictor(cfg, runtime="onnxruntime",
    model_file="model.onnx")`` gives an :class:`OnnxPredictor` instead (same API, no PyTorch model code).
    """

    def __init__(self, cfg, *, input_format: str = "RGB",
                 config_keys: Sequence[str] | None = None, explicit: Sequence[str] = ()):
        self.input_format = check_input_format(input_format)
        if cfg.MODEL.WEIGHTS:
            self.model, self.cfg = load_model(cfg, config_keys=config_keys,
                                              explicit=explicit, build=self.build_model)
        else:
            logger.warning("MODEL.WEIGHTS is empty: the predictor uses a randomly initialised model")
            self.cfg = cfg.clone()
            self.model = self.build_model(self.cfg)
        self.model.eval()
        self.model_file = str(self.cfg.MODEL.WEIGHTS)
        self.transform = build_transforms(self.cfg, is_train=False)
        self.batch_size = max(1, int(self.cfg.TEST.IMS_PER_BATCH))
        self.flip = bool(self.cfg.TEST.FLIP.ENABLED)
        self.feat_norm = bool(self.cfg.TEST.FEAT_NORM)

    @classmethod
    def build_model(cls, cfg, stored: dict | None = None) -> nn.Module:
        """The model's structure (weights are loaded afterwards); override to build another."""
        from .trainer import DefaultTrainer

        return DefaultTrainer.build_model(cfg, stored=stored)

    # ------------------------------------------------------------------ steps
    @torch.no_grad()
    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        """A preprocessed ``N x 3 x H x W`` batch -> ``N x D`` float32 CPU embeddings."""
        with inference_context(self.model):
            out = embed(self.model, batch, self.flip).float()
        if self.feat_norm:
            out = F.normalize(out, dim=1)
        return out.cpu()


class OnnxPredictor(Predictor):
    """:class:`DefaultPredictor`'s API on an exported ``.onnx`` file (fp32 or int8), run by
    onnxruntime: no PyTorch model is built and no checkpoint is read.

    The graph already holds what the evaluator computes after resizing (pixel normalisation,
    the flip average and the L2 normalisation it was exported with, see
    :mod:`cdnet_reid.export.onnx`); its metadata gives the input size (``size_from_file``: it
    replaces ``cfg``'s INPUT.SIZE_TEST). ``cfg`` (optional) gives
    the test transform (``INPUT.SIZE_TEST`` must equal the file's input size), the batch size
    (``TEST.IMS_PER_BATCH``) and ``TEST.FEAT_NORM`` (applied when the graph does not
    normalise). A file written by ``export --for boxmot`` (metadata ``input_convention``) gets the
    ImageNet-normalised input it takes. ``threads``: onnxruntime intra-op threads (0 =
    ``torch.get_num_threads()``); ``providers``: onnxruntime execution providers (default: CPU).

    Example::

        predictor = OnnxPredictor("model_int8.onnx")      # or create_predictor(cfg, runtime="onnxruntime", ...)
        feats = predictor(["a.jpg", "b.jpg"])               # (2, D) float32 CPU tensor
    """

    def __init__(self, cfg=None, onnx_path: str | None = None, *, threads: int = 0,
                 providers: Sequence[str] | None = None, input_format: str = "RGB",
                 size_from_file: bool = False):
        if onnx_path is None and isinstance(cfg, (str, os.PathLike)):  # OnnxPredictor("m.onnx")
            cfg, onnx_path = None, cfg
        if onnx_path is None:
            raise TypeError("OnnxPredictor needs onnx_path")
        import onnxruntime as ort

        self.input_format = check_input_format(input_format)
        self.onnx_path = str(onnx_path)
        check_onnx_file(self.onnx_path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads) or torch.get_num_threads()
        try:
            self.session = ort.InferenceSession(self.onnx_path, opts,
                                                providers=list(providers or ["CPUExecutionProvider"]))
        except Exception as e:  # onnxruntime raises its own Fail / InvalidProtobuf / ... types
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise InputFileError(f"cannot load ONNX model {self.onnx_path}: {first}") from None
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.runtime, self.model_file = "onnxruntime", self.onnx_path
        self.precision = "int8" if "quantization" in self.metadata else "fp32"
        inp = self.session.get_inputs()[0]
        self.input_name, self.output_name = inp.name, self.session.get_outputs()[0].name
        size = _onnx_input_size(self.metadata, inp.shape)
        cfg = cfg_for_model_file(cfg, self.onnx_path, size, size_from_file)
        self.cfg = cfg.clone()
        self.model = None
        self.transform = build_transforms(self.cfg, is_train=False)
        self.batch_size = max(1, int(self.cfg.TEST.IMS_PER_BATCH))
        self.flip = self.metadata.get("flip") == "1"
        if bool(self.cfg.TEST.FLIP.ENABLED) != self.flip and "flip" in self.metadata:
            logger.warning("%s was exported with flip averaging %s, TEST.FLIP.ENABLED is %s: the "
                           "file's setting is used", self.onnx_path, "on" if self.flip else "off",
                           self.cfg.TEST.FLIP.ENABLED)
        self.feat_norm = bool(self.cfg.TEST.FEAT_NORM) and self.metadata.get("l2_normalize") != "1"
        logger.info("OnnxPredictor: %s (%s), input N x 3 x %s", self.onnx_path,
                    self.metadata.get("quantization", "fp32"), "x".join(map(str, size or ("?", "?"))))

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        """A preprocessed ``N x 3 x H x W`` batch -> ``N x D`` float32 CPU embeddings."""
        x = to_model_input(batch.detach().cpu(), self.metadata.get("input_convention", "")).numpy()
        out = torch.from_numpy(self.session.run([self.output_name], {self.input_name: x})[0]).float()
        if self.feat_norm:
            out = F.normalize(out, dim=1)
        return out


def cfg_for_model_file(cfg, path: str, size: tuple[int, int] | None, size_from_file: bool):
    """The config of a predictor running the exported file ``path`` whose input is ``size`` (None
    where the file records none): ``cfg`` (default config when None) with the file's size as
    INPUT.SIZE_TEST when ``cfg`` is None or ``size_from_file``; else ``cfg``'s INPUT.SIZE_TEST
    must equal it (:class:`ModelConfigMismatchError`)."""
    from ..config import get_cfg

    if cfg is None or size_from_file:
        cfg = get_cfg() if cfg is None else cfg.clone()
        cfg.defrost()
        if size is None:
            raise ConfigError(f"{path} records no input size: pass a config with INPUT.SIZE_TEST")
        cfg.INPUT.SIZE_TEST = list(size)
        cfg.INPUT.RESIZE_SHORT_TEST = 0
    elif size is not None and tuple(int(s) for s in cfg.INPUT.SIZE_TEST) != size:
        raise ModelConfigMismatchError(
            f"INPUT.SIZE_TEST is {list(cfg.INPUT.SIZE_TEST)} in the config but {path} takes "
            f"{size[0]}x{size[1]} images: leave the config out, or export the model again at that size")
    return cfg


def check_onnx_file(path: str) -> None:
    """:class:`InputFileError` naming ``path`` unless it is a non-empty ONNX (protobuf) file."""
    if not os.path.isfile(path):
        raise InputFileError(f"ONNX model not found: {path}" if not os.path.isdir(path)
                             else f"{path} is a folder, not an ONNX model file")
    with open(path, "rb") as f:
        head = f.read(8)
    if not head:
        raise InputFileError(f"cannot load ONNX model {path}: the file is empty")
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        raise InputFileError(f"cannot load ONNX model {path}: it is a PyTorch checkpoint, not an ONNX "
                             "file (export it first, or run it with the torch runtime)")


def _onnx_input_size(metadata: dict, shape) -> tuple[int, int] | None:
    if metadata.get("input_size"):
        h, w = metadata["input_size"].split(",")
        return int(h), int(w)
    if len(shape) == 4 and all(isinstance(d, int) for d in shape[2:]):
        return int(shape[2]), int(shape[3])
    return None


def _is_single_image(x) -> bool:
    if isinstance(x, (str, os.PathLike, Image.Image)):
        return True
    return isinstance(x, (np.ndarray, torch.Tensor)) and x.ndim in (2, 3) and x.dtype in (
        np.uint8, torch.uint8)


def to_pil_rgb(image: ImageLike, input_format: str = "RGB") -> Image.Image:
    """A path, PIL image, HWC/HW uint8 array or CHW uint8 tensor as an RGB PIL image, read by the
    data pipeline's ``load_image`` (what the test loader feeds the test transform, so the
    predictor reproduces evaluation exactly); alpha channels are dropped. Arrays and tensors are
    in ``input_format`` colour order ("RGB" or "BGR")."""
    if isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] not in (1, 3):
            raise TypeError(f"tensor images must be 3 x H x W (or 1 x H x W) uint8, got "
                            f"{image.dtype} {tuple(image.shape)}")
        image = image.permute(1, 2, 0).cpu().numpy()
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise TypeError(f"array images must be uint8 (0-255 RGB), got {image.dtype}")
        if image.ndim == 3 and image.shape[2] in (1, 4):
            image = image[:, :, 0] if image.shape[2] == 1 else image[:, :, :3]
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            raise ValueError(f"array images must be H x W x 3, got shape {image.shape}")
        if image.ndim == 3 and check_input_format(input_format) == "BGR":
            image = image[:, :, ::-1]
        image = np.ascontiguousarray(image)
    elif not isinstance(image, (str, os.PathLike, Image.Image)):
        raise TypeError(f"unsupported image type {type(image).__name__}: pass a path, a PIL image, "
                        f"a numpy uint8 array or a uint8 tensor")
    return load_image(image)
