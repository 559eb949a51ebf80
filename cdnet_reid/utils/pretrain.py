"""Initialise a model from a pre-trained checkpoint (ImageNet -> re-ID fine-tuning).

:func:`load_pretrained` copies every tensor of the checkpoint whose **name and shape** match a key of
the model, except the model's classifiers (:attr:`~.checkpoint.StateDictRules.classifiers`: their
classes are not the target's, even when the sizes happen to agree), and logs, grouped by module,
what was not loaded. The file may be one of our checkpoints (``{"model": ...}``), a plain state
dict, or a layout for which a converter is registered with
:func:`cdnet_reid.utils.checkpoint.register_state_dict_converter`; a wrapper's ``module.`` prefix is
stripped and the model's aliases (another layout of the same module, e.g. a global-only neck's
FC block offered to a two-branch neck's global branch) are applied
(:func:`~.checkpoint.prepare_weights`).
"""

import logging
from typing import NamedTuple

from fvcore.common.checkpoint import get_missing_parameters_message, get_unexpected_parameters_message
from torch import nn

from .checkpoint import match_state_dict, prepare_weights, read_checkpoint, state_dict_rules
from .file_io import PathManager

logger = logging.getLogger(__name__)

__all__ = ["PretrainReport", "load_pretrained"]


class PretrainReport(NamedTuple):
    loaded: list[str]        # model keys copied from the checkpoint
    classifier: list[str]    # model keys skipped because they are classifiers
    missing: list[str]       # model keys absent from the checkpoint
    mismatched: list[str]    # model keys present with another shape
    unused: list[str]        # checkpoint keys that match nothing of the model


def load_pretrained(model: nn.Module, path: str) -> PretrainReport:
    """Copy the matching, non-classifier tensors of checkpoint ``path`` into ``model``.

    Raises ``FileNotFoundError`` for a missing file and ``RuntimeError`` when not a single tensor
    matches (certainly the wrong file). Missing keys that the model calls essential are logged as
    a warning, other missing keys as information.
    """
    if not PathManager.exists(path):
        raise FileNotFoundError(f"MODEL.PRETRAIN_PATH: checkpoint not found: {path!r}")
    weights, layout = prepare_weights(read_checkpoint(PathManager.get_local_path(path))["model"], model)
    if layout:
        logger.info("MODEL.PRETRAIN_PATH: recognised the %s layout", layout)
    rules = state_dict_rules(model)
    target = model.state_dict()
    classifier = [k for k in target if rules.is_classifier(k)]
    loadable, missing, mismatched, unexpected = match_state_dict(
        {k: v for k, v in target.items() if k not in classifier}, weights)
    unused = unexpected + [k for k in classifier if k in weights]
    if not loadable:
        raise RuntimeError(f"MODEL.PRETRAIN_PATH={path}: none of its {len(weights)} tensors matches a "
                           f"non-classifier key of the model by name and shape (first model keys: "
                           f"{list(target)[:3]}, first checkpoint keys: {list(weights)[:3]})")
    model.load_state_dict({k: v.to(dtype=target[k].dtype) for k, v in loadable.items()}, strict=False)

    logger.info("Initialised %d of %d tensors from %s (classifiers skipped: %d)", len(loadable),
                len(target), path, len(classifier))
    if classifier:
        logger.info("Not loaded (classifiers, freshly initialised):%s",
                    get_missing_parameters_message(classifier).split(":", 1)[1])
    if mismatched:
        logger.info("Not loaded (shape differs):\n%s", "\n".join(
            f"  {k}: checkpoint {tuple(weights[k].shape)}, model {tuple(target[k].shape)}"
            for k in mismatched))
    if missing:
        essential = [k for k in missing if k.startswith(rules.essential)]
        log = logger.warning if essential else logger.info
        log("Not in the checkpoint (freshly initialised)%s:%s",
            f", {len(essential)} of them essential" if essential else "",
            get_missing_parameters_message(missing).split(":", 1)[1])
    if unused:
        logger.info("Checkpoint tensors not used:%s",
                    get_unexpected_parameters_message(unused).split(":", 1)[1])
    return PretrainReport(list(loadable), classifier, missing, mismatched, unused)
