"""A run's ``OUTPUT_DIR``: the record it leaves there to be reproduced (the merged config with the
seed actually used, the software environment), and the rules that make the folder one run's (a new
run never overwrites another's checkpoints; one process at a time).

Below both the command-line setup (``defaults.py``) and the trainer, which write into it.
"""

import glob
import logging
import os
import socket
import time
from typing import List, Optional

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

from ..config import CfgNode
from ..utils import comm
from ..utils.file_io import PathManager, atomic_write

logger = logging.getLogger(__name__)

__all__ = ["RunFolderError", "RunLock", "check_output_dir", "previous_run_files", "resolve_seed",
           "write_config", "write_env"]


def write_config(cfg: CfgNode, name: str = "config.yaml") -> str:
    """Write the merged config to ``OUTPUT_DIR/<name>`` (main process, atomically); return the path."""
    path = os.path.join(cfg.OUTPUT_DIR, name)
    if comm.is_main_process():
        with atomic_write(path) as f:
            f.write(cfg.dump())
    return path


def write_env(output_dir: str, env_info: str) -> None:
    """Write ``env.txt`` (versions and hardware, :func:`cdnet_reid.utils.env.collect_env_info`)."""
    if comm.is_main_process():
        with atomic_write(os.path.join(output_dir, "env.txt")) as f:
            f.write(env_info + "\n")


def resolve_seed(cfg: CfgNode, resume: bool) -> int:
    """``cfg.SEED`` if >= 0; a resumed run reuses the seed of its first start (its config.yaml);
    else a fresh one. Every rank gets rank 0's."""
    if cfg.SEED >= 0:
        return cfg.SEED
    previous = os.path.join(cfg.OUTPUT_DIR, "config.yaml")
    seed = -1
    if resume and PathManager.exists(previous):
        seed = CfgNode.load_yaml_with_base(previous).get("SEED", -1)
    if seed < 0:
        seed = int.from_bytes(os.urandom(4), "little") % 2 ** 31
    return int(comm.all_gather(seed)[0])


# ------------------------------------------------------------------------------------------------
# The folder belongs to one run
# ------------------------------------------------------------------------------------------------
class RunFolderError(RuntimeError):
    """``OUTPUT_DIR`` holds another run, or is in use by another process."""


#: What a training run leaves in its folder; ``--overwrite`` moves these aside.
RUN_FILES = ("*.pth", "last_checkpoint", "metrics.json", "config.yaml", "env.txt", "log.txt*",
             "training_curves.png", "events.out.tfevents.*")
LOCK_NAME = ".run.lock"


def previous_run_files(output_dir: str) -> List[str]:
    """The files of an earlier training run in ``output_dir`` (checkpoints, metrics, record)."""
    found = set()
    for pattern in RUN_FILES:
        found.update(glob.glob(os.path.join(glob.escape(output_dir), pattern)))
    return sorted(found)


def check_output_dir(output_dir: str, *, resume: bool, overwrite: bool) -> None:
    """Refuse to start a new run in a folder that holds another run's checkpoints, unless
    ``resume`` (continue it) or ``overwrite`` (its files are moved into ``overwritten-<time>/``
    inside the folder, so nothing is lost). Main process only."""
    if not output_dir or not comm.is_main_process():
        return
    checkpoints = glob.glob(os.path.join(glob.escape(output_dir), "*.pth"))
    if not checkpoints and not os.path.exists(os.path.join(output_dir, "last_checkpoint")):
        return
    if resume:
        return
    if not overwrite:
        raise RunFolderError(
            f"OUTPUT_DIR {output_dir} holds another run ({len(checkpoints)} checkpoints, e.g. "
            f"{os.path.basename(sorted(checkpoints)[-1]) if checkpoints else 'last_checkpoint'}). "
            "Continue it with --resume, start afresh with --overwrite (its files are moved aside), "
            "or choose another OUTPUT_DIR.")
    aside = os.path.join(output_dir, time.strftime("overwritten-%Y%m%d-%H%M%S"))
    os.makedirs(aside, exist_ok=True)
    for path in previous_run_files(output_dir):
        os.replace(path, os.path.join(aside, os.path.basename(path)))
    logger.warning("--overwrite: moved the previous run's files of %s into %s", output_dir, aside)


class RunLock:
    """An exclusive lock on ``OUTPUT_DIR`` for the lifetime of a run (``fcntl.flock`` on
    ``OUTPUT_DIR/.run.lock``, released by the OS even when the process is killed). A second
    process stops with :class:`RunFolderError` naming the holder's pid. A no-op where ``fcntl``
    is missing (Windows) and on processes other than the main one."""

    def __init__(self, output_dir: str):
        self.path = os.path.join(output_dir, LOCK_NAME) if output_dir else ""
        self._fd: Optional[int] = None

    def acquire(self) -> "RunLock":
        if not self.path or not comm.is_main_process() or fcntl is None:
            return self
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunFolderError(f"OUTPUT_DIR {os.path.dirname(self.path)} is in use by another run "
                                 f"(process {holder}, lock {self.path}); wait for it to end or "
                                 "choose another OUTPUT_DIR") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} on {socket.gethostname()}".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
