"""Re-identification ranking metrics: CMC, mAP and mINP (Market-1501 protocol).

Protocol (identical to fast-reid's ``evaluate_rank`` / torchreid's ``eval_market1501``,
except where stated):

For every query ``q`` (row of the query x gallery distance matrix, smaller = more similar):

1. **Ranking.** The gallery is sorted by ascending distance with a *stable* sort, so ties are
   broken by gallery index (lower index first).  NaN distances are ranked last.
2. **Junk removal.** Gallery items with the query's pid *and* the query's camera id are
   removed from the ranking (they are neither hits nor misses).  Nothing else is removed:
   distractors (e.g. Market-1501's pid 0) stay in the list as ordinary non-matches.
3. **Relevance.** Among the remaining items, an item is relevant (a hit) iff its pid equals
   the query's pid.  Let ``r_1, ..., r_N`` be the relevance of the remaining items in rank
   order (1-based positions) and ``R = sum_i r_i``.
4. **Validity.** A query with ``R == 0`` (no valid match in the gallery) is *skipped*: it
   contributes to none of the returned quantities.  If no query is valid a ``ValueError``
   is raised.
5. **CMC.** ``c_q(k) = 1`` if some hit is at rank ``<= k`` else 0, for ``k = 1..max_rank``.
   The curve always has ``max_rank`` entries, even if fewer than ``max_rank`` gallery items
   remain: positions past the end repeat the last value (which is 1 for a valid query),
   i.e. the cumulative hit count clipped to 1.  The returned ``cmc`` is the mean of ``c_q``
   over the valid queries (``float32``; ``cmc[0]`` is Rank-1).
6. **AP** (non-interpolated): ``AP_q = (1 / R) * sum_{i : r_i = 1} (#hits at ranks <= i) / i``.
7. **INP** (fast-reid's definition, Ye et al. 2021): ``INP_q = R / p_last`` where ``p_last`` is
   the 1-based position, among the remaining items, of the *last* correct match.

``mAP = all_AP.mean()`` and ``mINP = all_INP.mean()``.

Implementation: queries are processed in chunks of rows.  Only the ranks of the relevant items
are needed, so on CPU no row is sorted: for each query its relevant items are sorted by
``(distance, gallery index)`` (a few dozen), the other-pid items up to the farthest relevant one
are picked with one comparison over the row, and the rank of each relevant item is its position
among them plus the number of those items ordered before it (compared as integer keys
``(distance bits, gallery index)``, so ties and NaNs follow the stable order exactly); rows run in
threads.  On accelerators the rows are sorted with ``torch.sort(stable=True)`` and the relevant /
junk positions read from the sorted codes.  Both give identical results, which do not depend on
the chunk size.  Extra memory is a few bytes per gallery item per thread on CPU, ~14 bytes per
element of one chunk on accelerators (~450 MB with the default chunk size).
:func:`evaluate_rank_features` computes the distances chunk by chunk from features, so the full
distance matrix is never materialised (4 bytes per element of one chunk).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
import torch

__all__ = ["evaluate_rank", "evaluate_rank_chunks", "evaluate_rank_features", "default_chunk_size",
           "junk_mask", "pairwise_distances", "pairwise_distance_chunks"]

ArrayLike = np.ndarray | torch.Tensor | Sequence[int] | Sequence[float]
Metric = Literal["cosine", "euclidean"]

# Budget for the int64 sort indices of one chunk (the sorting path; its whole per-chunk working
# set is ~1.8x this, ~450 MB), and 1/2 of it for a distance chunk in evaluate_rank_features.
_SORT_INDEX_BUDGET_BYTES = 256 * 1024 * 1024


def default_chunk_size(num_gallery: int, budget_bytes: int = _SORT_INDEX_BUDGET_BYTES) -> int:
    """Queries per chunk so that one chunk's int64 sort indices fit in ``budget_bytes``."""
    return max(1, int(budget_bytes) // (8 * max(1, int(num_gallery))))


# ---------------------------------------------------------------------------------------------
# input handling
# ---------------------------------------------------------------------------------------------
def _as_tensor(x: ArrayLike, name: str, device: torch.device | None = None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach()
    elif isinstance(x, np.ndarray):
        arr = x
        if any(st < 0 for st in arr.strides):  # torch.from_numpy rejects negative strides
            arr = np.ascontiguousarray(arr)
        if arr.dtype.byteorder not in ("=", "|"):
            arr = arr.astype(arr.dtype.newbyteorder("="))
        try:
            with warnings.catch_warnings():  # read-only arrays are fine: we never write to them
                warnings.simplefilter("ignore", UserWarning)
                t = torch.from_numpy(arr)
        except TypeError as exc:  # object / unsupported dtype
            raise ValueError(f"{name}: unsupported array dtype {arr.dtype}") from exc
    else:
        try:
            t = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}: cannot convert {type(x).__name__} to an array") from exc
    if device is not None and t.device != device:
        t = t.to(device)
    return t


def _as_ids(x: ArrayLike, name: str, device: torch.device) -> torch.Tensor:
    t = _as_tensor(x, name, device)
    if t.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(t.shape)}")
    if t.is_complex():
        raise ValueError(f"{name} must contain integer ids, got dtype {t.dtype}")
    if t.is_floating_point() and t.numel() and not bool(torch.all(t == torch.round(t))):
        raise ValueError(f"{name} must contain integer ids, got non-integer values")
    return t.to(torch.int64)


