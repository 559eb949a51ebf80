"""Architecture search over the CNet/CDNet spaces: ``SearchTrainer`` and its pieces.

The supernets and the mixed operation live with the models (``cdnet_reid.modeling.cdnet``)."""

from .architect import first_order_grads, unrolled_grads
from .data import split_per_identity
from .hooks import GenotypeHook
from .trainer import SearchTrainer

__all__ = ["GenotypeHook", "SearchTrainer", "first_order_grads", "split_per_identity", "unrolled_grads"]
