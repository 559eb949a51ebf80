"""Finding dataset folders on disk and parsing re-ID file names and list files.

Shared by the built-in datasets (Market-1501, DukeMTMC-reID, MSMT17, CIFAR-100, ImageNet) and the
generic :class:`~cdnet_reid.data.datasets.custom.CustomReID`:

* :func:`find_dataset_dir` tries the accepted folder names under the data root and, when none is
  complete, raises :class:`DatasetLayoutError` with the expected layout in the message;
* :func:`parse_market_dir` reads a folder of images named in the Market-1501 convention
  (``<pid>_c<camera>...``), matching the **file name only** with an anchored pattern;
* :func:`read_list_file` reads ``path,pid,camid`` (CSV) or ``path pid camid`` (text) lists;
* :func:`scan_image_folder` reads an ImageFolder tree (one sub-folder per class).
"""

import csv
import logging
import os
import re
from collections.abc import Sequence

from ...config import ConfigError
from ...utils.file_io import InputFileNotFoundError

logger = logging.getLogger(__name__)

__all__ = ["IMG_EXTENSIONS", "MARKET_NAME_RE", "DatasetError", "DatasetLayoutError", "is_image_file",
           "find_dataset_dir", "first_existing", "parse_market_dir", "read_list_file",
           "check_listed_files", "list_image_files", "scan_image_folder"]

#: File extensions treated as images (case-insensitive); anything else in a folder is ignored.
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")

#: Market-1501 / DukeMTMC-reID naming, anchored at the start of the **file name**:
#: ``0002_c1s1_000451_03.jpg`` (pid 2, camera 1), ``0005_c2_f0046985.jpg``, ``-1_c3s2_...`` (junk).
MARKET_NAME_RE = re.compile(r"^(-?\d+)_c(\d+)")

Item = tuple[str, int, int]
Required = str | Sequence[str]  # a path, or alternatives of which one must exist


class DatasetError(ConfigError):
    """A dataset that cannot be used as configured (a bad list file entry, a test set without a
    single query that has a match); the message names the dataset and the file. A ConfigError, so
    the command line reports it in one line."""


class DatasetLayoutError(DatasetError, FileNotFoundError):
    """A dataset folder or file is missing or misplaced; the message shows the expected layout."""


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


def first_existing(base: str, alternatives: Required) -> str | None:
    """The first of ``alternatives`` (relative to ``base``) that exists, or None."""
    alts = [alternatives] if isinstance(alternatives, str) else list(alternatives)
    for alt in alts:
        if os.path.exists(os.path.join(base, alt)):
            return alt
    return None


def _describe(required: Required) -> str:
    return required if isinstance(required, str) else " or ".join(required)


def find_dataset_dir(root: str, candidates: Sequence[str], required: Sequence[Required], *,
                     dataset: str, layout: str) -> str:
    """The first ``root/<candidate>`` folder that holds every ``required`` entry.

    ``layout`` is a text drawing of the expected tree; ``{root}`` in it is replaced by the absolute
    data root. When a candidate folder exists but lacks entries, the error names them; when none
    exists, it lists the folder names that were tried.
    """
    root_abs = os.path.abspath(os.path.expanduser(root))
    help_text = (f"Expected layout (the data root is DATASETS.ROOT, else $CDNET_DATASETS, else "
                 f"./datasets; see datasets/README.md):\n{layout.format(root=root_abs)}")
    existing = [c for c in candidates if os.path.isdir(os.path.join(root_abs, c))]
    for cand in existing:
        d = os.path.join(root_abs, cand)
        if all(first_existing(d, r) is not None for r in required):
            return d
    if existing:
        d = os.path.join(root_abs, existing[0])
        missing = [_describe(r) for r in required if first_existing(d, r) is None]
        raise DatasetLayoutError(f"{dataset}: the dataset folder {d} is incomplete, it lacks "
                                 f"{', '.join(missing)}.\n{help_text}")
    if not os.path.isdir(root_abs):
        where = f"the data root {root_abs} does not exist"
    else:
        where = f"no folder named {' or '.join(candidates)} in {root_abs}"
        if all(first_existing(root_abs, r) is not None for r in required):
            where += (f" (it looks like the dataset folder itself: the data root is the folder that "
                      f"*contains* it, e.g. {os.path.dirname(root_abs)})")
    raise DatasetLayoutError(f"{dataset}: dataset not found: {where}.\n{help_text}")


def _sorted_files(dir_path: str) -> list[str]:
    with os.scandir(dir_path) as it:
        return sorted(e.name for e in it if e.is_file())


