"""CNet and CDNet backbones built from a genotype (CDNet, arXiv 2104.04163, Sec. 3 and Fig. 2)."""

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from ..registry import BACKBONE_REGISTRY
from ..space.genotype import Genotype, load_genotype
from ..space.ops import DownSample, Stem, build_block, init_weights
from .base import Backbone, ShapeSpec

logger = logging.getLogger(__name__)


def make_divisible(value: float, divisor: int = 4) -> int:
    """``floor(value / divisor) * divisor``: the original code floors (never rounds up)."""
    return int(value // divisor) * divisor


class StagedNet(Backbone):
    """The macro skeleton shared by the final networks and the supernets (the original code's).

    Stem, then ``len(stages)`` stages of searchable layers, a DownSample after every stage but
    the last. Stage ``i`` has ``stages[i]`` layers; its first layer maps ``planes[i] ->
    planes[i+1]``. ``make_layer(index, c_in, c_out)`` builds searchable layer ``index``.

    ``forward`` returns one map per stage, named ``stage1..stageN``, taken after the stage's
    DownSample (the last stage: its final layer). With the paper's settings at 256×128 these are
    256×32×16, 384×16×8 and 512×16×8.
    """

    def __init__(self, *, stages: Sequence[int], planes: Sequence[int], width_mult: float, stem: str,
                 make_layer: Callable[[int, int, int], nn.Module]):
        super().__init__()
        if not stages or min(stages) < 1:
            raise ValueError(f"MODEL.BACKBONE.STAGES must be positive block counts, got {list(stages)}")
        if len(planes) != len(stages) + 1:
            raise ValueError(f"MODEL.BACKBONE.PLANES needs len(STAGES) + 1 = {len(stages) + 1} "
                             f"entries (stem + one per stage), got {list(planes)}")
        self.planes = [make_divisible(p * width_mult) for p in planes]
        self.stem = Stem(self.planes[0], stem)
        cells: list[nn.Module] = []
        self._layer_of: dict[int, int] = {}  # cell index -> searchable-layer index
        self._taps: dict[int, str] = {}  # cell index -> output name
        self._shapes: OrderedDict[str, ShapeSpec] = OrderedDict()
        stride = self.stem.stride
        for i, depth in enumerate(stages):
            c_in, c_out = self.planes[i], self.planes[i + 1]
            for j in range(depth):
                self._layer_of[len(cells)] = len(self._layer_of)
                cells.append(make_layer(len(self._layer_of) - 1, c_in if j == 0 else c_out, c_out))
            if i < len(stages) - 1:
                cells.append(DownSample(c_out))
                stride *= 2
            self._taps[len(cells) - 1] = f"stage{i + 1}"
            self._shapes[f"stage{i + 1}"] = ShapeSpec(c_out, stride)
        self.cells = nn.ModuleList(cells)

    def run_cells(self, x: Tensor, run_layer: Callable[[nn.Module, int, Tensor], Tensor]):
        """Stem and cells; searchable layer ``l`` runs as ``run_layer(cell, l, x)``."""
        x = self.stem(x)
        out = OrderedDict()
        for i, cell in enumerate(self.cells):
            x = run_layer(cell, self._layer_of[i], x) if i in self._layer_of else cell(x)
            if i in self._taps:
                out[self._taps[i]] = x
        return out

    def output_shape(self) -> "OrderedDict[str, ShapeSpec]":
        return OrderedDict(self._shapes)


class SearchedNet(StagedNet):
    """A final network: searchable layer ``l`` is the block of genotype entry ``l``."""

    space = ""  # "cdnet" or "cnet": which candidate table the genotype must come from

    def __init__(self, *, genotype: Genotype, stages: Sequence[int] = (2, 2, 2),
                 planes: Sequence[int] = (64, 256, 384, 512), width_mult: float = 1.0,
                 adaptive_fusion: bool = True, stem: str = "imagenet"):
        if genotype.space != self.space:
            raise ValueError(f"{type(self).__name__} needs a {self.space} genotype, got a "
                             f"{genotype.space} one (entries {[list(e) for e in genotype.layers[:2]]}...)")
        genotype.validate(num_layers=sum(stages))
        super().__init__(stages=stages, planes=planes, width_mult=width_mult, stem=stem,
                         make_layer=lambda l, c_in, c_out: build_block(
                             genotype.layers[l], c_in, c_out, adaptive_fusion=adaptive_fusion))
        self.genotype = genotype
        init_weights(self)

    @classmethod
    def from_config(cls, cfg, *, stored: dict[str, Any] | None = None, **context) -> dict:
        """The network of ``MODEL.BACKBONE``; with ``stored`` (a checkpoint's entries) holding a
        ``genotype``, that genotype instead of ``MODEL.BACKBONE.GENOTYPE``, so a checkpoint is
        rebuilt as it was trained even when the genotype file has changed or moved."""
        b = cfg.MODEL.BACKBONE
        if stored and stored.get("genotype"):
            genotype = Genotype.from_dict(stored["genotype"], source="the checkpoint")
            logger.info("Building %s from the genotype stored in the checkpoint: %s", cls.__name__,
                        [list(e) for e in genotype.layers])
        else:
            genotype = load_genotype(b.GENOTYPE)
        return dict(genotype=genotype, stages=list(b.STAGES), planes=list(b.PLANES),
                    width_mult=b.WIDTH_MULT, adaptive_fusion=b.ADAPTIVE_FUSION, stem=b.STEM)

    def checkpoint_extra(self) -> dict[str, Any]:
        return {"genotype": self.genotype.to_dict()}

    def forward(self, x: Tensor) -> "OrderedDict[str, Tensor]":
        return self.run_cells(x, lambda cell, layer, x: cell(x))


@BACKBONE_REGISTRY.register()
class CDNet(SearchedNet):
    """CDNet: every searchable layer is a combined-depth block ``[k1, k2, r]`` (r stacked CBlocks)."""
    space = "cdnet"


@BACKBONE_REGISTRY.register()
class CNet(SearchedNet):
    """CNet: every searchable layer is one combined block ``[k1, k2]``."""
    space = "cnet"