def _check_max_rank(max_rank: int) -> int:
    if isinstance(max_rank, bool) or int(max_rank) != max_rank or max_rank < 1:
        raise ValueError(f"max_rank must be a positive integer, got {max_rank!r}")
    return int(max_rank)


def _check_chunk_size(chunk_size: int | None, num_gallery: int) -> int:
    if chunk_size is None:
        return default_chunk_size(num_gallery)
    if isinstance(chunk_size, bool) or int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
    return int(chunk_size)


def _prepare_ids(
    num_query: int,
    num_gallery: int,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    device: torch.device,
    what: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    qp = _as_ids(q_pids, "q_pids", device)
    gp = _as_ids(g_pids, "g_pids", device)
    qc = _as_ids(q_camids, "q_camids", device)
    gc = _as_ids(g_camids, "g_camids", device)
    for name, t, n, side in (
        ("q_pids", qp, num_query, "queries"),
        ("q_camids", qc, num_query, "queries"),
        ("g_pids", gp, num_gallery, "gallery items"),
        ("g_camids", gc, num_gallery, "gallery items"),
    ):
        if t.shape[0] != n:
            raise ValueError(
                f"shape mismatch: {what} has {n} {side} but {name} has length {t.shape[0]}"
            )
    return qp, gp, qc, gc


# ---------------------------------------------------------------------------------------------
# protocol rules and distances (shared with the re-ranking, the evaluator and the pictures)
# ---------------------------------------------------------------------------------------------
def junk_mask(q_pids, q_camids, g_pids, g_camids):
    """The Market-1501 junk rule: ``True`` where a gallery item has the query's pid *and* camera
    (such items are removed from the query's ranking).

    Works on numpy arrays and torch tensors alike; the arguments broadcast against each other, e.g.
    ``junk_mask(q_pids[:, None], q_camids[:, None], g_pids, g_camids)`` is the (Q, G) mask, scalar
    query ids give a (G,) mask, and equal-length 1-D arrays give the mask of (query, gallery) pairs.
    """
    return (q_pids == g_pids) & (q_camids == g_camids)


def pairwise_distances(q: torch.Tensor, g: torch.Tensor, metric: str = "cosine", *,
                       g_sqnorm: torch.Tensor | None = None) -> torch.Tensor:
    """(n, m) distances of the rows of ``q`` (n, D) to the rows of ``g`` (m, D): ``1 - q.g``
    (``"cosine"``, on the features as given) or the squared Euclidean distance
    ``||q||^2 + ||g||^2 - 2 q.g`` (``"euclidean"``; ``g_sqnorm`` = precomputed ``||g||^2``)."""
    if metric == "cosine":
        return torch.mm(q, g.t()).neg_().add_(1.0)
    if metric != "euclidean":
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    if g_sqnorm is None:
        g_sqnorm = (g * g).sum(dim=1)
    dist = torch.addmm(g_sqnorm[None, :], q, g.t(), beta=1.0, alpha=-2.0)
    dist += (q * q).sum(dim=1, keepdim=True)
    return dist


def pairwise_distance_chunks(q: torch.Tensor, g: torch.Tensor, metric: str = "cosine", *,
                             chunk_size: int | None = None
                             ) -> Iterator[tuple[int, int, torch.Tensor]]:
    """:func:`pairwise_distances` of ``q`` to ``g`` as consecutive ``(start, stop, dist)`` blocks
    of query rows (``chunk_size`` rows, by default :func:`default_chunk_size`), so that the whole
    matrix never exists at once (the input of :func:`evaluate_rank_chunks`)."""
    chunk = _check_chunk_size(chunk_size, g.shape[0])
    g_sqnorm = (g * g).sum(dim=1) if metric == "euclidean" else None
    for start in range(0, q.shape[0], chunk):
        stop = min(start + chunk, q.shape[0])
        yield start, stop, pairwise_distances(q[start:stop], g, metric, g_sqnorm=g_sqnorm)


# ---------------------------------------------------------------------------------------------
# ranks of the relevant items, by sorting (any device) or by counting (CPU)
# ---------------------------------------------------------------------------------------------
def _ranks_by_sorting(dist, q_pids, q_camids, g_pids, g_camids):
    """``(rows, ranks)`` of every relevant (query, gallery) pair of the chunk, sorted by row then
    rank: the row and the 1-based rank among the row's non-junk items. Torch ops on any device:
    the rows are sorted stably, then the codes 0 = other pid, 1 = relevant, 2 = junk are
    gathered into rank order."""
    code = (q_pids[:, None] == g_pids[None, :]).to(torch.uint8)
    code += junk_mask(q_pids[:, None], q_camids[:, None], g_pids[None, :], g_camids[None, :])
    code = torch.gather(code, 1, torch.sort(dist, dim=1, stable=True).indices)  # rank order
    pos = code.nonzero()  # (row, position) of the same-pid items, row-major
    kind = code[pos[:, 0], pos[:, 1]]
    del code
    rel, junk = pos[kind == 1], pos[kind == 2]
    rows, cols = rel[:, 0], rel[:, 1]
    if junk.shape[0] == 0:
        return rows, cols + 1
    num_g = dist.shape[1]  # position among the kept items = col - #junk before it in the row
    junk_keys = junk[:, 0] * num_g + junk[:, 1]
    junk_before = (torch.searchsorted(junk_keys, rows * num_g + cols)
                   - torch.searchsorted(junk_keys, rows * num_g))
    return rows, cols - junk_before + 1


def _ordered_keys(values: np.ndarray) -> np.ndarray:
    """Integers in the order of a stable sort of ``values``: floats map to same-width integers
    (-0.0 and +0.0 equal, every NaN equal and after +inf), integers to int64."""
    if values.dtype.kind != "f":
        return values.astype(np.int64)
    nan = np.isnan(values)
    if nan.any():
        values = np.where(nan, values.dtype.type(np.nan), values)  # one canonical NaN
    bits = values.view(np.int32 if values.itemsize == 4 else np.int64)
    sign = bits >> (8 * values.itemsize - 1)  # -1 for negative values, else 0
    return (bits ^ (sign & np.iinfo(bits.dtype).max)) - sign  # negatives + 1: -0.0 -> 0


_COUNT_BLOCK = 1 << 20  # elements of one (positives x candidates) comparison block


def _count_before(keys: np.ndarray, cols: np.ndarray, pos_keys: np.ndarray,
                  pos_cols: np.ndarray) -> np.ndarray:
    """For every positive ``(pos_keys[k], pos_cols[k])``: how many of the items ``(keys, cols)``
    (``cols`` ascending) come before it in the stable order (smaller key, or equal key and
    smaller gallery index)."""
    packed = keys.dtype == np.int32  # float32 distances (gallery indices < 2**32)
    if packed:  # unique int64 keys (key, col): one comparison decides, ties included
        keys = (keys.astype(np.int64) << 32) | cols
        pos_keys = (pos_keys.astype(np.int64) << 32) | pos_cols
    out = np.empty(pos_keys.shape[0], dtype=np.int64)
    step = max(1, _COUNT_BLOCK // max(1, keys.size))
    for a in range(0, pos_keys.shape[0], step):
        block = pos_keys[a:a + step, None]
        out[a:a + step] = (keys < block).sum(1)
        if not packed:  # equal keys: those with a smaller gallery index come first
            for k in a + np.flatnonzero((keys == block).any(1)):
                out[k] += np.count_nonzero(keys[:np.searchsorted(cols, pos_cols[k])] == pos_keys[k])
    return out


def _ranks_by_counting(dist, q_pids, q_camids, g_pids, g_camids):
    """Same result as :func:`_ranks_by_sorting`, on CPU, without sorting the rows: for every
    query the relevant items are sorted (a few dozen), and the rank of each is its position among
    them plus the number of other-pid items before it in the stable order. Only the items at most
    as far as the farthest relevant one can be before any of them; those are selected with one
    comparison over the row, then counted against every relevant item. Row blocks run in threads
    (numpy releases the GIL)."""
    if dist.dtype in (torch.float16, torch.bfloat16):
        dist = dist.to(torch.float32)
    arr = dist.numpy()
    qp, qc, gp, gc = (t.numpy() for t in (q_pids, q_camids, g_pids, g_camids))
    by_pid = np.argsort(gp, kind="stable")  # gallery grouped by pid, ascending index in a group
    lo = np.searchsorted(gp[by_pid], qp, side="left")
    hi = np.searchsorted(gp[by_pid], qp, side="right")
    ranks: list[np.ndarray | None] = [None] * arr.shape[0]

    def rank_rows(a: int, b: int) -> None:
        for i in range(a, b):
            same = by_pid[lo[i]:hi[i]]
            rel = same[~junk_mask(qp[i], qc[i], gp[same], gc[same])]
            if rel.size == 0:
                continue
            row = arr[i]
            keys = _ordered_keys(row[rel])
            order = np.argsort(keys, kind="stable")
            pos_keys, pos_cols = keys[order], rel[order]
            last = row[pos_cols[-1]]
            cand = row <= last if last == last else np.ones(row.shape, dtype=bool)  # NaN: all
            cand[same] = False
            cols = np.flatnonzero(cand)
            before = _count_before(_ordered_keys(row[cols]), cols, pos_keys, pos_cols)
            ranks[i] = np.arange(1, rel.size + 1) + before

    _run_row_blocks(rank_rows, arr.shape[0])
    found = [(i, r) for i, r in enumerate(ranks) if r is not None]
    if not found:
        return torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64)
    rows = np.concatenate([np.full(r.size, i) for i, r in found])
    return torch.from_numpy(rows), torch.from_numpy(np.concatenate([r for _, r in found]))


def _run_row_blocks(fn: Callable[[int, int], None], num_rows: int) -> None:
    """Call ``fn(start, stop)`` on blocks of rows, spread over ``torch.get_num_threads()``
    threads."""
    num_threads = max(1, min(torch.get_num_threads(), num_rows // 8))
    num_blocks = max(1, min(num_rows, 4 * num_threads))
    bounds = np.linspace(0, num_rows, num_blocks + 1).astype(int)
    blocks = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    if num_threads == 1:
        for a, b in blocks:
            fn(a, b)
        return
    with ThreadPoolExecutor(max_workers=num_threads) as pool:
        for fut in [pool.submit(fn, a, b) for a, b in blocks]:
            fut.result()


def _rank_chunk(
    dist: torch.Tensor,
    q_pids: torch.Tensor,
    q_camids: torch.Tensor,
    g_pids: torch.Tensor,
    g_camids: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rank one chunk of queries.

    Args:
        dist: (n, G) distances of ``n`` queries to the whole gallery.
        q_pids, q_camids: (n,) int64 ids of these queries.
        g_pids, g_camids: (G,) int64 ids of the gallery.

    Returns:
        ``(first_hit, ap, inp)`` for the *valid* queries of the chunk, in query order:
        1-based rank of the first hit (int64), AP and INP (float64).
    """
    n = dist.shape[0]
    device = dist.device
    if device.type == "cpu" and dist.shape[1] > 0:
        rows, kept_rank = _ranks_by_counting(dist, q_pids, q_camids, g_pids, g_camids)
    else:
        rows, kept_rank = _ranks_by_sorting(dist, q_pids, q_camids, g_pids, g_camids)

    num_rel = torch.bincount(rows, minlength=n)  # R per query
    starts = torch.cumsum(num_rel, 0) - num_rel  # first relevant entry of each row
    hit_no = torch.arange(rows.shape[0], device=device) - starts[rows] + 1  # #hits <= position
    precision = hit_no.to(torch.float64) / kept_rank.to(torch.float64)
    ap_sum = torch.zeros(n, dtype=torch.float64, device=device).index_add_(0, rows, precision)

    valid = num_rel > 0
    r_valid = num_rel[valid]
    s_valid = starts[valid]
    first_hit = kept_rank[s_valid]
    last_hit = kept_rank[s_valid + r_valid - 1]
    r_float = r_valid.to(torch.float64)
    ap = ap_sum[valid] / r_float
    inp = r_float / last_hit.to(torch.float64)
    return first_hit, ap, inp


def _finalize(
    first_hits: list[torch.Tensor],
    aps: list[torch.Tensor],
    inps: list[torch.Tensor],
    max_rank: int,
    num_query: int,
    num_gallery: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    first = torch.cat(first_hits).cpu() if first_hits else torch.zeros(0, dtype=torch.int64)
    num_valid = int(first.shape[0])
    if num_valid == 0:
        raise ValueError(
            "no query has a valid match in the gallery: "
            f"none of the {num_query} queries has a gallery item with the same pid captured "
            f"by a different camera (gallery size {num_gallery})"
        )
    # cmc[k] = fraction of valid queries whose first hit is at rank <= k + 1.
    hist = torch.bincount(first.clamp(max=max_rank + 1), minlength=max_rank + 2)
    cmc = torch.cumsum(hist[1 : max_rank + 1], 0).to(torch.float64) / num_valid
    all_ap = torch.cat(aps).cpu().numpy()
    all_inp = torch.cat(inps).cpu().numpy()
    return cmc.numpy().astype(np.float32), all_ap, all_inp


# ---------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------
def evaluate_rank(
    distmat: np.ndarray | torch.Tensor,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    max_rank: int = 50,
    *,
    chunk_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CMC, per-query AP and per-query INP under the Market-1501 protocol (see module docstring).

    Args:
        distmat: (num_query, num_gallery) distances, numpy array or torch tensor (any device);
            smaller means more similar.
        q_pids, g_pids, q_camids, g_camids: 1-D integer ids (numpy arrays, lists or tensors).
        max_rank: length of the returned CMC curve.
        chunk_size: queries processed at once; ``None`` picks one so that a chunk's sort
            indices take about 256 MB.  The results do not depend on it.

    Returns:
        ``(cmc, all_AP, all_INP)``: ``cmc`` float32 of length ``max_rank``; ``all_AP`` and
        ``all_INP`` float64 with one entry per valid query (queries without a valid match
        are skipped).

    Raises:
        ValueError: on inconsistent shapes, bad arguments, or if no query has a valid match.
    """
    dist = _as_tensor(distmat, "distmat")
    if dist.ndim != 2:
        raise ValueError(
            f"distmat must be 2-D (num_query, num_gallery), got shape {tuple(dist.shape)}"
        )
    if dist.is_complex() or dist.dtype == torch.bool:
        raise ValueError(f"distmat must be real-valued, got dtype {dist.dtype}")
    num_q, num_g = dist.shape
    max_rank = _check_max_rank(max_rank)
    qp, gp, qc, gc = _prepare_ids(
        num_q, num_g, q_pids, g_pids, q_camids, g_camids, dist.device,
        f"distmat of shape {tuple(dist.shape)}",
    )
    chunk = _check_chunk_size(chunk_size, num_g)

    first_hits, aps, inps = [], [], []
    for start in range(0, num_q, chunk):
        stop = min(start + chunk, num_q)
        fh, ap, inp = _rank_chunk(dist[start:stop], qp[start:stop], qc[start:stop], gp, gc)
        first_hits.append(fh)
        aps.append(ap)
        inps.append(inp)
    return _finalize(first_hits, aps, inps, max_rank, num_q, num_g)


def _features(x: ArrayLike, name: str, device: torch.device | None = None) -> torch.Tensor:
    t = _as_tensor(x, name, device)
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D (num_items, feat_dim), got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        t = t.to(torch.float32)
    elif t.dtype in (torch.float16, torch.bfloat16) and t.device.type == "cpu":
        t = t.to(torch.float32)
    return t


def evaluate_rank_features(
    q_feats: np.ndarray | torch.Tensor,
    g_feats: np.ndarray | torch.Tensor,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    *,
    metric: Metric = "cosine",
    max_rank: int = 50,
    chunk_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Like :func:`evaluate_rank`, but starting from features; the full distance matrix is
    never materialised (distances are computed one query chunk at a time).

    Args:
        q_feats: (num_query, D) query features; g_feats: (num_gallery, D) gallery features.
        metric: ``"cosine"`` -> ``1 - q.g`` on the features as given (callers normalise them);
            ``"euclidean"`` -> squared Euclidean distance ``||q||^2 + ||g||^2 - 2 q.g``.
        Other arguments and the return value are as in :func:`evaluate_rank`.
    """
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    g = _features(g_feats, "g_feats")
    q = _features(q_feats, "q_feats", g.device)
    if q.shape[1] != g.shape[1]:
        raise ValueError(
            f"shape mismatch: q_feats has feature dim {q.shape[1]} but g_feats has {g.shape[1]}"
        )
    if q.dtype != g.dtype:
        dtype = torch.promote_types(q.dtype, g.dtype)
        q, g = q.to(dtype), g.to(dtype)
    num_q, num_g = q.shape[0], g.shape[0]
    max_rank = _check_max_rank(max_rank)
    qp, gp, qc, gc = _prepare_ids(
        num_q, num_g, q_pids, g_pids, q_camids, g_camids, g.device,
        f"features of shapes q {tuple(q.shape)} / g {tuple(g.shape)}",
    )
    first_hits, aps, inps = [], [], []
    for start, stop, dist in pairwise_distance_chunks(q, g, metric, chunk_size=chunk_size):
        fh, ap, inp = _rank_chunk(dist, qp[start:stop], qc[start:stop], gp, gc)
        del dist
        first_hits.append(fh)
        aps.append(ap)
        inps.append(inp)
    return _finalize(first_hits, aps, inps, max_rank, num_q, num_g)


def evaluate_rank_chunks(
    chunks: Iterable[tuple[int, int, np.ndarray | torch.Tensor]],
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    max_rank: int = 50,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Like :func:`evaluate_rank` for a distance matrix delivered as consecutive blocks of
    query rows, so that it never has to exist as a whole (e.g. re-ranked distances from
    :func:`cdnet_reid.evaluation.rerank.rerank_distance_chunks`).

    Args:
        chunks: ``(start, stop, dist)`` in order, ``dist`` being the (stop - start, num_gallery)
            distances of queries ``start..stop-1``; together they must cover every query once.
        Other arguments and the return value are as in :func:`evaluate_rank` (results do not
        depend on how the rows are split).
    """
    max_rank = _check_max_rank(max_rank)
    qp = _as_ids(q_pids, "q_pids", torch.device("cpu"))
    num_q = qp.shape[0]
    gp = _as_ids(g_pids, "g_pids", torch.device("cpu"))
    num_g = gp.shape[0]
    qp, gp, qc, gc = _prepare_ids(num_q, num_g, qp, gp, q_camids, g_camids, torch.device("cpu"),
                                  f"q_pids/g_pids of lengths {num_q}/{num_g}")
    first_hits, aps, inps = [], [], []
    expected = 0
    for start, stop, dist in chunks:
        dist = _as_tensor(dist, "dist chunk")
        if start != expected or stop <= start or tuple(dist.shape) != (stop - start, num_g):
            raise ValueError(f"chunk ({start}, {stop}) of shape {tuple(dist.shape)} does not "
                             f"continue at query {expected} with {num_g} gallery columns")
        if dist.device != qp.device:
            qp, gp, qc, gc = (t.to(dist.device) for t in (qp, gp, qc, gc))
        fh, ap, inp = _rank_chunk(dist, qp[start:stop], qc[start:stop], gp, gc)
        first_hits.append(fh)
        aps.append(ap)
        inps.append(inp)
        expected = stop
    if expected != num_q:
        raise ValueError(f"the chunks cover {expected} of the {num_q} queries")
    return _finalize(first_hits, aps, inps, max_rank, num_q, num_g)

