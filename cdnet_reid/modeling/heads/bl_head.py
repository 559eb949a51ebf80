"""BLNeck: global pooling -> dropout -> [FC-BN-ReLU]* -> classifier (the paper's BaLance neck without
the local branch; the neck of its MobileNetV2 baseline)."""

from collections.abc import Sequence

from torch import Tensor, nn

from ..registry import HEAD_REGISTRY


def fc_block(in_dim: int, fc_dims: Sequence[int]) -> nn.Sequential:
    """``Linear -> BN1d -> ReLU`` for every entry of ``fc_dims`` (empty: identity)."""
    layers: list[nn.Module] = []
    for dim in fc_dims:
        layers += [nn.Linear(in_dim, dim), nn.BatchNorm1d(dim), nn.ReLU(inplace=True)]
        in_dim = dim
    return nn.Sequential(*layers)


def init_linear(module: nn.Module) -> None:
    """Linear layers ~ N(0, 0.001^2) with zero bias (the paper's initialisation)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.001)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


@HEAD_REGISTRY.register("BLNeck", "GlobalNeck")
class BLNeck(nn.Module):
    """Global-average-pooled feature of the last backbone map, with a classification branch.
    Registered also as ``GlobalNeck``: the global branch of FBLNeck alone, the ImageNet neck of
    the original code (the same computation).

    * training: ``[(logits, feat)]``, ``feat`` being the pooled vector after dropout (for the
      triplet loss) and ``logits`` the classifier output after the FC block (for CE);
    * eval, re-ID: ``feat`` (N×C embedding); eval, ``classification=True``: ``logits``.

    With ``num_classes == 0`` no classifier is built (an embedding-only model for inference).
    A two-branch neck's global branch (``global_fcs``/``global_classifier``, e.g. the authors'
    ImageNet files) loads into ``fcs``/``classifier`` (:attr:`state_dict_aliases`).
    """

    #: submodules whose classes are the training set's (see ``utils.checkpoint.StateDictRules``)
    classifier_names = ("classifier",)
    #: (checkpoint prefix, this module's prefix): another layout of the same computation
    state_dict_aliases = (("global_fcs.", "fcs."), ("global_classifier.", "classifier."))

    def __init__(self, *, in_channels: int, num_classes: int, fc_dims: Sequence[int] = (512,),
                 dropout: float = 0.0, classification: bool = False):
        super().__init__()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fcs = fc_block(in_channels, fc_dims)
        last = fc_dims[-1] if len(fc_dims) else in_channels
        self.classifier = nn.Linear(last, num_classes) if num_classes > 0 else None
        self.classification = classification
        self.embedding_dim = in_channels
        init_linear(self)

    @classmethod
    def from_config(cls, cfg, *, input_shape: dict, **context) -> dict:
        h = cfg.MODEL.HEADS
        return dict(in_channels=list(input_shape.values())[-1].channels,
                    num_classes=h.NUM_CLASSES, fc_dims=list(h.FC_DIMS), dropout=h.DROPOUT,
                    classification=h.CLASSIFICATION)

    def forward(self, features: dict[str, Tensor]):
        # a mean over H, W rather than AdaptiveAvgPool2d: the same numbers, and a deterministic
        # CUDA backward (DETERMINISTIC)
        feat = self.drop(list(features.values())[-1].mean((2, 3)))
        if not self.training and not self.classification:
            return feat
        if self.classifier is None:
            raise RuntimeError("this BLNeck has no classifier (num_classes=0): it can only embed")
        logits = self.classifier(self.fcs(feat))
        return [(logits, feat)] if self.training else logits
