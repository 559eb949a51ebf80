"""Search supernets over the CNet and CDNet spaces (CDNet, arXiv 2104.04163, Sec. 3.3).

The skeleton is the final network's (stem, stages of searchable layers, DownSamples), but every
searchable layer is a :class:`MixedOp` holding all candidates with their own weights. The
architecture logits ``alphas`` (layers × candidates) are an ``nn.Parameter`` of the backbone, so
they are saved in checkpoints and move with ``.to()``; the trainer keeps them out of the weight
optimizer (:meth:`arch_parameters` / :meth:`weight_parameters`). They live with the search, which
registers them in ``BACKBONE_REGISTRY`` and defines the ``SEARCH`` keys they read.
"""

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from ..modeling.backbones.cdnet import StagedNet
from ..modeling.registry import BACKBONE_REGISTRY
from ..modeling.space.genotype import CANDIDATES, Genotype
from ..modeling.space.mixed_op import MODES, MixedOp, topk_weights
from ..modeling.space.ops import build_block, init_weights


class Supernet(StagedNet):
    """The search network of one space; ``forward`` returns the stage maps like CDNet/CNet."""

    space = ""

    def __init__(self, *, stages: Sequence[int] = (2, 2, 2), planes: Sequence[int] = (64, 256, 384, 512),
                 width_mult: float = 1.0, adaptive_fusion: bool = True, stem: str = "imagenet",
                 mode: str = "topk", topk: int = 2, alpha_init: float = 1e-3, seed: int = 0):
        if mode not in MODES:
            raise ValueError(f"SEARCH.MODE must be one of {MODES}, got {mode!r}")
        table = CANDIDATES[self.space]
        if not 1 <= topk <= len(table):
            raise ValueError(f"SEARCH.TOPK must be in [1, {len(table)}], got {topk}")
        super().__init__(stages=stages, planes=planes, width_mult=width_mult, stem=stem,
                         make_layer=lambda l, c_in, c_out: MixedOp(
                             [build_block(e, c_in, c_out, adaptive_fusion=adaptive_fusion) for e in table]))
        self.mode, self.topk = mode, topk
        num_layers = sum(stages)
        # The authors initialise every logit to 1e-3 (all tied); ties are then broken by a fixed
        # random order per layer drawn from the seed, so the first selections are reproducible
        # and differ between layers (the original's were whatever topk returned on its device).
        self.alphas = nn.Parameter(torch.full((num_layers, len(table)), float(alpha_init)))
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("tie_order", torch.stack([torch.randperm(len(table), generator=g)
                                                       for _ in range(num_layers)]))
        init_weights(self)
        with torch.no_grad():
            self.alphas.fill_(float(alpha_init))
        self._forced: list[int] | None = None

    @classmethod
    def from_config(cls, cfg, **context) -> dict:
        b, s = cfg.MODEL.BACKBONE, cfg.SEARCH
        return dict(stages=list(b.STAGES), planes=list(b.PLANES), width_mult=b.WIDTH_MULT,
                    adaptive_fusion=b.ADAPTIVE_FUSION, stem=b.STEM, mode=s.MODE, topk=s.TOPK,
                    alpha_init=s.ALPHA_INIT, seed=max(cfg.SEED, 0))

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alphas]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p is not self.alphas]

    def selection(self):
        """``(weights, selected)`` for the current α: per-layer weights, and the indices to run
        (``None`` in softmax mode). Inside :meth:`forced`: the forced sub-network's."""
        if self._forced is not None:
            weights = torch.zeros_like(self.alphas).scatter_(1, torch.tensor(self._forced).view(-1, 1), 1.0)
            return weights, [[op] for op in self._forced]
        if self.mode == "softmax":
            return torch.softmax(self.alphas, dim=-1), None
        w, selected = topk_weights(self.alphas, self.topk, self.tie_order)
        return w, selected.tolist()

    @contextmanager
    def forced(self, ops: Sequence[int]) -> Iterator[None]:
        """Within the block, layer ``l`` runs only candidate ``ops[l]`` with weight 1 (no α in the
        graph): the supernet evaluates the sub-network of one genotype (its ``ops``)."""
        if len(ops) != self.alphas.shape[0] or not all(0 <= int(o) < self.alphas.shape[1] for o in ops):
            raise ValueError(f"forced ops {list(ops)}: need {self.alphas.shape[0]} indices in "
                             f"[0, {self.alphas.shape[1]})")
        previous, self._forced = self._forced, [int(o) for o in ops]
        try:
            yield
        finally:
            self._forced = previous

    def forward(self, x: Tensor) -> "OrderedDict[str, Tensor]":
        weights, selected = self.selection()
        return self.run_cells(x, lambda cell, layer, x: cell(
            x, weights[layer], None if selected is None else selected[layer]))

    @torch.no_grad()
    def probabilities(self) -> Tensor:
        return torch.softmax(self.alphas.detach().float().cpu(), dim=-1)

    @property
    def genotype(self) -> Genotype:
        """The derived architecture: the argmax candidate of every layer (the authors' rule),
        with the logits attached (``SearchedNet.genotype`` is the one it was built from)."""
        return Genotype.from_alphas(self.space, self.alphas.detach().float().cpu().tolist())

    def checkpoint_extra(self) -> dict:
        """The genotype derived at the time of the checkpoint (α itself is a parameter)."""
        return {"genotype": self.genotype.to_dict()}


@BACKBONE_REGISTRY.register()
class CDNetSupernet(Supernet):
    """Supernet of the CDNet space: every layer holds the 12 combined-depth candidates
    ``[k1, k2, r]`` (19,526,735 weights with the search head and 751 classes)."""
    space = "cdnet"


@BACKBONE_REGISTRY.register()
class CNetSupernet(Supernet):
    """Supernet of the CNet space: every layer holds the 6 combined-block candidates ``[k1, k2]``
    (7,811,471 weights with the search head and 751 classes)."""
    space = "cnet"
