"""BatchNorm over the global batch of a multi-process run, on every device.

``torch.nn.SyncBatchNorm`` runs on accelerators only; :class:`GlobalBatchNorm` computes the same
statistics with autograd-aware all-reduces, so CPU (gloo) runs train what one process trains too.
:func:`convert_sync_batchnorm` picks torch's on CUDA and ours elsewhere.
"""

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["GlobalBatchNorm", "convert_sync_batchnorm"]


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes; the gradient of every input is the sum of the output gradients."""

    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm(_BatchNorm):
    """BatchNorm of any dimensionality (N×C, N×C×L, N×C×H×W) whose training statistics are those
    of the batch of all processes together: the mean and the (biased) variance by two exact
    all-reduced passes, gradients flowing back to every process. Outside training, or with one
    process, it is plain BatchNorm."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (N x C ...), got {input.dim()}-D")

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()
                and dist.get_world_size() > 1):
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.float()
        count = _AllReduceSum.apply(torch.tensor([float(xf.numel() // xf.shape[1])], device=x.device))
        mean = _AllReduceSum.apply(xf.sum(dims)) / count
        centred = xf - mean.view(shape)
        var = _AllReduceSum.apply((centred * centred).sum(dims)) / count
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = (1.0 / float(self.num_batches_tracked)) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                unbiased = var.detach() * (count / (count - 1).clamp_min(1))
                self.running_var.mul_(1 - m).add_(unbiased, alpha=m)
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert_sync_batchnorm(model: nn.Module) -> nn.Module:
    """Every BatchNorm of ``model`` replaced by a synchronised one with the same parameters,
    buffers and settings: ``torch.nn.SyncBatchNorm`` on CUDA, :class:`GlobalBatchNorm` elsewhere.
    Both keep the parameter objects, so an optimizer built before the conversion trains them."""
    device = next(model.parameters()).device
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return _convert(model)


def _convert(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, _BatchNorm) and not isinstance(module, GlobalBatchNorm):
        out = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        if module.affine:  # the same objects: an optimizer may hold them already
            out.weight, out.bias = module.weight, module.bias
        if module.track_running_stats:
            out.running_mean, out.running_var = module.running_mean, module.running_var
            out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, _convert(child))
    return out
