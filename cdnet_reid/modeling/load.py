"""Rebuild a trained model from its checkpoint: :func:`load_model`, the one way tools and APIs do it.

A checkpoint written by this project carries what inference needs besides the weights: the
config keys that define the model and its input (:data:`INFERENCE_KEYS`: the architecture, the
input size, the pixel normalisation, flip averaging, feature normalisation, the metric), stored
as ``"inference_config"`` (older checkpoints store the whole config as ``"config"``: the same keys
are read from it). So a checkpoint alone is enough to compute the embeddings it was trained for.

With a config given as well, the two must agree on every key of the config that changes the
embeddings (all but :data:`UNCHECKED_KEYS`; with ``config_keys``, only on the keys the config
file sets: the others are taken from the checkpoint): a contradiction raises
:class:`ModelConfigMismatchError` naming the key and both values, unless the key is in
``explicit`` (set deliberately, e.g. on the command line), which is then used and logged.
"""

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from torch import nn

from ..config import CfgNode, ConfigError, get_cfg
from ..utils.checkpoint import Checkpointer, read_checkpoint
from .build import build_model

logger = logging.getLogger(__name__)

__all__ = ["INFERENCE_KEYS", "UNCHECKED_KEYS", "ModelConfigMismatchError", "checkpoint_inference_config",
           "inference_config", "load_model", "resolve_model_config"]

#: Config keys (a key names its whole sub-tree) that define a trained model and its input.
INFERENCE_KEYS = ("MODEL.META_ARCHITECTURE", "MODEL.PIXEL_MEAN", "MODEL.PIXEL_STD", "MODEL.BACKBONE",
                  "MODEL.HEADS", "INPUT.SIZE_TEST", "INPUT.RESIZE_SHORT_TEST", "TEST.FLIP.ENABLED",
                  "TEST.FEAT_NORM", "TEST.METRIC")
#: Keys of :data:`INFERENCE_KEYS` that do not change a trained model's embeddings: the genotype
#: file (the checkpoint stores the genotype itself), the classifier size (read from the weights)
#: and dropout (off at inference).
UNCHECKED_KEYS = ("MODEL.BACKBONE.GENOTYPE", "MODEL.HEADS.NUM_CLASSES", "MODEL.HEADS.DROPOUT")


class ModelConfigMismatchError(ConfigError):
    """A config that contradicts the checkpoint it loads on a key that changes the embeddings."""


