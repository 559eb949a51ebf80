"""Checkpoints: fvcore's ``Checkpointer`` made crash-safe, ``weights_only``-safe and strict.

What we change on top of fvcore:

* **Atomic writes.** A checkpoint (and the ``last_checkpoint`` tag) goes through
  :func:`~cdnet_reid.utils.file_io.atomic_write`: a crash or kill at any moment leaves either the
  previous file or the new one, never a truncated file.
* **Safe loading.** :func:`read_checkpoint` reads files with ``torch.load(weights_only=True)``;
  everything we save is plain data (tensors, numbers, strings, lists, dicts). A file that is not a
  checkpoint (a folder, an image, a truncated file) gets one line naming it and the cause.
* **Plain state dicts.** A file that is a bare ``state_dict`` (as many released models are), or
  ``{"state_dict": ...}``, is accepted as model weights; foreign key layouts are renamed by the
  converters of :func:`register_state_dict_converter`.
* **Strict weights.** :meth:`Checkpointer.load_model_weights` refuses a file that leaves any tensor
  of the model unset (:class:`IncompatibleCheckpointError`). Only classifier tensors of another
  size are skipped (fine-tuning on other identities), in one log line.
* **The model's own key rules.** Which keys are classifiers, which checkpoint prefixes another
  layout of the same module uses, and which keys matter for a pre-trained start are declared by the
  model (``model.state_dict_rules()`` returning :class:`StateDictRules`); nothing here knows a
  module name.
"""

import errno
import glob
import logging
import os
import pickle
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from fvcore.common.checkpoint import Checkpointer as _FvcoreCheckpointer

from .file_io import PathManager, atomic_write

logger = logging.getLogger(__name__)

__all__ = ["Checkpointer", "CheckpointError", "CheckpointNotFoundError", "CheckpointWriteError",
           "IncompatibleCheckpointError", "StateDictRules",
           "convert_foreign_layout", "find_last_checkpoint", "match_state_dict", "prepare_weights",
           "read_checkpoint", "register_state_dict_converter", "state_dict_rules", "strip_wrapper_prefix"]

#: Prefixes that a wrapper adds to every key of the module it wraps (DataParallel / DDP).
WRAPPER_PREFIXES = ("module.",)

#: ``(name, detect(state_dict) -> bool, convert(state_dict, model_keys) -> state_dict)`` for
#: foreign checkpoint layouts (e.g. the CDNet authors' released files); see
#: :func:`register_state_dict_converter`.
_CONVERTERS: list[tuple[str, Callable, Callable]] = []


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read or written; the message names the file and the cause."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist."""


class CheckpointWriteError(CheckpointError, OSError):
    """A checkpoint could not be written (disk full, permissions); the previous file is intact."""


class IncompatibleCheckpointError(CheckpointError):
    """Weights that do not fit the model: loading them would leave tensors unset."""


@dataclass(frozen=True)
class StateDictRules:
    """What a model declares about its state-dict keys (``model.state_dict_rules()``).

    * ``classifiers``: key prefixes of classifier tensors, whose classes are those of the training
      set: never taken from a pre-trained file, and kept when their size differs from a checkpoint's;
    * ``aliases``: ``(checkpoint prefix, model prefix)`` pairs: a checkpoint's tensors under the
      first are offered to the second when the model lacks the first and the checkpoint the second
      (another layout of the same computation);
    * ``essential``: key prefixes whose absence from a pre-trained file is a warning (others: info).
    """

    classifiers: tuple[str, ...] = ()
    aliases: tuple[tuple[str, str], ...] = ()
    essential: tuple[str, ...] = ("",)

    def is_classifier(self, key: str) -> bool:
        return bool(self.classifiers) and key.startswith(self.classifiers)


def state_dict_rules(model) -> StateDictRules:
    """The model's :class:`StateDictRules` (``model.state_dict_rules()``; defaults without it)."""
    rules = getattr(model, "state_dict_rules", None)
    return rules() if callable(rules) else StateDictRules()


