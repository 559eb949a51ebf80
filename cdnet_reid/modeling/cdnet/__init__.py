"""CNet / CDNet: searched backbones, their blocks, genotypes and necks (importing registers them)."""

from .backbone import CDNet, CNet, SearchedNet, make_divisible
from .genotype import CANDIDATES, Genotype, GenotypeError, load_genotype, save_genotype
from .necks import FBLNeck, GlobalNeck
from .mixed_op import MixedOp, topk_weights
from .supernet import CDNetSupernet, CNetSupernet, SearchHead, Supernet
from .compat import authors_to_ours, is_authors_state_dict, ours_to_authors
from ...utils.checkpoint import register_state_dict_converter

register_state_dict_converter("CDNet authors' (solicucu/ReID)", is_authors_state_dict, authors_to_ours)

__all__ = ["CDNetSupernet", "CNetSupernet", "MixedOp", "SearchHead", "Supernet", "topk_weights", "authors_to_ours", "is_authors_state_dict", "ours_to_authors", "CANDIDATES", "CDNet", "CNet", "FBLNeck", "Genotype", "GenotypeError", "GlobalNeck",
           "SearchedNet", "load_genotype", "make_divisible", "save_genotype"]
