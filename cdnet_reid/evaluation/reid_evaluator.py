"""Re-ID evaluator: embeddings of query + gallery -> CMC, mAP, mINP (gathered on rank 0)."""

import logging
from collections import OrderedDict
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..utils import comm
from .evaluator import DatasetEvaluator
from .query_expansion import average_query_expansion
from .rank import evaluate_rank_chunks, evaluate_rank_features, pairwise_distance_chunks
from .rerank import rerank_distance_chunks

logger = logging.getLogger(__name__)


class ReidEvaluator(DatasetEvaluator):
    """Collects embeddings, pids and camera ids; ranks the gallery for every query.

    The loader must yield the ``num_query`` query images first, then the gallery. With
    ``feat_norm`` the embeddings are L2-normalised; ``metric`` is ``"cosine"`` (1 - cos) or
    ``"euclidean"`` (squared). Results are percentages: Rank-1/5/10, mAP, mINP.

    Options (``TEST.AQE.*``, ``TEST.RERANK.*``): ``aqe`` replaces every query and gallery
    embedding by its average query expansion (:mod:`.query_expansion`; re-normalised with
    ``feat_norm``); ``rerank`` ranks by the k-reciprocal re-ranked distances (:mod:`.rerank`),
    computed block by block, so MSMT17-sized test sets stay within a few GB.
    """

    def __init__(self, num_query: int, *, metric: str = "cosine", feat_norm: bool = True,
                 max_rank: int = 50, rerank: bool = False, rerank_k1: int = 20,
                 rerank_k2: int = 6, rerank_lambda: float = 0.3, aqe: bool = False,
                 aqe_times: int = 1, aqe_k: int = 5, aqe_alpha: float = 3.0):
        if metric not in ("cosine", "euclidean"):
            raise ValueError(f"TEST.METRIC must be 'cosine' or 'euclidean', got {metric!r}")
        self.num_query = num_query
        self.metric = metric
        self.feat_norm = feat_norm
        self.max_rank = max_rank
        self.rerank = dict(k1=int(rerank_k1), k2=int(rerank_k2),
                           lambda_value=float(rerank_lambda)) if rerank else None
        self.aqe = dict(qe_times=int(aqe_times), qe_k=int(aqe_k),
                        alpha=float(aqe_alpha)) if aqe else None
        self.reset()

    @classmethod
    def from_config(cls, cfg, *, num_query: int, **meta) -> dict:
        """Constructor arguments from ``cfg.TEST`` (METRIC, FEAT_NORM, MAX_RANK, RERANK.*,
        AQE.*) and the test loader's ``num_query``; other ``meta`` entries are not used."""
        test, rr, qe = cfg.TEST, cfg.TEST.RERANK, cfg.TEST.AQE
        return dict(num_query=int(num_query), metric=test.METRIC, feat_norm=test.FEAT_NORM,
                    max_rank=test.MAX_RANK, rerank=rr.ENABLED, rerank_k1=rr.K1, rerank_k2=rr.K2,
                    rerank_lambda=rr.LAMBDA, aqe=qe.ENABLED, aqe_times=qe.QE_TIME, aqe_k=qe.QE_K,
                    aqe_alpha=qe.ALPHA)

    def reset(self) -> None:
        self._feats: list[torch.Tensor] = []
        self._pids: list[int] = []
        self._camids: list[int] = []
        self._valid: list[bool] = []
        self._paths: list[str] = []
        #: where the distances are computed and ranked: the model's GPU when it ran on one (the
        #: features travel between processes on the CPU)
        self.rank_device = torch.device("cpu")

    def process(self, batch: dict, outputs: torch.Tensor) -> None:
        self.rank_device = outputs.device if outputs.device.type == "cuda" else torch.device("cpu")
        self._feats.append(outputs.detach().float().cpu())
        self._pids.extend(int(p) for p in batch["targets"])
        self._camids.extend(int(c) for c in batch["camids"])
        valid = batch.get("valid")
        if valid is None:
            valid = [True] * len(batch["camids"])
        self._valid.extend(bool(v) for v in valid)
        self._paths.extend(batch.get("img_paths", [""] * len(batch["camids"])))

    def collect(self):
        """All (features, pids, camids, valid) in dataset order on rank 0; ``None`` on other ranks.

        ``valid`` is False for samples whose image could not be read (``DATALOADER.ON_BAD_IMAGE``
        "skip"); they are left out of the evaluation."""
        local = (torch.cat(self._feats) if self._feats else torch.zeros(0), self._pids, self._camids,
                 self._valid)
        parts = comm.gather(local) if comm.get_world_size() > 1 else [local]
        if not comm.is_main_process():
            return None
        feats = torch.cat([p[0] for p in parts if p[0].numel()])
        pids = np.asarray([x for p in parts for x in p[1]])
        camids = np.asarray([x for p in parts for x in p[2]])
        valid = np.asarray([x for p in parts for x in p[3]], dtype=bool)
        return feats, pids, camids, valid

    def query_gallery(self, with_paths: bool = False) -> dict | None:
        """What is ranked, on rank 0 (``None`` on other ranks; every rank must call it): a dict
        with ``q_feats, g_feats`` (after ``feat_norm``, unreadable images dropped, AQE when
        enabled), ``q_pids, g_pids, q_camids, g_camids`` (numpy) and, with ``with_paths``,
        ``q_paths, g_paths``."""
        collected = self.collect()
        paths = None
        if with_paths:
            parts = comm.gather(self._paths) if comm.get_world_size() > 1 else [self._paths]
            paths = [x for p in parts for x in p] if comm.is_main_process() else None
        if collected is None:
            return None
        feats, pids, camids, valid = collected
        if self.feat_norm:
            feats = F.normalize(feats, dim=1)
        nq = self.num_query
        if not valid.all():
            q_bad, g_bad = int((~valid[:nq]).sum()), int((~valid[nq:]).sum())
            logger.warning("%d query and %d gallery image(s) could not be read and are left out of "
                           "the evaluation", q_bad, g_bad)
            feats, pids, camids = feats[torch.from_numpy(valid)], pids[valid], camids[valid]
            if paths is not None:
                paths = [p for p, v in zip(paths, valid) if v]
            nq -= q_bad
        q_feats, g_feats = feats[:nq], feats[nq:]
        if self.aqe is not None:
            q_feats, g_feats = average_query_expansion(q_feats, g_feats, **self.aqe)
            if self.feat_norm:
                q_feats, g_feats = F.normalize(q_feats, dim=1), F.normalize(g_feats, dim=1)
        data = dict(q_feats=q_feats, g_feats=g_feats, q_pids=pids[:nq], g_pids=pids[nq:],
                    q_camids=camids[:nq], g_camids=camids[nq:])
        if paths is not None:
            data.update(q_paths=paths[:nq], g_paths=paths[nq:])
        return data

    def distance_chunks(self, data: dict) -> Iterator:
        """The query x gallery distances of ``data`` (re-ranked when enabled) as consecutive
        ``(start, stop, dist)`` blocks of queries (see ``rank.evaluate_rank_chunks``)."""
        q, g = data["q_feats"], data["g_feats"]
        if self.rerank is not None:
            yield from rerank_distance_chunks(q, g, metric=self.metric, **self.rerank)
            return
        yield from pairwise_distance_chunks(q, g, self.metric)

    def distance_matrix(self, data: dict) -> torch.Tensor:
        """The full (Nq, Ng) distance matrix of ``data`` (for small test sets and pictures)."""
        out = torch.empty(len(data["q_feats"]), len(data["g_feats"]))
        for a, b, d in self.distance_chunks(data):
            out[a:b] = d
        return out

    def evaluate(self) -> "OrderedDict[str, float]":
        data = self.query_gallery()
        if data is None:
            return OrderedDict()
        data["q_feats"], data["g_feats"] = data["q_feats"].to(self.rank_device), data["g_feats"].to(self.rank_device)
        ids = (data["q_pids"], data["g_pids"], data["q_camids"], data["g_camids"])
        if self.rerank is not None:
            cmc, all_ap, all_inp = evaluate_rank_chunks(self.distance_chunks(data), *ids,
                                                        max_rank=self.max_rank)
        else:
            cmc, all_ap, all_inp = evaluate_rank_features(
                data["q_feats"], data["g_feats"], *ids, metric=self.metric, max_rank=self.max_rank)
        results = OrderedDict()
        for r in (1, 5, 10):
            if r <= len(cmc):
                results[f"Rank-{r}"] = float(cmc[r - 1]) * 100
        results["mAP"] = float(np.mean(all_ap)) * 100
        results["mINP"] = float(np.mean(all_inp)) * 100
        return results
