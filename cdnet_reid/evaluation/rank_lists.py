"""Rank lists and query-gallery pair distances for pictures (see ``tools/visualize_ranks.py``),
under the same protocol as the metrics (:mod:`.rank`): stable ranking, junk items removed."""


import numpy as np

from .rank import junk_mask

__all__ = ["ranked_gallery", "pair_distances"]


def ranked_gallery(dist_row: np.ndarray, q_pid: int, q_camid: int, g_pids: np.ndarray,
                   g_camids: np.ndarray) -> np.ndarray:
    """Gallery indices in rank order (stable, as the evaluation) without the junk items (same
    identity and camera as the query), i.e. the list the metrics are computed on."""
    order = np.argsort(dist_row, kind="stable")
    return order[~junk_mask(q_pid, q_camid, g_pids[order], g_camids[order])]


def pair_distances(dist: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray, q_camids: np.ndarray,
                   g_camids: np.ndarray, max_pairs: int = 2_000_000, seed: int = 0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``(positive, negative)`` query-gallery distances, junk pairs excluded; the negatives are
    subsampled to ``max_pairs`` (seeded) for large test sets."""
    same = q_pids[:, None] == g_pids[None, :]
    pos = dist[same & ~junk_mask(q_pids[:, None], q_camids[:, None], g_pids, g_camids)]
    neg = dist[~same]
    if neg.size > max_pairs:
        neg = np.random.default_rng(seed).choice(neg, max_pairs, replace=False)
    return pos, neg