def strip_wrapper_prefix(weights: dict[str, Any]) -> dict[str, Any]:
    """``weights`` without the prefix (:data:`WRAPPER_PREFIXES`) that a wrapper adds to every key."""
    for prefix in WRAPPER_PREFIXES:
        if weights and all(k.startswith(prefix) for k in weights):
            return {k[len(prefix):]: v for k, v in weights.items()}
    return weights


def apply_aliases(weights: dict[str, Any], model_keys: Iterable[str],
                  aliases: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Rename ``weights``' keys by the ``(checkpoint prefix, model prefix)`` pairs of
    :attr:`StateDictRules.aliases` that apply (see there)."""
    model_keys = list(model_keys)
    for src, dst in aliases:
        if (any(k.startswith(src) for k in model_keys) or not any(k.startswith(dst) for k in model_keys)
                or any(k.startswith(dst) for k in weights)):
            continue
        weights = {(dst + k[len(src):] if k.startswith(src) else k): v for k, v in weights.items()}
    return weights


def prepare_weights(weights: dict[str, Any], model) -> tuple[dict[str, Any], str | None]:
    """``(weights named as model's keys, name of the recognised foreign layout or None)``: the
    wrapper prefix stripped, a registered converter applied, the model's aliases applied."""
    keys = list(model.state_dict().keys())
    weights, layout = convert_foreign_layout(weights, keys)
    return apply_aliases(weights, keys, state_dict_rules(model).aliases), layout


def register_state_dict_converter(name: str, detect: Callable[[dict], bool],
                                  convert: Callable[[dict, Iterable[str]], dict]) -> None:
    """Teach :class:`Checkpointer` a foreign key layout: model weights for which ``detect`` is true
    are renamed with ``convert`` (given the target model's keys) before loading."""
    _CONVERTERS.append((name, detect, convert))


def convert_foreign_layout(weights: dict[str, Any], model_keys: Iterable[str]
                           ) -> tuple[dict[str, Any], str | None]:
    """``(weights renamed onto the model's keys, name of the recognised layout)`` when a converter
    registered with :func:`register_state_dict_converter` recognises ``weights``; else
    ``(weights, None)``. A wrapper's prefix (:func:`strip_wrapper_prefix`) is stripped first."""
    weights = strip_wrapper_prefix(weights)
    for name, detect, convert in _CONVERTERS:
        if detect(weights):
            return convert(weights, model_keys), name
    return weights, None


_MAGIC = {b"\xff\xd8\xff": "a JPEG image", b"\x89PNG": "a PNG image", b"{": "a JSON file"}


def _not_a_checkpoint(path: str) -> str | None:
    """Why ``path`` cannot be a ``torch.save`` file, judged from its type and first bytes."""
    if os.path.isdir(path):
        return "it is a folder, not a checkpoint file"
    with open(path, "rb") as f:
        head = f.read(8)
    if not head:
        return "the file is empty"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # torch.save's zip / legacy pickle
        return None
    kind = next((v for k, v in _MAGIC.items() if head.startswith(k)), None)
    if kind:
        return f"it is {kind}, not a PyTorch checkpoint"
    return "it is not a PyTorch checkpoint (neither a torch.save zip archive nor a pickle)"


def read_checkpoint(path: str) -> dict[str, Any]:
    """The content of checkpoint file ``path`` as a dict with a ``"model"`` state dict, read with
    ``torch.load(weights_only=True)`` on the CPU. A bare state dict (as many released models are)
    or ``{"state_dict": ...}`` becomes ``{"model": ...}``. Anything else raises
    :class:`CheckpointError` with one line naming the file and the cause."""
    local = path if os.path.exists(path) else PathManager.get_local_path(path)
    if not os.path.exists(local):
        raise CheckpointNotFoundError(f"checkpoint not found: {path} (check MODEL.WEIGHTS, "
                                      "MODEL.PRETRAIN_PATH or the run folder resumed from)")
    reason = _not_a_checkpoint(local)
    if reason:
        raise CheckpointError(f"cannot load checkpoint {path}: {reason}")
    try:
        data = torch.load(local, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"cannot load checkpoint {path}: it holds pickled Python objects besides plain data "
            f"(tensors, numbers, strings, lists, dicts), which are never loaded "
            f"({str(e).splitlines()[-1].strip()[:200]})") from None
    except Exception as e:  # truncated or corrupt archives raise RuntimeError, EOFError, ...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise CheckpointError(f"cannot load checkpoint {path}: it is truncated or corrupt "
                              f"({type(e).__name__}: {first})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"cannot load checkpoint {path}: it holds a {type(data).__name__}, "
                              "not a dict of tensors")
    if "model" not in data:
        if "state_dict" in data and isinstance(data["state_dict"], dict):
            data = {"model": data["state_dict"]}
        elif data and all(isinstance(v, torch.Tensor) for v in data.values()):
            logger.info("%s is a plain state dict; loading it as model weights", path)
            data = {"model": data}
        else:
            raise CheckpointError(f"cannot load checkpoint {path}: it has no 'model' entry and is "
                                  f"not a state dict (top-level keys: {sorted(data)[:10]})")
    return data


def _is_checkpoint_readable(path: str) -> bool:
    try:
        read_checkpoint(path)
        return True
    except CheckpointError as e:
        logger.warning("%s", e)
        return False


def find_last_checkpoint(folder: str) -> str | None:
    """The checkpoint a resume of ``folder`` continues from: the one named by ``last_checkpoint``,
    or, when that file is missing or unreadable, the newest readable ``*.pth`` (with a warning);
    ``None`` when the folder holds none."""
    if not folder or not os.path.isdir(folder):
        return None
    candidates = sorted(glob.glob(os.path.join(glob.escape(folder), "*.pth")), key=os.path.getmtime,
                        reverse=True)
    tag = os.path.join(folder, "last_checkpoint")
    named = None
    if os.path.isfile(tag):
        with open(tag) as f:
            named = os.path.join(folder, f.read().strip())
        candidates = [named] + [c for c in candidates if c != named]
    for path in candidates:
        if os.path.isfile(path) and _is_checkpoint_readable(path):
            if path != named:
                logger.warning("%s names %s, which is missing or unreadable; resuming from the "
                               "newest readable checkpoint, %s", tag, named, path)
            return path
    return None


def match_state_dict(model_state: dict[str, torch.Tensor], weights: dict[str, Any]
                     ) -> tuple[dict[str, torch.Tensor], list[str], list[str], list[str]]:
    """``(loadable, missing, mismatched, unexpected)``: the entries of ``weights`` whose name and
    shape match ``model_state``, the model keys they lack, those of another shape, and the
    checkpoint keys the model does not have."""
    loadable, missing, mismatched = {}, [], []
    for key, value in model_state.items():
        if key not in weights:
            missing.append(key)
        elif tuple(weights[key].shape) != tuple(value.shape):
            mismatched.append(key)
        else:
            loadable[key] = weights[key]
    unexpected = [k for k in weights if k not in model_state]
    return loadable, missing, mismatched, unexpected


def _first(keys: list[str], n: int = 5) -> str:
    return ", ".join(keys[:n]) + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


class Checkpointer(_FvcoreCheckpointer):
    """Saves/loads the model plus any ``checkpointables`` (optimizer, scheduler, trainer state).

    ``Checkpointer(model).load(path)`` loads weights only when no checkpointables are registered;
    ``save(name, **extra)`` stores ``extra`` (epoch, iteration, best metric, config, ...) alongside.
    """

    def __init__(self, model, save_dir: str = "", *, save_to_disk: bool = True, **checkpointables):
        super().__init__(model, save_dir, save_to_disk=save_to_disk, **checkpointables)
        self.path_manager = PathManager

    def save(self, name: str, *, tag_last: bool = True, **kwargs: Any) -> None:
        """Write ``<save_dir>/<name>.pth`` atomically; with ``tag_last`` it becomes the checkpoint
        a resume continues from (``last_checkpoint``)."""
        if not self.save_dir or not self.save_to_disk:
            return
        data: dict[str, Any] = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        save_file = os.path.join(self.save_dir, f"{name}.pth")
        logger.info("Saving checkpoint to %s", save_file)
        try:
            with atomic_write(save_file, "wb") as f:
                torch.save(data, f)
        except (OSError, RuntimeError) as e:
            raise CheckpointWriteError(f"could not write checkpoint {save_file}: "
                                       f"{_write_failure(e, save_file)}") from None
        if tag_last:
            self.tag_last_checkpoint(os.path.basename(save_file))

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        with atomic_write(os.path.join(self.save_dir, "last_checkpoint")) as f:
            f.write(last_filename_basename)

    def load(self, path: str, checkpointables: list[str] | None = None) -> dict[str, Any]:
        """Load the model weights of ``path`` (strictly, see :meth:`load_model_weights`) and the
        ``checkpointables`` named (all registered ones by default); return the other entries."""
        if not path:
            raise ValueError("Checkpointer.load: no checkpoint path given")
        return self.load_checkpoint(read_checkpoint(path), path, checkpointables)

    def load_checkpoint(self, checkpoint: dict[str, Any], source: str,
                        checkpointables: list[str] | None = None) -> dict[str, Any]:
        """:meth:`load` for the content of a checkpoint already read (``source``: its name)."""
        checkpoint = dict(checkpoint)
        self.load_model_weights(checkpoint, source)
        for key in self.checkpointables if checkpointables is None else checkpointables:
            if key in checkpoint:
                logger.info("Loading %s from %s", key, source)
                self.checkpointables[key].load_state_dict(checkpoint.pop(key))
        return checkpoint

    def load_model_weights(self, checkpoint: dict[str, Any], source: str) -> None:
        """Copy ``checkpoint["model"]`` into the model, all or nothing.

        Raises :class:`IncompatibleCheckpointError` naming ``source``, how many tensors matched and
        the first missing / mismatched / unexpected keys when any tensor of the model would stay
        unset, except classifier tensors of another size (another number of identities), which
        keep their initialisation (logged in one line)."""
        target = self.model.state_dict()
        weights, layout = prepare_weights(checkpoint["model"], self.model)
        if layout:
            logger.info("Recognised the %s checkpoint layout in %s; mapped its %d keys onto "
                             "this model's names", layout, source, len(weights))
        loadable, missing, mismatched, unexpected = match_state_dict(target, weights)
        # BatchNorm's step counters are not weights (older files lack them)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        rules = state_dict_rules(self.model)
        classifiers = [k for k in mismatched if rules.is_classifier(k)]
        unset = missing + [k for k in mismatched if k not in classifiers]
        if unset:
            raise IncompatibleCheckpointError(
                f"{source} does not fit this model: {len(loadable)} of {len(target)} tensors match "
                f"by name and shape. Missing: {_first(missing) or 'none'}. Of another shape: "
                f"{_first([k for k in mismatched if k not in classifiers]) or 'none'}. Unexpected: "
                f"{_first(unexpected) or 'none'}. (Is it a checkpoint of another architecture? "
                "MODEL.PRETRAIN_PATH loads the matching part of one.)")
        self.model.load_state_dict(loadable, strict=False)
        if classifiers:
            logger.info("Loaded %d tensors from %s; kept the new classifier (%s: checkpoint %s, "
                             "model %s)", len(loadable), source, ", ".join(classifiers),
                             [tuple(weights[k].shape) for k in classifiers],
                             [tuple(target[k].shape) for k in classifiers])
        else:
            logger.info("Loaded all %d tensors from %s", len(loadable), source)
        if unexpected:
            logger.warning("%s has %d tensors this model does not use: %s", source,
                                len(unexpected), _first(unexpected))

    def _load_file(self, filename: str) -> dict[str, Any]:
        return read_checkpoint(filename)


def _write_failure(e: Exception, path: str) -> str:
    """One line for a failed write: the disk is full, or the OS error, or the first line."""
    if isinstance(e, OSError) and e.errno is not None:
        return f"{os.strerror(e.errno)}" + (" (free some disk space, or set OUTPUT_DIR elsewhere)"
                                            if e.errno == errno.ENOSPC else "")
    text = str(e)
    if "inline_container" in text or "write failed" in text or "unexpected pos" in text:
        free = shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free
        return (f"the write failed; {free / 2 ** 20:.0f} MiB free on its disk (disk full? free some "
                "space, or set OUTPUT_DIR elsewhere)")
    return (text.strip().splitlines() or [type(e).__name__])[0][:200]
