"""Architecture search over the CNet/CDNet spaces: ``SearchTrainer`` and its pieces.

The supernets and the mixed operation live with the models (``cdnet_reid.modeling.cdnet``)."""

from ..config.defaults import _C as _DEFAULT_CONFIG
from .architect import first_order_grads, unrolled_grads
from .cost import add_search_cost_config
from .data import split_per_identity
from .hooks import GenotypeHook
from .trainer import SearchTrainer

# SEARCH.COST joins the default tree with the search package (as SearchTrainer joins its registry)
add_search_cost_config(_DEFAULT_CONFIG)

__all__ = ["GenotypeHook", "SearchTrainer", "add_search_cost_config", "first_order_grads", "split_per_identity",
           "unrolled_grads"]
