"""Inference fast path: BatchNorm folding, fused convolution epilogues, channels-last and
(optionally) ``torch.compile``.

Every step is exact up to float rounding (eval-mode BN is an affine map; a fused ReLU or residual
add computes the same sums): a model converted with :func:`fuse_for_inference` gives the same
embeddings with fewer passes over memory.

* :func:`fold_batchnorm` works on any model whose BN layers directly follow their conv/linear
  inside an ``nn.Sequential`` (every block of CNet/CDNet, the necks, torchvision's MobileNetV2);
* :func:`fuse_epilogues` (CPU, oneDNN) runs ``conv -> ReLU`` pairs of an ``nn.Sequential`` and
  the tail of CNet/CDNet's combined block (``ReLU(restore(fused) + shortcut)``) as one oneDNN
  primitive each, the ReLU / add applied while the output is still in cache;
* ``compile=True`` hands the result to ``torch.compile`` (inductor, with weight freezing), which
  also fuses the channel gates and prepacks the weights. It needs a C++ compiler and takes from
  ~15 s (cache warm) to a minute or more (cold) per input shape.
"""

import copy
import logging
import shutil

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from .space.ops import CBlock

logger = logging.getLogger(__name__)

__all__ = ["ConvReLU", "FusedCBlock", "fold_batchnorm", "fuse_epilogues", "fuse_for_inference", "to_bf16"]


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


# ------------------------------------------------------------------------------------ epilogues
def _conv_args(conv: nn.Conv2d):
    return (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)


def _fusable(conv: nn.Module) -> bool:
    return (type(conv) is nn.Conv2d and conv.padding_mode == "zeros"
            and not isinstance(conv.padding, str) and conv.weight.device.type == "cpu"
            and conv.weight.dtype == torch.float32)


