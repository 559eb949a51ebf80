"""Top-k search of L2-normalised query embeddings in a gallery: exact (block by block, memory ~
Q x block), k-reciprocal re-ranked, or with a FAISS index (``pip install faiss-cpu``)."""


import numpy as np
import torch

from ..config import ConfigError
from .rerank import k_reciprocal_rerank

__all__ = ["INDEXES", "exact_topk", "faiss_topk", "search"]

#: Search indexes of :func:`search`.
INDEXES = ("exact", "faiss-flat", "faiss-ivf")


def exact_topk(queries: np.ndarray, gallery: np.ndarray, k: int, block: int = 65536
               ) -> tuple[np.ndarray, np.ndarray]:
    """``(distances, indices)`` (Q x k, ascending cosine distance, ties by gallery index) of
    L2-normalised rows, computed block by block over the gallery (memory ~ Q x block)."""
    q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
    k = min(k, len(gallery))
    best_d = torch.full((len(q), 0), float("inf"))
    best_i = torch.empty((len(q), 0), dtype=torch.int64)
    for start in range(0, len(gallery), block):
        g = torch.from_numpy(np.ascontiguousarray(gallery[start:start + block], dtype=np.float32))
        d = 1.0 - q @ g.T
        idx = torch.arange(start, start + len(g)).expand(len(q), -1)
        cand_d, cand_i = torch.cat([best_d, d], 1), torch.cat([best_i, idx], 1)
        # stable order: distance first, then gallery index (candidates are in index order)
        order = torch.argsort(cand_d, dim=1, stable=True)[:, :k]
        best_d, best_i = cand_d.gather(1, order), cand_i.gather(1, order)
    return best_d.numpy(), best_i.numpy()


def faiss_topk(queries: np.ndarray, gallery: np.ndarray, k: int, *, ivf: bool = False,
               nlist: int = 1024, nprobe: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """The same with a FAISS index: ``IndexFlatIP`` (exact), or ``IndexIVFFlat`` (approximate)."""
    try:
        import faiss
    except ImportError:
        raise ConfigError("a faiss index needs FAISS, which is not installed (pip install faiss-cpu)") from None
    g = np.ascontiguousarray(gallery, dtype=np.float32)
    if ivf:
        nlist = max(1, min(nlist, len(g) // 39))  # FAISS wants >= 39 training points per list
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(g.shape[1]), g.shape[1], nlist,
                                   faiss.METRIC_INNER_PRODUCT)
        index.train(g)
        index.nprobe = min(nprobe, nlist)
    else:
        index = faiss.IndexFlatIP(g.shape[1])
    index.add(g)
    sims, idx = index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, len(g)))
    return 1.0 - sims, idx


def search(queries: np.ndarray, gallery: np.ndarray, k: int, *, index: str = "exact",
           rerank: tuple[int, int, float] | None = None, nlist: int = 1024, nprobe: int = 16
           ) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` gallery rows of every query row (both L2-normalised) by cosine distance, or by
    the k-reciprocal re-ranked distance with ``rerank=(k1, k2, lambda)`` (exact index only)."""
    if index not in INDEXES:
        raise ConfigError(f"index {index!r}: expected one of {', '.join(INDEXES)}")
    if rerank:
        if index != "exact":
            raise ConfigError("re-ranking needs the exact index (it uses the full distance matrix)")
        k1, k2, lam = rerank
        dist = k_reciprocal_rerank(torch.from_numpy(queries), torch.from_numpy(gallery), k1=k1, k2=k2,
                                   lambda_value=lam)
        order = torch.argsort(dist, dim=1, stable=True)[:, :k]
        return dist.gather(1, order).numpy(), order.numpy()
    if index == "exact":
        return exact_topk(queries, gallery, k)
    return faiss_topk(queries, gallery, k, ivf=index == "faiss-ivf", nlist=nlist, nprobe=nprobe)
