"""The search's config section, ``SEARCH``: ``add_search_config(cfg)``, registered with
:func:`cdnet_reid.config.register_config` when ``cdnet_reid.search`` is imported."""

from ..config import CfgNode, register_config
from .cost import add_search_cost_config


@register_config
def add_search_config(cfg: CfgNode) -> None:
    """Add the ``SEARCH`` section (the paper's top-k sample search, or the DARTS-style variant,
    run by ``SearchTrainer``) with its ``SEARCH.COST`` part (a search for a budget); keys that
    already exist are left alone."""
    if "SEARCH" not in cfg:
        _add_search_section(cfg)
    add_search_cost_config(cfg)


def _add_search_section(cfg: CfgNode) -> None:
    s = cfg.SEARCH = CfgNode()
    # "topk": the paper's top-k sampling with straight-through weights (only k candidates run);
    # "softmax": DARTS (every candidate runs, softmax-weighted).
    s.MODE = "topk"
    s.TOPK = 2
    # Initial value of every architecture logit (the authors': 1e-3, all tied; ties are broken by a
    # seeded random order per layer).
    s.ALPHA_INIT = 1e-3
    # Architecture optimizer: Adam(lr, betas, L2 weight decay), LR x ARCH_GAMMA at ARCH_MILESTONES
    # (1-based epochs).
    s.ARCH_LR = 3e-4
    s.ARCH_BETAS = [0.5, 0.999]
    s.ARCH_WEIGHT_DECAY = 1e-3
    s.ARCH_MILESTONES = [80, 160]
    s.ARCH_GAMMA = 0.1
    # Second-order (unrolled) DARTS gradient for the architecture step; softmax mode only.
    s.UNROLLED = False
    # Split of every training identity's images into a weight part and an architecture part:
    # "disjoint" (no image in both) or "authors" (the original's split, which overlaps: identities with
    # at most ARCH_IMAGES_PER_ID images have all of them in both parts, and the images that top up the
    # architecture part of the others stay in the weight part too).
    s.SPLIT = "disjoint"
    # Images per identity in the architecture part.
    s.ARCH_IMAGES_PER_ID = 4
    # Write the derived genotype every GENOTYPE_PERIOD epochs (and at the end).
    s.GENOTYPE_PERIOD = 10
    # Also write the genotypes in the authors' JSON format.
    s.AUTHORS_FORMAT = False
