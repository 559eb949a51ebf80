"""Mixed operations of the search space: the paper's top-k sampling with straight-through weights
(Sec. 3.3 of arXiv 2104.04163) and the DARTS softmax mixture.

Two modes, given one row of architecture logits α per layer:

* ``"topk"`` (the paper's): p = softmax(α); the k largest p are selected (ties broken by a fixed,
  seeded order); w = h - stopgrad(p) + p with h the 0/1 selection mask, so in value w = h while
  ∂w/∂p = I (straight-through). Only the selected candidates run::

      y = Σ_{i∈S} w_i · O_i(x) + Σ_{i∉S} w_i

  The second sum is zero in value; it routes ΣG (G = ∂L/∂y) to every unselected logit, exactly
  as the authors' code does, so ∂L/∂w_i = <G, O_i(x)> for selected and ΣG for unselected ops,
  and ∂L/∂α_j = p_j (g_j - Σ_i p_i g_i).
* ``"softmax"`` (DARTS): every candidate runs, y = Σ_i p_i O_i(x).
"""

from collections.abc import Sequence

import torch
from torch import Tensor, nn

MODES = ("topk", "softmax")


def topk_weights(alphas: Tensor, k: int, tie_order: Tensor) -> tuple[Tensor, Tensor]:
    """Straight-through top-k weights of every row of ``alphas`` (L×N).

    ``tie_order`` (L×N, a permutation of 0..N-1 per row) decides among equal probabilities: the
    candidate that comes first in it wins. Returns ``(w, selected)``: ``w`` (L×N) equals the 0/1
    selection mask in value and carries the softmax gradient; ``selected`` (L×k) are the chosen
    indices, best first.
    """
    p = torch.softmax(alphas, dim=-1)
    p_in_order = p.detach().gather(1, tie_order)
    rank = torch.sort(p_in_order, dim=1, descending=True, stable=True).indices[:, :k]
    selected = tie_order.gather(1, rank)
    mask = torch.zeros_like(p).scatter_(1, selected, 1.0)
    return mask - p.detach() + p, selected


class MixedOp(nn.Module):
    """All candidate operations of one searchable layer; the weights come from the supernet."""

    def __init__(self, candidates: Sequence[nn.Module]):
        super().__init__()
        self.candidates = nn.ModuleList(candidates)

    def forward(self, x: Tensor, weights: Tensor, selected: Sequence[int] = None) -> Tensor:
        """``weights``: this layer's row (N). ``selected``: indices to run (top-k mode) or None
        (softmax mode: run all, weighted)."""
        if selected is None:
            return sum(w * op(x) for w, op in zip(weights, self.candidates))
        chosen = set(selected)
        out = sum(weights[i] * self.candidates[i](x) for i in selected)
        unselected = [i for i in range(len(self.candidates)) if i not in chosen]
        if unselected:  # zero in value; passes ΣG to the unselected logits
            out = out + weights[unselected].sum()
        return out