def _leaves(node: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key in sorted(node):
            yield from _leaves(node[key], f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, node


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def _select(flat: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in flat.items() if any(k == p or k.startswith(p + ".") for p in INFERENCE_KEYS)}


def inference_config(cfg: CfgNode) -> dict[str, Any]:
    """``{dotted key: value}`` of the :data:`INFERENCE_KEYS` of ``cfg``: plain data to store in a
    checkpoint (lists, numbers, strings, booleans)."""
    return {k: _plain(v) for k, v in _select(dict(_leaves(cfg, ""))).items()}


def checkpoint_inference_config(stored: dict[str, Any], source: str) -> dict[str, Any] | None:
    """The inference config a checkpoint's entries record (``"inference_config"``, or the keys of
    an older checkpoint's full ``"config"``); ``None`` when it records neither (e.g. a foreign
    state dict)."""
    if isinstance(stored.get("inference_config"), dict):
        return dict(stored["inference_config"])
    if isinstance(stored.get("config"), str) and stored["config"].strip():
        try:
            full = CfgNode.load_cfg(stored["config"])
        except Exception as e:  # a config string that is not YAML: say so, naming the file
            raise ConfigError(f"checkpoint {source}: its stored config cannot be read ({e})") from None
        return {k: _plain(v) for k, v in _select(dict(_leaves(full, ""))).items()}
    return None


def _get(cfg: CfgNode, key: str) -> Any:
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def _set(cfg: CfgNode, key: str, value: Any) -> None:
    *parents, last = key.split(".")
    node = cfg
    for part in parents:
        node = node[part]
    old = node[last]
    node[last] = tuple(value) if isinstance(old, tuple) and isinstance(value, list) else value


def _has(cfg: CfgNode, key: str) -> bool:
    try:
        _get(cfg, key)
        return True
    except KeyError:
        return False


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    return a == b


def resolve_model_config(cfg: CfgNode, stored: dict[str, Any], source: str, *,
                         config_keys: Iterable[str] | None = None, explicit: Iterable[str] = ()) -> CfgNode:
    """``cfg`` (a frozen copy) made consistent with the checkpoint ``source`` whose entries are
    ``stored``: the one rule of which value wins.

    For every key the checkpoint records (:func:`checkpoint_inference_config`): a key in
    ``explicit`` keeps ``cfg``'s value (logged when it differs); a key the user chose (every key
    when ``config_keys`` is None, as for a config built in code; else those of ``config_keys``,
    the keys a config file sets: none without a file) whose value differs raises
    :class:`ModelConfigMismatchError` (except :data:`UNCHECKED_KEYS`); any other key takes the
    checkpoint's value.
    ``MODEL.HEADS.NUM_CLASSES`` 0 becomes the checkpoint's number of classes."""
    cfg = cfg.clone()
    cfg.defrost()
    explicit = set(explicit)
    chosen = None if config_keys is None else set(config_keys)
    recorded = checkpoint_inference_config(stored, source) or {}
    unknown = sorted(k for k in recorded if not _has(cfg, k))
    if unknown:
        raise ConfigError(f"checkpoint {source} was trained with config key(s) {', '.join(unknown[:5])} "
                          "that this config does not define: import the module that adds them "
                          "(a project's add_*_config)")
    filled = []
    for key, value in recorded.items():
        current = _get(cfg, key)
        if _same(current, value):
            continue
        if key in explicit:
            logger.info("%s: using %r as set explicitly; checkpoint %s was trained with %r", key, current,
                        source, value)
        elif key in UNCHECKED_KEYS or (chosen is not None and key not in chosen):
            _set(cfg, key, value)
            filled.append(f"{key}={value!r}")
        else:
            raise ModelConfigMismatchError(
                f"{key} is {_plain(current)!r} in the config but checkpoint {source} was trained with "
                f"{value!r}: leave {key} out of the config to use the checkpoint's value, or set it "
                "explicitly as a KEY VALUE override to use another value")
    if filled:
        logger.info("From checkpoint %s: %s", source, ", ".join(filled))
    if cfg.MODEL.HEADS.NUM_CLASSES == 0 and stored.get("num_classes"):
        cfg.MODEL.HEADS.NUM_CLASSES = int(stored["num_classes"])
    cfg.freeze()
    return cfg


def load_model(cfg_or_checkpoint: CfgNode | str | os.PathLike, *, config_keys: Iterable[str] | None = None,
               explicit: Iterable[str] = (), checkpoint: str = "",
               build: Callable[..., nn.Module] | None = None,
               device: str | None = None) -> tuple[nn.Module, CfgNode]:
    """``(model, cfg)``: a trained model in eval mode with its weights, and the config it was
    built with (the one to build its test transform and evaluator from).

    ``cfg_or_checkpoint``: a checkpoint file (the model is built from what it records, on the
    default config) or a config whose ``MODEL.WEIGHTS`` names the checkpoint (``checkpoint``, if
    given, is read instead). ``config_keys``: the keys of ``cfg`` the user chose (default: all of
    them; ``()`` takes every inference key from the checkpoint): a contradiction on one raises
    :class:`ModelConfigMismatchError`, except for the keys of ``explicit``
    (:func:`resolve_model_config`). ``build(cfg, stored=...)``: the model builder (default
    :func:`~cdnet_reid.modeling.build_model`); ``device`` overrides ``MODEL.DEVICE``."""
    if isinstance(cfg_or_checkpoint, (str, os.PathLike)):
        cfg, path = get_cfg(), os.fspath(cfg_or_checkpoint)
        config_keys = () if config_keys is None else config_keys
    else:
        cfg, path = cfg_or_checkpoint, checkpoint or cfg_or_checkpoint.MODEL.WEIGHTS
    if not path:
        raise ConfigError("no checkpoint to load: MODEL.WEIGHTS is empty")
    stored = read_checkpoint(path)
    cfg = resolve_model_config(cfg, stored, path, config_keys=config_keys, explicit=explicit)
    cfg.defrost()
    cfg.MODEL.WEIGHTS = path
    if device is not None:
        cfg.MODEL.DEVICE = device
    cfg.freeze()
    if build is None:
        build = build_model
    model = build(cfg, stored=stored)
    Checkpointer(model).load_model_weights(stored, path)
    model.eval()
    return model, cfg
