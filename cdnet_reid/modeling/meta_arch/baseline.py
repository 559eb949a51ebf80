"""Baseline: normalise pixels -> backbone -> head -> (training) CE + triplet on every branch."""

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ...utils.checkpoint import StateDictRules
from ..losses import cross_entropy_loss, triplet_loss
from ..registry import META_ARCH_REGISTRY, build_backbone, build_head

_KNOWN_LOSSES = ("CrossEntropyLoss", "TripletLoss")


@META_ARCH_REGISTRY.register()
class Baseline(nn.Module):
    """The re-ID model.

    ``forward`` takes either an ``N×3×H×W`` tensor of RGB pixel values in 0-255 (uint8 or float)
    or a batch dict with ``images`` (and ``targets`` in training). Normalisation with
    ``pixel_mean``/``pixel_std`` (0-255 units) happens inside, never in place.

    * eval: returns what the head returns in eval mode (the N×D embedding for re-ID heads);
    * training: returns a dict of scalar losses. The head returns a list of ``(logits, feature)``
      branches; each branch gets ``ce_scale * CE(logits) + tri_scale * Triplet(feature)`` and the
      branches are summed (the paper's recipe).
    """

    def __init__(self, *, backbone: nn.Module, head: nn.Module, pixel_mean: Sequence[float],
                 pixel_std: Sequence[float], loss_names: Sequence[str] = _KNOWN_LOSSES,
                 ce_epsilon: float = 0.0, ce_scale: float = 1.0, tri_margin: float = 0.3,
                 tri_norm_feat: bool = False, tri_scale: float = 1.0, tri_gather: bool = False):
        super().__init__()
        unknown = set(loss_names) - set(_KNOWN_LOSSES)
        if unknown:
            raise ValueError(f"MODEL.LOSSES.NAMES has unknown losses {sorted(unknown)}; "
                             f"known: {list(_KNOWN_LOSSES)}")
        self.backbone = backbone
        self.head = head
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(1, -1, 1, 1), persistent=False)
        self.loss_names = tuple(loss_names)
        self.ce_epsilon, self.ce_scale = ce_epsilon, ce_scale
        self.tri_margin, self.tri_norm_feat, self.tri_scale = tri_margin, tri_norm_feat, tri_scale
        self.tri_gather = tri_gather

    @classmethod
    def from_config(cls, cfg, *, stored: dict | None = None, **context) -> dict:
        backbone = build_backbone(cfg, stored)
        head = build_head(cfg, backbone.output_shape())
        losses = cfg.MODEL.LOSSES
        return dict(backbone=backbone, head=head, pixel_mean=list(cfg.MODEL.PIXEL_MEAN),
                    pixel_std=list(cfg.MODEL.PIXEL_STD), loss_names=tuple(losses.NAMES),
                    ce_epsilon=losses.CE.EPSILON, ce_scale=losses.CE.SCALE,
                    tri_margin=losses.TRI.MARGIN, tri_norm_feat=losses.TRI.NORM_FEAT,
                    tri_scale=losses.TRI.SCALE, tri_gather=losses.TRI.GATHER)

    def arch_parameters(self) -> list[nn.Parameter]:
        """The architecture parameters (a search backbone's logits α; none otherwise)."""
        return list(self.backbone.arch_parameters()) if hasattr(self.backbone, "arch_parameters") else []

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every other parameter: what the weight optimizer trains."""
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def state_dict_rules(self) -> StateDictRules:
        """Classifier and alias keys as the head declares them (``classifier_names``,
        ``state_dict_aliases``); the backbone is what a pre-trained file must provide."""
        return StateDictRules(
            classifiers=tuple(f"head.{n}." for n in getattr(self.head, "classifier_names", ())),
            aliases=tuple((f"head.{a}", f"head.{b}") for a, b in getattr(self.head, "state_dict_aliases", ())),
            essential=("backbone.",))

    def checkpoint_extra(self) -> dict:
        """What the backbone needs stored to be rebuilt (e.g. CDNet's genotype)."""
        return self.backbone.checkpoint_extra() if hasattr(self.backbone, "checkpoint_extra") else {}

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def preprocess_image(self, images: Tensor) -> Tensor:
        images = images.to(self.device, non_blocking=True).float()
        return (images - self.pixel_mean) / self.pixel_std

    def forward(self, batch: Tensor | dict[str, Tensor]):
        images = batch["images"] if isinstance(batch, dict) else batch
        outputs = self.head(self.backbone(self.preprocess_image(images)))
        if not self.training:
            return outputs
        if not isinstance(batch, dict) or "targets" not in batch:
            raise ValueError("training mode needs a batch dict with 'images' and 'targets'")
        return self.losses(outputs, batch["targets"].to(self.device, non_blocking=True))

    def losses(self, branches, targets: Tensor) -> dict[str, Tensor]:
        """Sum of every loss term over the head's ``(logits, feature)`` branches."""
        out: dict[str, Tensor] = {}
        for logits, feat in branches:
            if "CrossEntropyLoss" in self.loss_names:
                loss = cross_entropy_loss(logits, targets, self.ce_epsilon) * self.ce_scale
                out["loss_cls"] = out.get("loss_cls", 0) + loss
            if "TripletLoss" in self.loss_names:
                loss = triplet_loss(feat, targets, self.tri_margin, self.tri_norm_feat,
                                    gather=self.tri_gather) * self.tri_scale
                out["loss_triplet"] = out.get("loss_triplet", 0) + loss
        return out
