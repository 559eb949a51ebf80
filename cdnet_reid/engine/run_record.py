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

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

from ..config import CfgNode
from ..utils import comm
from ..utils.file_io import PathManager, atomic_write
from .train_loop import HookBase

logger = logging.getLogger(__name__)

__all__ = ["RunFolderError", "RunFolderGuard", "RunLock", "check_output_dir", "claim_output_dir",
           "ensure_output_dir", "previous_run_files", "resolve_seed", "write_config", "write_env"]


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
    """``OUTPUT_DIR`` holds another run, is in use by another process, cannot be a writable
    folder, or was taken away from the running run."""


def ensure_output_dir(output_dir: str) -> None:
    """Create ``output_dir`` (main process) and check that the run can write into it; a path that
    is a file, lies under a file, or is not writable raises :class:`RunFolderError`."""
    if not output_dir or not comm.is_main_process():
        return
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise RunFolderError(f"OUTPUT_DIR {output_dir} is a file, not a folder")
    try:
        os.makedirs(output_dir, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        parent = output_dir
        while parent and not os.path.exists(parent):
            parent = os.path.dirname(parent)
        raise RunFolderError(f"OUTPUT_DIR {output_dir} cannot be created: {parent} is a file, "
                             "not a folder") from None
    except OSError as e:
        raise RunFolderError(f"OUTPUT_DIR {output_dir} cannot be created: {e.strerror}") from None
    probe = os.path.join(output_dir, f".write_test_{os.getpid()}")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        os.remove(probe)
    except OSError as e:
        raise RunFolderError(f"OUTPUT_DIR {output_dir} is not writable: {e.strerror}") from None


#: What a training run leaves in its folder; ``--overwrite`` moves these aside.
RUN_FILES = ("*.pth", "last_checkpoint", "metrics.json", "config.yaml", "env.txt", "log.txt*",
             "training_curves.png", "events.out.tfevents.*")
LOCK_NAME = ".run.lock"


def previous_run_files(output_dir: str) -> list[str]:
    """The files of an earlier training run in ``output_dir`` (checkpoints, metrics, record)."""
    found = set()
    for pattern in RUN_FILES:
        found.update(glob.glob(os.path.join(glob.escape(output_dir), pattern)))
    return sorted(found)


def check_output_dir(output_dir: str, *, resume: bool, overwrite: bool) -> None:
    """Refuse to start a new run in a folder that holds another run's checkpoints, unless
    ``resume`` (continue it) or ``overwrite`` (its files are moved into ``overwritten-<time>/``
    inside the folder, so nothing is lost). Main process only; call it holding the folder's
    :class:`RunLock` (:func:`claim_output_dir`), or it could move a live run's files."""
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
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        if not self.path or not comm.is_main_process() or fcntl is None:
            return self
        ensure_output_dir(os.path.dirname(self.path))
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

    def lost(self) -> str:
        """Why this process no longer holds ``OUTPUT_DIR`` (its lock file was deleted or replaced:
        the folder deleted, recreated, moved), or "" while it does. Main process only."""
        if self._fd is None:
            return ""
        try:
            now = os.stat(self.path)
        except OSError as e:
            return f"its lock {self.path} is gone ({e.strerror}): the folder was deleted or moved"
        held = os.fstat(self._fd)
        if (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
            return (f"its lock {self.path} was replaced: the folder was deleted and created again, "
                    "maybe by another run")
        return ""

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self if self._fd is not None else self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def claim_output_dir(output_dir: str, *, resume: bool, overwrite: bool) -> RunLock:
    """Make ``output_dir`` this run's (a collective: call it on every process): take its
    :class:`RunLock` first, then check it (:func:`check_output_dir`, which moves an older run's
    files aside for ``overwrite``), so that a live run's files are never touched. On refusal every
    process raises the same :class:`RunFolderError`. Returns the held lock (release it at the end)."""
    lock = RunLock(output_dir)
    error = None
    try:
        lock.acquire()
        check_output_dir(output_dir, resume=resume, overwrite=overwrite)
    except RunFolderError as e:
        lock.release()
        error = e
    comm.raise_if_any(error)
    return lock


class RunFolderGuard(HookBase):
    """Stops the run, on every process, at the first sync point of the trainer (every
    ``LOG_PERIOD`` iterations and each epoch's end) at which the run no longer holds
    ``OUTPUT_DIR`` (:meth:`RunLock.lost`), before it writes a checkpoint, a metrics line or a
    picture there, which would go into another run's folder or be lost. Register it before
    the checkpointers."""

    def __init__(self, lock: RunLock):
        self.lock = lock

    def _check(self, agreed: bool) -> None:
        reason = self.lock.lost() if comm.is_main_process() else ""
        if agreed and comm.all_reduce_max(int(bool(reason))):
            reason = comm.all_gather(reason)[0]
        if reason:
            raise RunFolderError(f"OUTPUT_DIR {os.path.dirname(self.lock.path)} is no longer this "
                                 f"run's: {reason}. Stopped after iteration {self.trainer.iter + 1}; "
                                 "nothing more is written there")

    def after_step(self):
        # at the trainer's sync points (every LOG_PERIOD iterations and at each epoch's end, where
        # checkpoints are written), not every iteration: one collective less per step
        if self.trainer.sync_due():
            self._check(agreed=True)

    def after_train(self):
        # after a completed run every process is here (agree); after a failure only the main
        # process checks, so that the writers' final lines and pictures do not go astray
        self._check(agreed=self.trainer.iter >= self.trainer.max_iter)
