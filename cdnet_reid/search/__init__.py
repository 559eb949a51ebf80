"""Architecture search over the CNet/CDNet spaces: ``SearchTrainer`` and its pieces.

Importing it registers the supernets (``CDNetSupernet``, ``CNetSupernet``) in ``BACKBONE_REGISTRY``,
``SearchTrainer`` in ``TRAINER_REGISTRY`` and the ``SEARCH`` config section
(:func:`add_search_config`). The blocks and the mixed operation live with the models
(``cdnet_reid.modeling.space``)."""

from .architect import UnrolledOptimizerError, first_order_grads, unrolled_grads
from .config import add_search_config
from .cost import add_search_cost_config
from .data import split_per_identity
from .hooks import CURVE_PANELS, GenotypeHook
from .supernet import CDNetSupernet, CNetSupernet, Supernet
from .trainer import SearchTrainer

__all__ = ["CDNetSupernet", "CNetSupernet", "CURVE_PANELS", "GenotypeHook", "SearchTrainer", "Supernet",
           "UnrolledOptimizerError", "add_search_config", "add_search_cost_config", "first_order_grads",
           "split_per_identity",
           "unrolled_grads"]
