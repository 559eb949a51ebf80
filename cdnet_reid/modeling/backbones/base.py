"""The backbone contract shared by every registered backbone."""

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn


@dataclass(frozen=True)
class ShapeSpec:
    """Channels and total stride of one backbone output map."""
    channels: int
    stride: int


class Backbone(nn.Module):
    """A feature extractor returning named maps, in order from shallow to deep.

    Subclasses implement ``forward(images) -> OrderedDict[name, N×C×H×W]`` and
    ``output_shape() -> OrderedDict[name, ShapeSpec]`` with the same names in the same order.
    Heads read the maps they need by position (the last one, or the last two) or by name.

    Rebuilding from a checkpoint: a backbone whose structure is not fully given by the config (a
    searched network and its genotype) returns what it needs in :meth:`checkpoint_extra`; the
    trainer stores that in every checkpoint, and a ``from_config(cfg, stored=None)`` classmethod
    that accepts ``stored`` (the checkpoint's entries) rebuilds the same network from it, whatever
    the config says. ``build_backbone(cfg, stored)`` passes it on.
    """

    def checkpoint_extra(self) -> dict[str, Any]:
        """Plain data (numbers, strings, lists, dicts) to store in checkpoints; none by default."""
        return {}

    def forward(self, x: Tensor) -> dict[str, Tensor]:  # pragma: no cover - interface
        raise NotImplementedError

    def output_shape(self) -> "OrderedDict[str, ShapeSpec]":  # pragma: no cover - interface
        raise NotImplementedError
