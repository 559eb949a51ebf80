"""The CNet/CDNet search space: its building blocks (lite 3x3 units, combined (depth) blocks, the
channel gate, DownSample and stems: ``ops``), the candidate tables and genotypes (``genotype``),
the search's mixed operation (``mixed_op``), and the mapping of the authors' checkpoint layout of
these blocks (``compat``, registered with the Checkpointer on import). The networks built from it
are backbones (``modeling/backbones/cdnet.py``; the supernets: ``cdnet_reid/search/supernet.py``);
the paper's necks are heads (``modeling/heads/fbl_head.py``, ``search_head.py``)."""

from ...utils.checkpoint import register_state_dict_converter
from .compat import authors_to_ours, is_authors_state_dict, ours_to_authors
from .genotype import CANDIDATES, Genotype, GenotypeError, load_genotype, save_genotype
from .mixed_op import MixedOp, topk_weights

register_state_dict_converter("CDNet authors' (solicucu/ReID)", is_authors_state_dict, authors_to_ours)

__all__ = ["CANDIDATES", "Genotype", "GenotypeError", "MixedOp", "authors_to_ours",
           "is_authors_state_dict", "load_genotype", "ours_to_authors", "save_genotype",
           "topk_weights"]
