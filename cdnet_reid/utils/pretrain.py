"""Initialise a model from a pre-trained checkpoint (ImageNet -> re-ID fine-tuning).

:func:`load_pretrained` copies every tensor of the checkpoint whose **name and shape** match a key of
the model, except classifiers (any key containing ``"classifier"``: their classes are not the
target's, even when the sizes happen to agree), and logs, grouped by module, what was not loaded.
The file may be one of our checkpoints (``{"model": ...}``), a plain state dict, or a layout for
which a converter is registered with :func:`cdnet_reid.utils.checkpoint.register_state_dict_converter`
(e.g. the CDNet authors' ``base.``/``neck.`` names); ``module.`` prefixes are stripped.

Our ImageNet model uses the global-only neck (``GlobalNeck``: ``head.fcs``) while the re-ID model
has the FBL neck (``head.global_fcs``, ``head.local_fcs``, ``head.squeeze``). The global branch is
the same computation, so ``head.fcs.*`` of the checkpoint is offered to ``head.global_fcs.*`` when the
model has no ``head.fcs``; ``head.squeeze``/``head.local_fcs`` stay freshly initialised (the
local branch has no ImageNet counterpart).
"""

import logging
from typing import Dict, List, NamedTuple

import torch
from fvcore.common.checkpoint import get_missing_parameters_message, get_unexpected_parameters_message
from torch import nn

from .file_io import PathManager
from .checkpoint import convert_foreign_layout, read_checkpoint

logger = logging.getLogger(__name__)

__all__ = ["PretrainReport", "load_pretrained"]

# (checkpoint prefix, model prefix): used when the model lacks the first and has the second.
_PREFIX_ALIASES = [("head.fcs.", "head.global_fcs.")]


class PretrainReport(NamedTuple):
    loaded: List[str]        # model keys copied from the checkpoint
    classifier: List[str]    # model keys skipped because they are classifiers
    missing: List[str]       # model keys absent from the checkpoint
    mismatched: List[str]    # model keys present with another shape
    unused: List[str]        # checkpoint keys that match nothing of the model


def _strip_module(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}


def _apply_aliases(sd: Dict[str, torch.Tensor], model_keys) -> Dict[str, torch.Tensor]:
    for src, dst in _PREFIX_ALIASES:
        if any(k.startswith(src) for k in model_keys) or not any(k.startswith(dst) for k in model_keys):
            continue
        if any(k.startswith(dst) for k in sd):
            continue
        sd = {(dst + k[len(src):] if k.startswith(src) else k): v for k, v in sd.items()}
    return sd


def load_pretrained(model: nn.Module, path: str) -> PretrainReport:
    """Copy the matching, non-classifier tensors of checkpoint ``path`` into ``model``.

    Raises ``FileNotFoundError`` for a missing file and ``RuntimeError`` when not a single tensor
    matches (certainly the wrong file). Missing backbone keys are logged as a warning.
    """
    if not PathManager.exists(path):
        raise FileNotFoundError(f"MODEL.PRETRAIN_PATH: checkpoint not found: {path!r}")
    weights = _strip_module(read_checkpoint(PathManager.get_local_path(path))["model"])
    target = model.state_dict()
    weights, layout = convert_foreign_layout(weights, target.keys())
    if layout:
        logger.info("MODEL.PRETRAIN_PATH: recognised the %s layout", layout)
    weights = _apply_aliases(weights, target.keys())

    loaded, classifier, missing, mismatched = [], [], [], []
    new_state = {}
    for key, value in target.items():
        if "classifier" in key:
            classifier.append(key)
        elif key not in weights:
            missing.append(key)
        elif tuple(weights[key].shape) != tuple(value.shape):
            mismatched.append(key)
        else:
            new_state[key] = weights[key].to(dtype=value.dtype)
            loaded.append(key)
    unused = [k for k in weights if k not in target or k in classifier]
    if not loaded:
        raise RuntimeError(f"MODEL.PRETRAIN_PATH={path}: none of its {len(weights)} tensors matches a "
                           f"non-classifier key of the model by name and shape (first model keys: "
                           f"{list(target)[:3]}, first checkpoint keys: {list(weights)[:3]})")
    model.load_state_dict(new_state, strict=False)

    logger.info("Initialised %d of %d tensors from %s (classifiers skipped: %d)", len(loaded),
                len(target), path, len(classifier))
    if classifier:
        logger.info("Not loaded (classifiers, freshly initialised):%s",
                    get_missing_parameters_message(classifier).split(":", 1)[1])
    if mismatched:
        logger.info("Not loaded (shape differs):\n%s", "\n".join(
            f"  {k}: checkpoint {tuple(weights[k].shape)}, model {tuple(target[k].shape)}"
            for k in mismatched))
    if missing:
        backbone = [k for k in missing if k.startswith("backbone.")]
        log = logger.warning if backbone else logger.info
        log("Not in the checkpoint (freshly initialised)%s:%s",
            f", {len(backbone)} of them backbone tensors" if backbone else "",
            get_missing_parameters_message(missing).split(":", 1)[1])
    if unused:
        logger.info("Checkpoint tensors not used:%s",
                    get_unexpected_parameters_message(unused).split(":", 1)[1])
    return PretrainReport(loaded, classifier, missing, mismatched, unused)
