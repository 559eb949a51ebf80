"""Re-ID evaluator: embeddings of query + gallery -> CMC, mAP, mINP (gathered on rank 0)."""

import logging
from collections import OrderedDict
from typing import List

import numpy as np
import torch
import torch.nn.functional as F

from ..utils import comm
from .evaluator import DatasetEvaluator
from .rank import evaluate_rank_features

logger = logging.getLogger(__name__)


class ReidEvaluator(DatasetEvaluator):
    """Collects embeddings, pids and camera ids; ranks the gallery for every query.

    The loader must yield the ``num_query`` query images first, then the gallery. With
    ``feat_norm`` the embeddings are L2-normalised; ``metric`` is ``"cosine"`` (1 - cos) or
    ``"euclidean"`` (squared). Results are percentages: Rank-1/5/10, mAP, mINP.
    """

    def __init__(self, num_query: int, *, metric: str = "cosine", feat_norm: bool = True,
                 max_rank: int = 50):
        if metric not in ("cosine", "euclidean"):
            raise ValueError(f"TEST.METRIC must be 'cosine' or 'euclidean', got {metric!r}")
        self.num_query = num_query
        self.metric = metric
        self.feat_norm = feat_norm
        self.max_rank = max_rank
        self.reset()

    def reset(self) -> None:
        self._feats: List[torch.Tensor] = []
        self._pids: List[int] = []
        self._camids: List[int] = []

    def process(self, batch: dict, outputs: torch.Tensor) -> None:
        self._feats.append(outputs.detach().float().cpu())
        self._pids.extend(int(p) for p in batch["targets"])
        self._camids.extend(int(c) for c in batch["camids"])

    def collect(self):
        """All (features, pids, camids) in dataset order on rank 0; ``None`` on other ranks."""
        local = (torch.cat(self._feats) if self._feats else torch.zeros(0), self._pids, self._camids)
        parts = comm.gather(local) if comm.get_world_size() > 1 else [local]
        if not comm.is_main_process():
            return None
        feats = torch.cat([p[0] for p in parts if p[0].numel()])
        pids = np.asarray([x for p in parts for x in p[1]])
        camids = np.asarray([x for p in parts for x in p[2]])
        return feats, pids, camids

    def evaluate(self) -> "OrderedDict[str, float]":
        collected = self.collect()
        if collected is None:
            return OrderedDict()
        feats, pids, camids = collected
        if self.feat_norm:
            feats = F.normalize(feats, dim=1)
        nq = self.num_query
        cmc, all_ap, all_inp = evaluate_rank_features(
            feats[:nq], feats[nq:], pids[:nq], pids[nq:], camids[:nq], camids[nq:],
            metric=self.metric, max_rank=self.max_rank)
        results = OrderedDict()
        for r in (1, 5, 10):
            if r <= len(cmc):
                results[f"Rank-{r}"] = float(cmc[r - 1]) * 100
        results["mAP"] = float(np.mean(all_ap)) * 100
        results["mINP"] = float(np.mean(all_inp)) * 100
        return results
