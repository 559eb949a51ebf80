"""Loss functions (plain functions of tensors; weights and options come from the caller)."""

import torch
import torch.nn.functional as F
from torch import Tensor


def cross_entropy_loss(logits: Tensor, targets: Tensor, epsilon: float = 0.0) -> Tensor:
    """Mean cross-entropy; with ``epsilon > 0`` the target is ``(1-eps)*onehot + eps/C``."""
    return F.cross_entropy(logits.float(), targets, label_smoothing=epsilon)


def pairwise_euclidean(x: Tensor) -> Tensor:
    """``sqrt(max(|xi|^2 + |xj|^2 - 2 xi.xj, 1e-12))`` for every pair of rows of ``x``."""
    sq = x.pow(2).sum(1, keepdim=True)
    d2 = sq + sq.t() - 2.0 * (x @ x.t())
    return d2.clamp(min=1e-12).sqrt()


def triplet_loss(features: Tensor, targets: Tensor, margin: float = 0.3,
                 norm_feat: bool = False) -> Tensor:
    """Batch-hard triplet loss (Hermans et al.).

    For each anchor, the hardest positive (largest distance to a same-id sample) and the hardest
    negative (smallest distance to another id) over the batch give
    ``max(0, d_ap - d_an + margin)``, averaged over anchors. ``margin == 0`` uses the soft margin
    ``log(1 + exp(d_ap - d_an))``. Anchors without a negative in the batch are ignored.
    """
    x = features.float()
    if norm_feat:
        x = F.normalize(x, dim=1)
    dist = pairwise_euclidean(x)
    same = targets.view(-1, 1) == targets.view(1, -1)
    d_ap = dist.masked_fill(~same, float("-inf")).max(dim=1).values
    d_an = dist.masked_fill(same, float("inf")).min(dim=1).values
    valid = torch.isfinite(d_an)
    if not valid.any():
        return dist.sum() * 0.0
    diff = (d_ap - d_an)[valid]
    if margin > 0:
        return F.relu(diff + margin).mean()
    return F.softplus(diff).mean()