def _on_onednn(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether the oneDNN fused kernels can run: float32 CPU input and weight. A fused model moved
    to another device (``.cuda()``) or dtype runs the same computation with ``F.conv2d``."""
    return x.device.type == "cpu" and weight.device.type == "cpu" and x.dtype == weight.dtype == torch.float32


class ConvReLU(nn.Module):
    """``relu(conv(x))`` as one oneDNN convolution with a ReLU post-op (CPU, float32; elsewhere
    ``relu(F.conv2d(x))``)."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        if not _fusable(conv):
            raise ValueError("ConvReLU needs a float32 CPU nn.Conv2d with numeric zero padding")
        self.weight, self.bias = conv.weight, conv.bias
        self.padding, self.stride, self.dilation, self.groups = _conv_args(conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _on_onednn(x, self.weight):
            return torch.relu(F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                                       self.groups))
        return torch.ops.mkldnn._convolution_pointwise(
            x, self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups,
            "relu", [], "")


class FusedCBlock(nn.Module):
    """A BN-folded :class:`~cdnet_reid.modeling.space.ops.CBlock` whose tail
    ``relu(restore(fused) + shortcut)`` runs as one oneDNN convolution with binary-add + ReLU post-ops,
    and whose gated branch sum ``b1 * g1 + b2 * g2`` is one ``addcmul``."""

    def __init__(self, block: CBlock):
        super().__init__()
        restore = block.restore[0]
        if not all(isinstance(m, nn.Identity) for m in list(block.restore)[1:]) or not _fusable(restore):
            raise ValueError("FusedCBlock needs a CBlock with BatchNorm folded (fold_batchnorm)")
        self.squeeze, self.conv1, self.conv2 = block.squeeze, block.conv1, block.conv2
        self.gate, self.expand = block.gate, block.expand
        self.weight, self.bias = restore.weight, restore.bias
        self.padding, self.stride, self.dilation, self.groups = _conv_args(restore)

    def _gate(self, x: torch.Tensor) -> torch.Tensor:
        g = self.gate
        return torch.sigmoid(g.fc2(torch.relu(g.fc1(x.mean((2, 3), keepdim=True)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.squeeze(x)
        b1, b2 = self.conv1(s), self.conv2(s)
        if self.gate is not None:
            fused = torch.addcmul(b1 * self._gate(b1), b2, self._gate(b2))
        else:
            fused = b1 + b2
        shortcut = self.expand(x) if self.expand is not None else x
        if not _on_onednn(fused, self.weight):
            return torch.relu(F.conv2d(fused, self.weight, self.bias, self.stride, self.padding, self.dilation,
                                       self.groups) + shortcut)
        shortcut = shortcut.contiguous(memory_format=_memory_format(fused))
        return torch.ops.mkldnn._convolution_pointwise.binary(
            fused, shortcut, self.weight, self.bias, self.padding, self.stride, self.dilation,
            self.groups, "add", None, "relu", [], "")


def _memory_format(x: torch.Tensor):
    return torch.channels_last if x.dim() == 4 and x.is_contiguous(
        memory_format=torch.channels_last) and not x.is_contiguous() else torch.contiguous_format


def _epilogues_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


def fuse_epilogues(module: nn.Module) -> int:
    """Replace, in place, every BN-folded ``CBlock`` by a :class:`FusedCBlock` and every
    ``Conv2d -> [Identity ->] ReLU`` run of an ``nn.Sequential`` by a :class:`ConvReLU` (the
    ReLU becomes ``Identity``). CPU float32 modules only (oneDNN); call :func:`fold_batchnorm`
    first. Returns the number of fused epilogues (0 when oneDNN is unavailable)."""
    if not _epilogues_available():
        return 0
    fused = 0
    for parent in list(module.modules()):
        for name, child in list(parent._modules.items()):
            if isinstance(child, CBlock):
                try:
                    parent._modules[name] = FusedCBlock(child)
                    fused += 1
                except ValueError:
                    pass
    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for i, a in enumerate(names):
            conv = seq._modules[a]
            if not _fusable(conv):
                continue
            j = i + 1
            while j < len(names) and isinstance(seq._modules[names[j]], nn.Identity):
                j += 1
            if j < len(names) and type(seq._modules[names[j]]) is nn.ReLU:
                seq._modules[a] = ConvReLU(conv)
                seq._modules[names[j]] = nn.Identity()
                fused += 1
    return fused


# ------------------------------------------------------------------------------------ fast path
def fuse_for_inference(model: nn.Module, channels_last: bool = True, *, epilogues: bool = True,
                       compile: bool = False, compile_options: dict | None = None) -> nn.Module:
    """An eval-only copy of ``model`` for fast inference; call it exactly like the original.

    * BatchNorm folded into the preceding convolution / linear layer; parameters
      ``requires_grad=False``;
    * ``epilogues`` (CPU float32 models): ReLUs and CBlock residual adds fused into the
      convolutions (:func:`fuse_epilogues`);
    * ``channels_last``: weights stored NHWC and a forward pre-hook converting 4-D image inputs
      to NHWC, which oneDNN/cuDNN run faster for the depthwise-heavy CDNet blocks;
    * ``compile``: ``torch.compile`` with inductor and weight freezing (``compile_options``
      override the inductor options). The first call per input shape compiles (see the module
      docstring); run it under ``torch.no_grad()`` / ``torch.inference_mode()``.
    """
    fast = copy.deepcopy(model).eval()
    fold_batchnorm(fast)
    for p in fast.parameters():
        p.requires_grad_(False)
    if epilogues and not compile and next(fast.parameters()).device.type == "cpu":
        # inductor fuses the same epilogues itself (and cannot trace the oneDNN calls' layout)
        fuse_epilogues(fast)
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
        fast.register_forward_pre_hook(_to_channels_last)
    if compile:
        if shutil.which("cc") is None and shutil.which("gcc") is None and shutil.which("g++") is None:
            raise RuntimeError("fuse_for_inference(compile=True) needs a C/C++ compiler (gcc) "
                               "for inductor's CPU kernels; none was found on PATH")
        options = {"freezing": True}
        options.update(compile_options or {})
        fast = torch.compile(fast, options=options)
    return fast


def _to_channels_last(module, args):
    if args and isinstance(args[0], torch.Tensor) and args[0].dim() == 4:
        return (args[0].contiguous(memory_format=torch.channels_last),) + tuple(args[1:])
    return None


def count_fused(model: nn.Module) -> list[str]:
    """Names of the fused modules of ``model`` (for logs and tests)."""
    return [n for n, m in model.named_modules() if isinstance(m, (ConvReLU, FusedCBlock))]


def to_bf16(model: nn.Module) -> nn.Module:
    """An eval-only copy of a meta-architecture (``backbone`` + ``head``) for bf16 inference: BN
    folded, channels-last (:func:`fuse_for_inference` without the fp32-only epilogues), backbone and
    head in bf16, their input cast to bf16; the pixel normalisation stays float32."""
    if not (hasattr(model, "backbone") and hasattr(model, "head")):
        raise TypeError(f"bf16 inference needs a model with .backbone and .head, got {type(model).__name__}")
    fast = fuse_for_inference(model, epilogues=False)
    fast.backbone.to(torch.bfloat16)
    fast.head.to(torch.bfloat16)
    fast.backbone.register_forward_pre_hook(lambda m, args: (args[0].to(torch.bfloat16),) + tuple(args[1:]))
    return fast
