"""What a finished search's supernet prefers among given genotypes: two scores per genotype.

* ``alpha_score``: Σ_l log softmax(α_l)[op_l] over the layers, the log-probability of the genotype
  under the final architecture distribution (the argmax genotype has the highest).
* ``val_loss``: the supernet's own loss (the search's training losses: cross-entropy + triplet of
  the search head) on the search's *architecture* split, with every layer forced to the genotype's
  single candidate (:meth:`Supernet.forced`), weights as the search left them (no fine-tuning).

Why the architecture split: it is the held-out half of the training identities' images that the
search optimises α on, i.e. the supernet's own validation data; its loss is the quantity the
search ranks candidates by. The test split is kept for the trained networks' mAP only, so the two
sides of the rank correlation share no images. The images go through the *test* transform (no
random flip / crop: a deterministic score) in fixed batches of ``SOLVER.IMS_PER_BATCH`` in the
split's order (grouped by identity, ``SEARCH.ARCH_IMAGES_PER_ID`` each, so every batch has the
P×K structure the triplet loss needs). The network runs in training mode, as the search's
architecture step does: batch-norm uses batch statistics (the running statistics of a supernet are
those of its mixed paths, not of one sub-network), dropout is off, no gradient.
"""

import os
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..config import get_cfg
from ..data.build import build_reid_train_set
from ..data.transforms import build_transforms
from ..modeling import load_model
from .data import split_per_identity, subset
from .supernet import Supernet

__all__ = ["alpha_score", "load_supernet", "subnet_losses"]


def alpha_score(alphas: torch.Tensor, ops: Sequence[int]) -> float:
    """Σ_l log softmax(``alphas``[l])[``ops``[l]]."""
    logp = torch.log_softmax(alphas.detach().double(), dim=-1)
    return float(sum(logp[l, op] for l, op in enumerate(ops)))


def load_supernet(search_dir: str, checkpoint: str = "model_final.pth") -> tuple[nn.Module, object]:
    """``(model, cfg)``: the search model of ``search_dir`` (its ``config.yaml``) with the weights and
    α of ``checkpoint``, on the CPU."""
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(search_dir, "config.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = os.path.join(search_dir, checkpoint)
    cfg.freeze()
    return load_model(cfg)[0], cfg


def _arch_batches(cfg) -> list[dict]:
    """The architecture split of the search ``cfg`` (same split and seed as the search), test
    transform, fixed batches in the split's order."""
    full = build_reid_train_set(cfg)
    _, arch_idx = split_per_identity(full.pids, cfg.SEARCH.ARCH_IMAGES_PER_ID, cfg.SEARCH.SPLIT,
                                     seed=cfg.SEED if cfg.SEED >= 0 else 0)
    data = subset(full, arch_idx)
    data.transform = build_transforms(cfg, is_train=False)
    return list(DataLoader(data, batch_size=cfg.SOLVER.IMS_PER_BATCH, shuffle=False, num_workers=0))


@torch.no_grad()
def subnet_losses(model: nn.Module, cfg, genotypes: Sequence[Sequence[int]]) -> list[float]:
    """The mean loss over the architecture split (module docstring) of every genotype (its ``ops``)."""
    supernet = next(m for m in model.modules() if isinstance(m, Supernet))
    batches = _arch_batches(cfg)
    model.train()
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.eval()
    out = []
    for ops in genotypes:
        with supernet.forced(ops):
            losses = [float(sum(model(b).values())) for b in batches]
        out.append(sum(losses) / len(losses))
    model.eval()
    return out
