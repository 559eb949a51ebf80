"""Generic evaluation loop: run a model over a loader and feed an evaluator."""

import datetime
import logging
import time
from collections import OrderedDict
from contextlib import contextmanager

import torch
from torch import nn

from ..utils import comm
from ..utils.logger import log_every_n_seconds
from .testing import print_results

logger = logging.getLogger(__name__)


class DatasetEvaluator:
    """Accumulates model outputs over a dataset, then computes metrics.

    ``reset()`` before a pass, ``process(batch, outputs)`` per batch, ``evaluate()`` at the end
    (returns an ``OrderedDict`` of floats on the main process, ``{}`` elsewhere).
    """

    def reset(self) -> None:
        pass

    def process(self, batch: dict, outputs) -> None:
        pass

    def evaluate(self) -> "OrderedDict[str, float]":
        return OrderedDict()


def embed(model: nn.Module, images: torch.Tensor, flip: bool = False) -> torch.Tensor:
    """``model(images)``; with ``flip``, averaged with the outputs of the horizontally mirrored
    images (test-time flip augmentation; ``images`` is ``N x C x H x W``). The one definition used
    by the evaluation, ``DefaultPredictor`` and the ONNX export."""
    out = model(images)
    if flip:
        out = (out + model(images.flip(dims=[3]))) / 2
    return out


@contextmanager
def inference_context(model: nn.Module):
    """Puts ``model`` in eval mode and restores its previous mode, even on errors."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def inference_on_dataset(model: nn.Module, data_loader, evaluator: DatasetEvaluator, *,
                         flip_test: bool = False):
    """Run ``model`` over ``data_loader`` without gradients and return ``evaluator.evaluate()``.

    With ``flip_test`` the outputs of each image and of its horizontal mirror are averaged.
    Logs progress with an ETA and the pure compute time per image (after a few warm-up batches).
    """
    total = len(data_loader)
    num_images = len(data_loader.dataset)
    logger.info("Start inference on %d images (%d batches per rank)", num_images, total)
    evaluator.reset()
    num_warmup = min(5, total - 1)
    start = time.perf_counter()
    compute_time = 0.0
    with inference_context(model), torch.no_grad():
        for idx, batch in enumerate(data_loader):
            if idx == num_warmup:
                start, compute_time = time.perf_counter(), 0.0
            t0 = time.perf_counter()
            outputs = embed(model, batch["images"], flip_test)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            compute_time += time.perf_counter() - t0
            evaluator.process(batch, outputs)
            done = idx + 1 - num_warmup
            if done > 0:
                eta = (time.perf_counter() - start) / done * (total - idx - 1)
                log_every_n_seconds(logging.INFO, f"Inference done {idx + 1}/{total}. ETA="
                                    f"{datetime.timedelta(seconds=int(eta))}", n=5, name=__name__)
    elapsed = time.perf_counter() - start
    timed = max(total - num_warmup, 1)
    per_rank_images = num_images / max(comm.get_world_size(), 1)
    logger.info("Inference: %.2fs total over %d timed batches (%.4fs/batch, compute %.4fs/batch, "
                "~%.1f images/s per rank)", elapsed, timed, elapsed / timed, compute_time / timed,
                per_rank_images * timed / max(total, 1) / max(elapsed, 1e-9))
    results = evaluator.evaluate()
    return results if results is not None else OrderedDict()


def evaluate_datasets(model: nn.Module, names, build_test_loader, build_evaluator, *,
                      flip_test: bool = False) -> "OrderedDict[str, dict]":
    """Evaluate ``model`` on every dataset of ``names``: ``build_test_loader(name)`` gives its
    :class:`~cdnet_reid.data.TestLoader`, ``build_evaluator(name, meta)`` its evaluator. On the
    main process: the results ``{name: {metric: value}}``, also logged as a table; elsewhere {}."""
    results = OrderedDict()
    for name in names:
        test = build_test_loader(name)
        res = inference_on_dataset(model, test.loader, build_evaluator(name, test.meta), flip_test=flip_test)
        if comm.is_main_process():
            results[name] = res
    if comm.is_main_process():
        print_results(results)
    return results
