"""File helpers: the project's iopath ``PathManager`` (local paths plus HTTP(S) URLs) and the one
atomic writer that every output of a run goes through."""

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterator
from typing import IO

from iopath.common.file_io import HTTPURLHandler
from iopath.common.file_io import PathManager as _PathManager

PathManager = _PathManager()
PathManager.register_handler(HTTPURLHandler())

__all__ = ["InputFileError", "InputFileNotFoundError", "PathManager", "TEMP_PREFIX", "atomic_write",
           "remove_stale_temp_files",
           "spreadsheet_safe"]


class InputFileError(ValueError):
    """An input file or folder that is missing, unreadable, empty or of the wrong kind; the
    message names it and the cause."""


class InputFileNotFoundError(InputFileError, FileNotFoundError):
    """An input file or folder that does not exist."""

#: Name prefix of the temporary files of :func:`atomic_write` (see :func:`remove_stale_temp_files`).
TEMP_PREFIX = ".tmp_"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w") -> Iterator[IO]:
    """Write ``path`` all or nothing: the body writes to a temporary file in the same folder, which
    is flushed, fsynced, given the permissions of a normally created file (``0666 & ~umask``) and
    renamed over ``path``. A crash or kill at any moment leaves the old file or the new one, never
    a truncated one; on an exception the temporary file is removed and ``path`` is untouched."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix="_" + os.path.basename(path), dir=folder)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def remove_stale_temp_files(folder: str) -> list[str]:
    """Delete the leftovers of :func:`atomic_write` calls that a kill interrupted in ``folder``
    (call it only while no other process writes there, e.g. under the run's lock); returns them."""
    stale = sorted(glob.glob(os.path.join(glob.escape(folder), TEMP_PREFIX + "*")))
    for path in stale:
        os.remove(path)
    return stale


#: First characters that make a spreadsheet read a CSV cell as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """``text`` for a CSV cell that a spreadsheet shows as text: one starting with = + - @ (or a
    tab / carriage return) gets a leading ``'`` so that it is never run as a formula."""
    return "'" + text if text.startswith(_FORMULA_START) else text