def parse_market_dir(dir_path: str, *, dataset: str, drop_junk: bool = True,
                     pid_range: tuple[int, int] | None = None,
                     cam_range: tuple[int, int] | None = None) -> list[Item]:
    """Images of ``dir_path`` named ``<pid>_c<camera>...`` -> sorted ``(path, pid, camid)`` items.

    Only the file name is matched (anchored :data:`MARKET_NAME_RE`), so a parent folder such as
    ``run_c1/`` can never be mistaken for a camera. Non-image files are ignored; images whose name
    does not follow the pattern are ignored with a warning. pid ``-1`` (junk detections) is dropped
    when ``drop_junk``; every other pid, including Market's ``0`` (distractors), is kept. Camera ids
    are returned **0-based** (``c1`` -> 0). A pid or camera outside ``pid_range``/``cam_range``
    (inclusive, raw 1-based cameras) raises :class:`DatasetError` naming the file: it means the
    folder is not the dataset it is supposed to be.
    """
    items: list[Item] = []
    unmatched: list[str] = []
    junk = other = 0
    for fname in _sorted_files(dir_path):
        if not is_image_file(fname):
            other += 1
            continue
        m = MARKET_NAME_RE.match(fname)
        if m is None:
            unmatched.append(fname)
            continue
        pid, cam = int(m.group(1)), int(m.group(2))
        if pid == -1 and drop_junk:
            junk += 1
            continue
        path = os.path.join(dir_path, fname)
        if pid < 0 or (pid_range and not pid_range[0] <= pid <= pid_range[1]):
            rng = f"[{pid_range[0]}, {pid_range[1]}]" if pid_range else ">= 0 (or -1 for junk)"
            raise DatasetError(f"{dataset}: {path} has pid {pid}, outside {rng}")
        if cam < 1 or (cam_range and not cam_range[0] <= cam <= cam_range[1]):
            rng = f"[{cam_range[0]}, {cam_range[1]}]" if cam_range else ">= 1"
            raise DatasetError(f"{dataset}: {path} has camera c{cam}, outside {rng}")
        items.append((path, pid, cam - 1))
    if unmatched:
        logger.warning("%s: ignored %d image(s) in %s whose name does not start with "
                       "<pid>_c<camera> (e.g. %s)", dataset, len(unmatched), dir_path, unmatched[0])
    if junk or other:
        logger.debug("%s: %s: dropped %d junk (pid -1) images, ignored %d non-image files",
                     dataset, dir_path, junk, other)
    return items


def read_list_file(path: str, *, dataset: str, base_dir: str | None = None,
                   drop_junk: bool = True) -> list[Item]:
    """A ``path,pid,camid`` list -> ``(absolute path, pid, camid)`` items, in file order.

    ``.csv`` files are read with the ``csv`` module (quoted paths may contain commas); other files
    are split on the last two runs of whitespace (paths may contain spaces), or on commas when the
    line contains one. Blank lines and lines starting with ``#`` are skipped, and so is a first
    line whose pid is not an integer (a header such as ``path,pid,camid``). Image paths are
    relative to ``base_dir`` (default: the list file's folder), or absolute: either way they must
    lie inside ``base_dir`` (``../../etc/passwd`` is refused). pid ``-1`` is dropped when
    ``drop_junk``; camera ids are used as written (use 0-based integers). A malformed line is a
    :class:`DatasetError` naming the file and line.
    """
    base_dir = os.path.normpath(os.path.abspath(base_dir if base_dir is not None else os.path.dirname(path)))
    items: list[Item] = []
    with open(path, newline="") as f:
        if path.lower().endswith(".csv"):
            rows = ((i, [c.strip() for c in row]) for i, row in enumerate(csv.reader(f), 1))
        else:
            rows = ((i, _split_text_line(line)) for i, line in enumerate(f, 1))
        first = True
        for lineno, fields in rows:
            if not fields or not fields[0] or fields[0].startswith("#"):
                continue
            if len(fields) != 3:
                raise DatasetError(f"{dataset}: {path}:{lineno}: expected 'path,pid,camid', got "
                                   f"{len(fields)} field(s): {fields!r}")
            rel, pid_s, cam_s = fields
            try:
                pid, cam = int(pid_s), int(cam_s)
            except ValueError:
                if first:  # a header line
                    first = False
                    continue
                raise DatasetError(f"{dataset}: {path}:{lineno}: pid and camid must be integers, got "
                                   f"{pid_s!r}, {cam_s!r}") from None
            first = False
            if pid == -1 and drop_junk:
                continue
            if pid < 0 or cam < 0:
                raise DatasetError(f"{dataset}: {path}:{lineno}: pid and camid must be >= 0 "
                                   f"(pid -1 = junk, dropped), got {pid}, {cam}")
            image = os.path.normpath(os.path.join(base_dir, os.path.expanduser(rel)))
            if os.path.commonpath([base_dir, image]) != base_dir or image == base_dir:
                raise DatasetError(f"{dataset}: {path}:{lineno}: the image path {rel!r} lies outside the "
                                   f"dataset folder {base_dir}; list only images inside it")
            items.append((image, pid, cam))
    return items


