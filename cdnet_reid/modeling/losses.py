"""Loss functions (plain functions of tensors; weights and options come from the caller).

The losses compute in float32 whatever the caller's mixed precision; the triplet loss with autocast
disabled: under fp16 / bf16 autocast its pairwise distances (differences of large dot products)
would lose their digits against the margin, and a dot product above fp16's 65,504 would overflow,
so mixed precision would change the objective rather than only its speed.
"""


import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor


def full_precision(x: Tensor):
    """A context with autocast disabled on ``x``'s device: the operations inside run in the dtype
    of their inputs (float32 once cast)."""
    return torch.autocast(device_type=x.device.type, enabled=False)


def cross_entropy_loss(logits: Tensor, targets: Tensor, epsilon: float = 0.0) -> Tensor:
    """Mean cross-entropy in float32 (autocast runs ``cross_entropy`` in float32 itself); with
    ``epsilon > 0`` the target is ``(1-eps)*onehot + eps/C``."""
    return F.cross_entropy(logits.float(), targets, label_smoothing=epsilon)


def pairwise_euclidean(x: Tensor) -> Tensor:
    """``sqrt(max(|xi|^2 + |xj|^2 - 2 xi.xj, 1e-12))`` for every pair of rows of ``x``."""
    sq = x.pow(2).sum(1, keepdim=True)
    d2 = sq + sq.t() - 2.0 * (x @ x.t())
    return d2.clamp(min=1e-12).sqrt()


def _hardest_triplets(x: Tensor, targets: Tensor, margin: float) -> tuple[Tensor, Tensor]:
    """Per-anchor batch-hard losses of rows ``x`` and whether the anchor has a negative."""
    dist_mat = pairwise_euclidean(x)
    same = targets.view(-1, 1) == targets.view(1, -1)
    d_ap = dist_mat.masked_fill(~same, float("-inf")).max(dim=1).values
    d_an = dist_mat.masked_fill(same, float("inf")).min(dim=1).values
    valid = torch.isfinite(d_an)
    diff = torch.where(valid, d_ap - d_an, torch.zeros_like(d_ap))
    losses = F.relu(diff + margin) if margin > 0 else F.softplus(diff)
    return losses, valid


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    return (values * mask).sum() / mask.sum().clamp_min(1)


def triplet_loss(features: Tensor, targets: Tensor, margin: float = 0.3,
                 norm_feat: bool = False, gather: bool = False) -> Tensor:
    """Batch-hard triplet loss (Hermans et al.).

    For each anchor, the hardest positive (largest distance to a same-id sample) and the hardest
    negative (smallest distance to another id) over the batch give
    ``max(0, d_ap - d_an + margin)``, averaged over anchors. ``margin == 0`` uses the soft margin
    ``log(1 + exp(d_ap - d_an))``. Anchors without a negative in the batch are ignored.

    ``gather`` (in a multi-process run): mine over the batch of all processes together, so that N
    processes optimise what one process does with their union. The value is the mean over this
    process's anchors (its average over processes is the global mean); the gradient, which
    reaches this process's features only, is scaled so that DDP's gradient averaging gives the
    gradient of the global mean.
    """
    with full_precision(features):
        return _triplet_loss_fp32(features.float(), targets, margin, norm_feat, gather)


def _triplet_loss_fp32(x: Tensor, targets: Tensor, margin: float, norm_feat: bool, gather: bool) -> Tensor:
    if norm_feat:
        x = F.normalize(x, dim=1)
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    if not gather or world == 1:
        losses, valid = _hardest_triplets(x, targets, margin)
        return _masked_mean(losses, valid)
    rank, n = dist.get_rank(), x.shape[0]
    feats = [torch.empty_like(x) for _ in range(world)]
    labels = [torch.empty_like(targets) for _ in range(world)]
    dist.all_gather(feats, x.detach().contiguous())
    dist.all_gather(labels, targets.contiguous())
    feats[rank] = x  # the only part with a gradient
    losses, valid = _hardest_triplets(torch.cat(feats), torch.cat(labels), margin)
    global_mean = _masked_mean(losses, valid)
    local = slice(rank * n, (rank + 1) * n)
    local_mean = _masked_mean(losses[local], valid[local]).detach()
    return local_mean + world * (global_mean - global_mean.detach())
