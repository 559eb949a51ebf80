"""The on-disk cache of a generated dataset: trusted folders, atomic generation, stale temporaries.

A generated dataset lives in ``<root>/<name>/``. The folder is trusted only if its ``.complete``
marker (JSON, written last) holds the expected ``key`` (e.g. generator version and arguments) and
the number of ``.jpg`` files per sub-folder that it records; otherwise :func:`ensure_generated`
regenerates it. Generation writes into a hidden temporary sibling folder that is renamed into place
only when complete, so a kill mid-generation never leaves a half dataset that is trusted later. If
two processes (e.g. two distributed ranks) generate at once, whoever loses the rename race discards
its copy and uses the winner's folder.

Temporary folders are named ``.<name>.tmp-<host>-<pid>-<random>`` (``.stale-`` for an outdated
folder being deleted), i.e. after the process that owns them. A killed generation leaves its
folder behind; :func:`remove_stale_temps` (run by every :func:`ensure_generated`) deletes those
whose owner is a process of this host that no longer runs, and never one of a generation that is
still running. The pid of another host (a shared file system) cannot be checked: its folders are
deleted only when nothing in them has changed for :data:`FOREIGN_MAX_AGE_S`.
"""

import json
import logging
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Sequence

logger = logging.getLogger(__name__)

__all__ = ["MARKER", "ensure_generated", "is_complete", "remove_stale_temps"]

MARKER = ".complete"
#: Temporaries of another host are deleted when unchanged for this long (its pids are unknown here).
FOREIGN_MAX_AGE_S = 24 * 3600.0
_TEMP_KINDS = ("tmp", "stale")


def _host() -> str:
    """This machine's name as used in temporary names (no ``-``, which separates the fields)."""
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "localhost"


def _temp_path(root: str, name: str, kind: str) -> str:
    return os.path.join(root, f".{name}.{kind}-{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _pid_alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # no cheap, harmless check there: keep the folder
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _last_change(path: str) -> float:
    """The newest mtime of ``path`` and its direct entries (files are written into sub-folders)."""
    times = [os.path.getmtime(path)]
    if os.path.isdir(path):
        times += [os.path.getmtime(os.path.join(path, e)) for e in os.listdir(path)]
    return max(times)


def _is_stale(owner: str, path: str) -> bool:
    """Whether temporary ``path``, owned by ``owner`` (``<host>-<pid>-<random>``), was abandoned."""
    host, _, rest = owner.partition("-")
    pid = rest.partition("-")[0]
    if host == _host() and pid.isdigit():
        return not _pid_alive(int(pid))
    try:
        return time.time() - _last_change(path) > FOREIGN_MAX_AGE_S
    except OSError:  # removed meanwhile
        return False


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.remove(path)
        except OSError:
            pass


def remove_stale_temps(root: str, name: str) -> int:
    """Delete the temporaries of ``<root>/<name>`` left by ended generations; returns how many."""
    try:
        entries = os.listdir(root)
    except OSError:
        return 0
    removed = 0
    for entry in entries:
        for kind in _TEMP_KINDS:
            prefix = f".{name}.{kind}-"
            if entry.startswith(prefix) and _is_stale(entry[len(prefix):], os.path.join(root, entry)):
                logger.info("Removing %s, left behind by an interrupted generation", entry)
                _remove(os.path.join(root, entry))
                removed += 1
    return removed


def _read_marker(dataset_dir: str) -> dict | None:
    try:
        with open(os.path.join(dataset_dir, MARKER)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def is_complete(dataset_dir: str, key: dict, subsets: Sequence[str]) -> bool:
    """Whether ``dataset_dir``'s marker holds ``key`` and the numbers of ``.jpg`` files in
    ``subsets`` that it records."""
    marker = _read_marker(dataset_dir)
    if not isinstance(marker, dict) or any(marker.get(k) != v for k, v in key.items()):
        return False
    try:
        counts = {sub: sum(1 for f in os.listdir(os.path.join(dataset_dir, sub)) if f.endswith(".jpg"))
                  for sub in subsets}
    except OSError:
        return False
    return counts == marker.get("counts")


def ensure_generated(root: str, name: str, key: dict, subsets: Sequence[str],
                     generate: Callable[[str], dict[str, int]]) -> tuple[str, bool]:
    """``(dataset_dir, generated_now)`` for ``<root>/<name>``.

    Stale temporaries are removed first; a folder complete for ``key`` is used as it is. Otherwise
    ``generate(folder)`` writes the files into a temporary folder and returns the number of
    ``.jpg`` files in each of ``subsets``; the marker ``{**key, "counts": ...}`` is written last and the
    folder atomically takes the place of ``<root>/<name>`` (replacing an outdated one).
    """
    dataset_dir = os.path.join(root, name)
    os.makedirs(root, exist_ok=True)
    remove_stale_temps(root, name)
    if is_complete(dataset_dir, key, subsets):
        return dataset_dir, False
    tmp = _temp_path(root, name, "tmp")
    try:
        counts = generate(tmp)
        with open(os.path.join(tmp, MARKER), "w") as f:  # written last: marks the folder complete
            json.dump({**key, "counts": counts}, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        for _ in range(5):
            try:
                os.rename(tmp, dataset_dir)
                return dataset_dir, True
            except OSError:
                if is_complete(dataset_dir, key, subsets):  # another process won the race: use its folder
                    logger.info("%s was generated concurrently by another process; using it", name)
                    return dataset_dir, False
                # an outdated / incomplete folder is in the way: move it aside and delete it
                stale = _temp_path(root, name, "stale")
                try:
                    os.rename(dataset_dir, stale)
                except OSError:
                    pass
                else:
                    logger.info("Replacing the outdated dataset folder %s", dataset_dir)
                    shutil.rmtree(stale, ignore_errors=True)
        raise RuntimeError(f"could not move the generated dataset into {dataset_dir}")
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