def _split_text_line(line: str) -> list[str]:
    line = line.strip()
    if not line:
        return []
    if "," in line:
        return [c.strip() for c in line.split(",")]
    return line.rsplit(None, 2)


def check_listed_files(items: Sequence[tuple], list_path: str, *, dataset: str, layout: str = "") -> None:
    """Every image that a list file names must exist (a file), so that a wrong image folder or a
    stale list stops the run at start-up, not at the evaluation after training. One ``stat`` per
    entry, no image is read."""
    missing = [item[0] for item in items if not os.path.isfile(item[0])]
    if missing:
        raise DatasetLayoutError(f"{dataset}: {list_path} names {len(missing)} image(s) that do not exist "
                                 f"(of {len(items)}), e.g. {missing[0]} (are the images in the right "
                                 f"folder?)" + (f"\n{layout}" if layout else ""))


def scan_image_folder(dir_path: str, *, dataset: str,
                      class_to_idx: dict[str, int] | None = None) -> tuple[list[tuple[str, int]], list[str]]:
    """An ImageFolder tree (``dir_path/<class>/**/<image>``) -> ``([(path, label)], classes)``.

    Classes are the sub-folders in sorted name order (labels 0..C-1), unless ``class_to_idx`` is
    given (e.g. the training classes, for the validation split): then every class folder must be one
    of its keys. Files are listed recursively in sorted order; non-image files are ignored. Images
    lying directly in ``dir_path`` (an unsorted validation folder) raise an error.
    """
    with os.scandir(dir_path) as it:
        entries = sorted(it, key=lambda e: e.name)
    class_dirs = [e.name for e in entries if e.is_dir()]
    loose = [e.name for e in entries if e.is_file() and is_image_file(e.name)]
    if loose:
        raise DatasetLayoutError(
            f"{dataset}: {dir_path} holds {len(loose)} image(s) directly (e.g. {loose[0]}); images "
            f"must be sorted into one sub-folder per class (for ImageNet's val/, e.g. with the "
            f"usual valprep.sh script)")
    if not class_dirs:
        raise DatasetLayoutError(f"{dataset}: {dir_path} has no class sub-folders")
    if class_to_idx is None:
        classes = class_dirs
        class_to_idx = {c: i for i, c in enumerate(classes)}
    else:
        unknown = [c for c in class_dirs if c not in class_to_idx]
        if unknown:
            raise ValueError(f"{dataset}: {dir_path} has class folders that the training split lacks: "
                             f"{unknown[:5]}{' ...' if len(unknown) > 5 else ''}")
        classes = sorted(class_to_idx, key=class_to_idx.get)
    items: list[tuple[str, int]] = []
    for c in class_dirs:
        label = class_to_idx[c]
        for folder, subdirs, files in os.walk(os.path.join(dir_path, c), followlinks=True):
            subdirs.sort()
            items += [(os.path.join(folder, f), label) for f in sorted(files) if is_image_file(f)]
    return items, classes


def list_image_files(source: str, *, what: str = "image source") -> tuple[list[str], list[str]]:
    """``(paths to read, names to record)`` of ``source``: a folder, searched recursively for
    images (sorted; names relative to the folder), or a text file with one path per line
    (``#`` comments and blank lines skipped; a relative path that does not exist from the working
    directory is taken relative to the list file). ``what`` names the source in errors; a missing
    source raises :class:`~cdnet_reid.utils.file_io.InputFileNotFoundError`."""
    if os.path.isdir(source):
        found = sorted(os.path.join(root, f) for root, _, files in os.walk(source) for f in files
                       if is_image_file(f))
        return found, [os.path.relpath(p, source) for p in found]
    if not os.path.isfile(source):
        raise InputFileNotFoundError(f"{what} {source}: no such folder or list file")
    base = os.path.dirname(os.path.abspath(source))
    paths = []
    with open(source, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not os.path.isabs(line) and not os.path.exists(line):
                line = os.path.join(base, line)
            paths.append(line)
    return paths, list(paths)

