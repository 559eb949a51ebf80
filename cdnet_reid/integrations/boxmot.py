"""boxmot: our models as the re-ID model of its trackers (StrongSORT, BoT-SORT, DeepOCSORT, ...).

Two ways in:

* ``reid_weights=<file>``: a file written by ``cdnet-reid export --for boxmot`` (``.onnx``,
  ``.torchscript`` or ``*_openvino_model``), run by boxmot's own backend
  (:mod:`cdnet_reid.export.boxmot`);
* ``reid_model=BoxmotReID(...)``: any of our runtimes (PyTorch, onnxruntime, OpenVINO) behind
  boxmot's ``get_features(xyxy, bgr_image)``, with our own preprocessing (the test transform,
  ``INPUT.RESIZE_BACKEND`` included)::

      from boxmot import BotSort
      from cdnet_reid.integrations.boxmot import BoxmotReID
      reid = BoxmotReID("cdnet.onnx", runtime="onnxruntime")     # or a config + checkpoint
      tracker = BotSort(reid_model=reid)
      tracks = tracker.update(detections, frame)                 # N x 6 (x1, y1, x2, y2, conf, cls), BGR frame

boxmot's ONNX backend wants ``onnxruntime==1.24.3`` exactly and pip-installs it at first use when
another version is present; :func:`boxmot_accepts_installed_onnxruntime` makes it accept any
installed onnxruntime >= 1.18.1 (boxmot's own minimum), so nothing is installed at run time.
"""

import contextlib
import logging
import os

import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

__all__ = ["BoxmotReID", "boxmot_accepts_installed_onnxruntime", "crop_boxes", "predictor_for_file"]

#: The onnxruntime boxmot's ONNX backend accepts under :func:`boxmot_accepts_installed_onnxruntime`.
ONNXRUNTIME_REQUIREMENT = "onnxruntime>=1.18.1"


def crop_boxes(xyxy: np.ndarray, bgr_image: np.ndarray) -> list:
    """RGB crops of ``xyxy`` boxes (rounded, clipped to the image, as boxmot crops); a box
    outside the image gives a 1 x 1 black crop."""
    h, w = bgr_image.shape[:2]
    crops = []
    for x1, y1, x2, y2 in np.asarray(xyxy, dtype=np.float64)[:, :4].round().astype(int):
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
        if x2 > x1 and y2 > y1:
            crops.append(np.ascontiguousarray(bgr_image[y1:y2, x1:x2, ::-1]))
        else:
            crops.append(np.zeros((1, 1, 3), dtype=np.uint8))
    return crops


def predictor_for_file(path: str, *, runtime: str = "", precision: str = "auto", cfg=None, threads: int = 0):
    """:func:`~cdnet_reid.engine.runtimes.create_predictor` for the model file ``path``
    (``runtime`` "" = from the file name)."""
    from ..config import ConfigError
    from ..engine.runtimes import create_predictor, infer_runtime

    runtime = runtime or infer_runtime(path)
    if runtime != "torch":
        return create_predictor(cfg, runtime=runtime, precision=precision, model_file=path, threads=threads)
    if cfg is None:
        raise ConfigError(f"{path}: the torch runtime builds the model from a config: pass cfg")
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.WEIGHTS = path
    cfg.freeze()
    return create_predictor(cfg, runtime="torch", precision=precision)


class BoxmotReID:
    """boxmot's ``reid_model`` protocol (``get_features(xyxy, bgr_image) -> N x D``,
    L2-normalised float32) over a predictor of ours.

    ``model``: a predictor (``DefaultPredictor``, ``OnnxPredictor``, ``OpenVinoPredictor``), or a
    model path (a checkpoint with ``cfg``, an ``.onnx`` file, an OpenVINO ``.xml`` / folder) built
    with :func:`cdnet_reid.engine.runtimes.create_predictor` (``runtime``: default from the file
    name, see :func:`~cdnet_reid.engine.runtimes.infer_runtime`; ``precision``, ``cfg``,
    ``threads``; a checkpoint becomes ``MODEL.WEIGHTS`` of ``cfg``, which it needs). Crops are
    resized by the predictor's test transform (``INPUT.RESIZE_BACKEND``; ``cv2`` is boxmot's resize).
    """

    def __init__(self, model, *, runtime: str = "", precision: str = "auto", cfg=None, threads: int = 0):
        if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
            model = predictor_for_file(os.fspath(model), runtime=runtime, precision=precision, cfg=cfg,
                                       threads=threads)
        elif runtime or cfg is not None:
            raise ValueError("runtime / cfg apply to a model path; a predictor is already built")
        self.predictor = model

    def get_features(self, xyxy, bgr_image: np.ndarray) -> np.ndarray:
        xyxy = np.asarray(xyxy)
        if xyxy.size == 0:
            return np.zeros((0, 0), dtype=np.float32)
        if bgr_image.ndim != 3 or bgr_image.shape[2] != 3 or bgr_image.dtype != np.uint8:
            raise ValueError(f"get_features needs an H x W x 3 uint8 BGR image, got {bgr_image.dtype} "
                             f"{bgr_image.shape}")
        batch = torch.stack([self.predictor.preprocess(c) for c in crop_boxes(xyxy.reshape(len(xyxy), -1), bgr_image)])
        feats = F.normalize(self.predictor.embed(batch).float(), dim=1)
        return feats.numpy()

    # boxmot's backends have these; trackers may call warmup
    def warmup(self, imgsz=None):
        return None


@contextlib.contextmanager
def boxmot_accepts_installed_onnxruntime(requirement: str | None = ONNXRUNTIME_REQUIREMENT):
    """Within the block, boxmot's ONNX backend accepts the installed onnxruntime when it meets
    ``requirement`` instead of pip-installing its pinned version, and any package install boxmot
    attempts raises ``RuntimeError`` (nothing is installed at run time)."""
    from boxmot.reid.backends import dependencies
    from boxmot.utils.checks import RequirementsChecker

    def refuse(self, packages, extra_args=None):
        raise RuntimeError(f"boxmot tried to pip-install {', '.join(map(str, packages))} at run time; "
                           f"install the package(s) yourself (pyproject extra 'track')")

    saved_req = dependencies.REID_BACKEND_REQUIREMENTS["onnx"]
    saved_install = RequirementsChecker._install_packages
    dependencies.REID_BACKEND_REQUIREMENTS["onnx"] = (requirement,)
    RequirementsChecker._install_packages = refuse
    try:
        yield
    finally:
        dependencies.REID_BACKEND_REQUIREMENTS["onnx"] = saved_req
        RequirementsChecker._install_packages = saved_install
