"""Checkpoints: fvcore's ``Checkpointer`` made crash-safe and ``weights_only``-safe.

What we change on top of fvcore:

* **Atomic writes.** A checkpoint (and the ``last_checkpoint`` tag) is written to a temporary file
  in the same folder, flushed and fsynced, then ``os.replace``-d into place. A crash or kill at any
  moment leaves either the previous file or the new one, never a truncated file.
* **Safe loading.** Files are read with ``torch.load(weights_only=True)``; everything we save is
  plain data (tensors, numbers, strings, lists, dicts), so no pickled objects are needed.
* **Plain state dicts.** A file that is a bare ``state_dict`` (as many released models are) is
  accepted and treated as model weights.

Shape mismatches (for example a classifier of another size) are skipped and reported, and
missing/unexpected keys are logged in grouped form by fvcore.
"""

import logging
import os
import tempfile
from typing import Any, Callable, Dict, Iterable, List, Tuple

import torch
from fvcore.common.checkpoint import Checkpointer as _FvcoreCheckpointer

from .file_io import PathManager

logger = logging.getLogger(__name__)

#: ``(name, detect(state_dict) -> bool, convert(state_dict, model_keys) -> state_dict)`` for
#: foreign checkpoint layouts (e.g. the CDNet authors' released files); see
#: :func:`register_state_dict_converter`.
_CONVERTERS: List[Tuple[str, Callable, Callable]] = []


def register_state_dict_converter(name: str, detect: Callable[[Dict], bool],
                                  convert: Callable[[Dict, Iterable[str]], Dict]) -> None:
    """Teach :class:`Checkpointer` a foreign key layout: model weights for which ``detect`` is true
    are renamed with ``convert`` (given the target model's keys) before loading."""
    _CONVERTERS.append((name, detect, convert))


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save`` to a temporary file in the target folder, then rename it over ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp_", suffix=".pth", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_text(text: str, path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp_", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


class Checkpointer(_FvcoreCheckpointer):
    """Saves/loads the model plus any ``checkpointables`` (optimizer, scheduler, trainer state).

    ``Checkpointer(model).load(path)`` loads weights only when no checkpointables are registered;
    ``save(name, **extra)`` stores ``extra`` (epoch, iteration, best metric, config, ...) alongside.
    """

    def __init__(self, model, save_dir: str = "", *, save_to_disk: bool = True, **checkpointables):
        super().__init__(model, save_dir, save_to_disk=save_to_disk, **checkpointables)
        self.path_manager = PathManager

    def save(self, name: str, **kwargs: Any) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        data: Dict[str, Any] = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        save_file = os.path.join(self.save_dir, f"{name}.pth")
        self.logger.info("Saving checkpoint to %s", save_file)
        atomic_torch_save(data, save_file)
        self.tag_last_checkpoint(os.path.basename(save_file))

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        atomic_write_text(last_filename_basename, os.path.join(self.save_dir, "last_checkpoint"))

    def load(self, path: str, checkpointables=None) -> Dict[str, Any]:
        if path and not os.path.isfile(path) and not self.path_manager.exists(path):
            raise FileNotFoundError(
                f"checkpoint not found: {path!r} (check MODEL.WEIGHTS or the --resume folder)")
        return super().load(path, checkpointables)

    def _load_model(self, checkpoint: Any):
        weights = checkpoint["model"]
        for name, detect, convert in _CONVERTERS:
            if detect(weights):
                checkpoint["model"] = convert(weights, self.model.state_dict().keys())
                self.logger.info("Recognised the %s checkpoint layout; mapped its %d keys onto this "
                                 "model's names", name, len(weights))
                break
        return super()._load_model(checkpoint)

    def _load_file(self, filename: str) -> Dict[str, Any]:
        try:
            data = torch.load(filename, map_location="cpu", weights_only=True)
        except Exception as e:
            raise RuntimeError(
                f"cannot load checkpoint {filename}: {e}\nIt is either corrupt or contains "
                "pickled Python objects (only plain tensors/numbers/strings are loaded, "
                "weights_only=True).") from e
        if not isinstance(data, dict):
            raise RuntimeError(f"checkpoint {filename} holds a {type(data).__name__}, not a dict")
        if "model" not in data:
            if "state_dict" in data and isinstance(data["state_dict"], dict):
                data = {"model": data["state_dict"]}
            elif all(isinstance(v, torch.Tensor) for v in data.values()):
                self.logger.info("%s is a plain state dict; loading it as model weights", filename)
                data = {"model": data}
            else:
                raise RuntimeError(
                    f"checkpoint {filename} has no 'model' entry and is not a state dict "
                    f"(top-level keys: {sorted(data)[:10]})")
        return data
