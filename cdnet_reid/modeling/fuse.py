"""Inference fast path: fold every BatchNorm into the preceding convolution / linear layer.

Folding is exact up to float rounding (eval-mode BN is an affine map): a model converted with
:func:`fuse_for_inference` gives the same embeddings with fewer operations. It works on any model
whose BN layers directly follow their conv/linear inside an ``nn.Sequential`` (true for every
block of CNet/CDNet, the necks and torchvision's MobileNetV2).
"""

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval


def fold_batchnorm(module: nn.Module) -> int:
    """Fold, in place, every ``Conv2d -> BatchNorm2d`` and ``Linear -> BatchNorm1d`` pair that are
    consecutive children of an ``nn.Sequential`` (the BN becomes ``Identity``). Eval mode only.
    Returns the number of folded BN layers."""
    if module.training:
        raise RuntimeError("BatchNorm can only be folded in eval mode (call model.eval() first)")
    folded = 0
    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for a, b in zip(names, names[1:]):
            first, second = seq._modules[a], seq._modules[b]
            if isinstance(first, nn.Conv2d) and isinstance(second, nn.BatchNorm2d):
                seq._modules[a] = fuse_conv_bn_eval(first, second)
            elif isinstance(first, nn.Linear) and isinstance(second, nn.BatchNorm1d):
                seq._modules[a] = fuse_linear_bn_eval(first, second)
            else:
                continue
            seq._modules[b] = nn.Identity()
            folded += 1
    return folded


def fuse_for_inference(model: nn.Module, channels_last: bool = True) -> nn.Module:
    """An eval-only copy of ``model`` with BatchNorm folded and (optionally) channels-last weights.

    The copy's parameters have ``requires_grad=False``. With ``channels_last`` the weights are
    stored NHWC and a forward pre-hook converts 4-D image inputs to NHWC, which oneDNN/cuDNN
    run faster for the depthwise-heavy CDNet blocks; call it exactly like the original.
    """
    fast = copy.deepcopy(model).eval()
    fold_batchnorm(fast)
    for p in fast.parameters():
        p.requires_grad_(False)
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
        fast.register_forward_pre_hook(_to_channels_last)
    return fast


def _to_channels_last(module, args):
    if args and isinstance(args[0], torch.Tensor) and args[0].dim() == 4:
        return (args[0].contiguous(memory_format=torch.channels_last),) + tuple(args[1:])
    return None
