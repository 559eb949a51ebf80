"""Parameter and MAC counting (fvcore). One MAC is one multiply-add; fvcore calls it a "flop"."""


import torch
from torch import nn


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def inference_parameters(model: nn.Module, inputs) -> int:
    """Parameters of the modules that actually run in ``model.eval()(inputs)`` (e.g. a re-ID
    embedding skips the classifiers and FC blocks; the paper reports this number for re-ID).
    ``inputs``: a tensor, or a tuple of positional tensors."""
    used = set()
    hooks = [m.register_forward_hook(lambda mod, i, o: used.add(mod)) for m in model.modules()
             if not list(m.children())]
    was_training = model.training
    try:
        model.eval()(*inputs) if isinstance(inputs, tuple) else model.eval()(inputs)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    params = {id(p): p.numel() for m in used for p in m.parameters(recurse=False)}
    return sum(params.values())


@torch.no_grad()
def mac_analysis(model: nn.Module, inputs: torch.Tensor):
    """fvcore ``FlopCountAnalysis`` of ``model.eval()`` on ``inputs`` (warnings silenced)."""
    from fvcore.nn import FlopCountAnalysis

    model.eval()
    analysis = FlopCountAnalysis(model, inputs)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    return analysis


def conv_linear_macs(analysis) -> float:
    """Multiply-adds of convolutions and linear layers only (the paper's "FLOPs")."""
    by_op: dict[str, float] = analysis.by_operator()
    return float(by_op.get("conv", 0) + by_op.get("linear", 0) + by_op.get("addmm", 0)
                 + by_op.get("matmul", 0))
