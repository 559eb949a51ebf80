"""Classification evaluator: exact, count-based top-k accuracy gathered over the ranks."""

import logging
from collections import OrderedDict
from collections.abc import Sequence

import torch

from ..utils import comm
from .evaluator import DatasetEvaluator

logger = logging.getLogger(__name__)

__all__ = ["ClassificationEvaluator"]


class ClassificationEvaluator(DatasetEvaluator):
    """Top-k accuracy (percent) = correct predictions / images, counted exactly.

    ``process`` counts, per batch, the images whose label is among the ``k`` highest logits (ties
    broken by ``torch.topk``) for every ``k`` of ``topk`` (a ``k`` larger than the number of classes
    counts every image as correct). The integer counts of all ranks are summed on rank 0, so the
    result is exact whatever the batch size and number of processes (unlike the original code's
    mean of per-batch accuracies). Samples with ``valid=False`` (unreadable images under
    ``DATALOADER.ON_BAD_IMAGE=skip``) are left out and reported. Results: ``top1``, ``top5``, ...
    """

    def __init__(self, topk: Sequence[int] = (1, 5)):
        if not topk or any(int(k) < 1 for k in topk):
            raise ValueError(f"topk must be positive integers, got {topk}")
        self.topk = tuple(int(k) for k in topk)
        self.reset()

    @classmethod
    def from_config(cls, cfg, **meta) -> dict:
        """Constructor arguments: top-1 and top-5 accuracy (``cfg`` and ``meta`` are not used)."""
        return dict(topk=(1, 5))

    def reset(self) -> None:
        self._correct = {k: 0 for k in self.topk}
        self._total = 0
        self._skipped = 0

    def process(self, batch: dict, outputs: torch.Tensor) -> None:
        logits = outputs.detach()
        if logits.dim() != 2:
            raise ValueError(f"classification outputs must be N x num_classes logits, got shape "
                             f"{tuple(logits.shape)} (is MODEL.HEADS.CLASSIFICATION on?)")
        targets = torch.as_tensor(batch["targets"], device=logits.device)
        valid = batch.get("valid")
        if valid is not None:
            valid = torch.as_tensor(valid, dtype=torch.bool, device=logits.device)
            self._skipped += int((~valid).sum())
            logits, targets = logits[valid], targets[valid]
        if logits.shape[0] == 0:
            return
        kmax = min(max(self.topk), logits.shape[1])
        pred = logits.topk(kmax, dim=1).indices  # N x kmax, best first
        hit = pred == targets.view(-1, 1)
        for k in self.topk:
            self._correct[k] += int(hit[:, :min(k, kmax)].any(dim=1).sum())
        self._total += int(targets.shape[0])

    def evaluate(self) -> "OrderedDict[str, float]":
        local = (self._correct, self._total, self._skipped)
        parts = comm.gather(local) if comm.get_world_size() > 1 else [local]
        if not comm.is_main_process():
            return OrderedDict()
        total = sum(p[1] for p in parts)
        skipped = sum(p[2] for p in parts)
        if skipped:
            logger.warning("%d unreadable image(s) were left out of the accuracy", skipped)
        if total == 0:
            raise ValueError("no image was evaluated")
        results = OrderedDict()
        for k in self.topk:
            results[f"top{k}"] = 100.0 * sum(p[0][k] for p in parts) / total
        logger.info("Accuracy over %d images: %s", total,
                    ", ".join(f"{k} {v:.2f}%" for k, v in results.items()))
        return results
