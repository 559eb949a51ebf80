"""Average query expansion (alpha-weighted, as fast-reid's ``aqe``; Radenovic et al. 2018).

Every item (queries *and* gallery, so both sides are expanded alike) is replaced by the
weighted mean of its ``qe_k`` most similar items among all ``Nq + Ng`` (itself included,
normally first):

    f_i <- mean_{j in top-k(i)} max(s_ij, 0) ** alpha * f_j,     s_ij = n_i . n_j

with ``n`` the L2-normalised current features (``f`` itself is not normalised before the mean,
as in fast-reid; callers normalise the result). This is repeated ``qe_times`` times. Ties in the
similarity ranking are broken by item index. Unlike fast-reid, negative similarities are clamped
to 0 before the power (a negative base with a non-integer ``alpha`` would give NaN).

Memory is bounded: the neighbours come from the blocked search of the re-ranking module (only
the blocks on and above the diagonal of the symmetric similarity matrix, ``chunk_bytes`` per
block, top-k lists kept), so MSMT17-sized problems need ~``chunk_bytes`` extra besides the
features.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .rerank import DEFAULT_CHUNK_BYTES, _neighbours

__all__ = ["average_query_expansion"]


def average_query_expansion(q_feats, g_feats, *, qe_times: int = 1, qe_k: int = 5,
                            alpha: float = 3.0, chunk_bytes: int = DEFAULT_CHUNK_BYTES
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Expanded ``(q_feats, g_feats)`` (float32 CPU tensors, not normalised), see the module
    docstring. ``qe_times=0`` returns the inputs unchanged (as float32 tensors)."""
    q = torch.as_tensor(np.asarray(q_feats) if not isinstance(q_feats, torch.Tensor) else q_feats)
    g = torch.as_tensor(np.asarray(g_feats) if not isinstance(g_feats, torch.Tensor) else g_feats)
    q, g = q.detach().to("cpu", torch.float32), g.detach().to("cpu", torch.float32)
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise ValueError(f"q_feats and g_feats must be 2-D with the same feature dim, got "
                         f"{tuple(q.shape)} and {tuple(g.shape)}")
    if int(qe_times) != qe_times or qe_times < 0 or int(qe_k) != qe_k or qe_k < 1:
        raise ValueError(f"AQE needs integers qe_times >= 0 and qe_k >= 1, got qe_times="
                         f"{qe_times}, qe_k={qe_k}")
    nq = q.shape[0]
    feats = torch.cat([q, g])
    n = feats.shape[0]
    if n == 0:
        return q, g
    k = min(int(qe_k), n)
    dim = feats.shape[1]
    rows = max(1, int(chunk_bytes) // (8 * k * max(1, dim)))
    for _ in range(int(qe_times)):
        normed = F.normalize(feats, dim=1)
        # most similar first = smallest 1 - cos (ties by index)
        nbr = torch.from_numpy(_neighbours(normed, k, "cosine", None, int(chunk_bytes))[0])
        out = torch.empty_like(feats)
        for a in range(0, n, rows):
            b = min(n, a + rows)
            idx = nbr[a:b]
            sim = torch.bmm(normed[idx], normed[a:b].unsqueeze(2)).squeeze(2)  # (r, k)
            w = sim.clamp_(min=0.0).pow_(float(alpha))
            out[a:b] = (feats[idx] * w.unsqueeze(2)).mean(1)
        feats = out
    return feats[:nq].clone(), feats[nq:].clone()
