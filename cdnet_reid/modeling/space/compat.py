"""The authors' released checkpoints (solicucu/ReID) <-> our module names.

Their files are plain state dicts of the original ``BaseNet`` module: the backbone under
``base.`` (e.g. ``base.cells.4.ops.1.conv1.0.op.2.weight``) and the neck under ``neck.``. Our
modules mirror their structure, so the mapping is a fixed renaming:

=====================================  ====================================
authors                                ours
=====================================  ====================================
``base.``                              ``backbone.``
``neck.``                              ``head.``
``stem.conv1.op.``                     ``stem.conv.``
``cells.<c>.ops.<j>.`` (CDBlock)       ``cells.<c>.blocks.<j>.``
``.op.`` (conv-BN wrappers)            ``.``
``adaption.`` (shared gate)            ``gate.``
``cells.<c>.conv1x1.`` (DownSample)    ``cells.<c>.conv.``
=====================================  ====================================

Their ImageNet neck (``neck.global_fcs/global_classifier`` only) lands on our global-only neck's
``head.fcs/classifier`` by that neck's own aliases (``BLNeck.state_dict_aliases``), applied by the
Checkpointer to every checkpoint.
"""

import re
from collections.abc import Iterable

from torch import Tensor

from ...utils.checkpoint import strip_wrapper_prefix

_FORWARD = [
    (re.compile(r"^base\."), "backbone."),
    (re.compile(r"^neck\."), "head."),
    (re.compile(r"\.stem\.conv1\.op\."), ".stem.conv."),
    (re.compile(r"\.ops\.(\d+)\."), r".blocks.\1."),
    (re.compile(r"\.op\."), "."),
    (re.compile(r"\.adaption\."), ".gate."),
    (re.compile(r"\.conv1x1\."), ".conv."),
]


def is_authors_state_dict(state_dict: dict[str, Tensor]) -> bool:
    """True for a state dict in the authors' layout (``base.*`` backbone keys)."""
    return any(k.startswith("base.") for k in strip_wrapper_prefix(state_dict))


def authors_to_ours(state_dict: dict[str, Tensor],
                    model_keys: Iterable[str] | None = None) -> dict[str, Tensor]:
    """Rename an authors' state dict to our keys (``model_keys``: the converter protocol's target
    keys, not needed for this fixed renaming)."""
    out = {}
    for key, value in strip_wrapper_prefix(state_dict).items():
        new = key
        for pattern, repl in _FORWARD:
            new = pattern.sub(repl, new)
        out[new] = value
    return out


def ours_to_authors(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Inverse renaming: our keys -> the authors' (for exchanging weights with their code)."""
    out = {}
    for key, value in state_dict.items():
        new = re.sub(r"^backbone\.", "base.", key)
        new = re.sub(r"^head\.", "neck.", new)
        new = re.sub(r"^neck\.fcs\.", "neck.global_fcs.", new)
        new = re.sub(r"^neck\.classifier\.", "neck.global_classifier.", new)
        new = re.sub(r"^base\.stem\.conv\.", "base.stem.conv1.op.", new)
        new = re.sub(r"\.blocks\.(\d+)\.", r".ops.\1.", new)
        new = re.sub(r"\.gate\.", ".adaption.", new)
        # conv-BN wrappers: squeeze/restore/expand/DownSample conv and each lite unit gain ".op."
        new = re.sub(r"\.(squeeze|restore|expand)\.(\d+)\.", r".\1.op.\2.", new)
        new = re.sub(r"^(base\.cells\.\d+)\.conv\.(\d+)\.", r"\1.conv1x1.op.\2.", new)
        new = re.sub(r"\.(conv1|conv2)\.(\d+)\.(\d+)\.", r".\1.\2.op.\3.", new)
        out[new] = value
    return out
