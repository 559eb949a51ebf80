"""Environment helpers: devices, seeding, the CPU allocator, and a table describing the software
environment."""

import ctypes
import functools
import logging
import os
import platform
import random
import sys

import numpy as np
import torch

logger = logging.getLogger(__name__)

#: Environment variable that controls :func:`setup_cpu_allocator`: ``default`` (or ``off``, ``0``,
#: ``system``) leaves the C allocator alone; ``heap`` (or unset) keeps big blocks in the heap.
ALLOCATOR_ENV = "CDNET_ALLOCATOR"
_DISABLED = ("default", "off", "0", "false", "no", "system", "none")

# glibc <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4

#: Default trim threshold of :func:`setup_cpu_allocator`: free memory at the top of the heap is
#: given back to the system only beyond this (1 GiB).
DEFAULT_TRIM_THRESHOLD = 1 << 30

_allocator_state: str | None = None


def setup_cpu_allocator(trim_threshold: int = DEFAULT_TRIM_THRESHOLD) -> str:
    """Make glibc keep PyTorch's big CPU blocks (activations, gradients) in the heap.

    By default glibc serves every block above its mmap threshold (at most 32 MB) with a fresh
    ``mmap`` and unmaps it on free, so every forward / backward pass of a CNN at a useful batch
    size page-faults its activations in again: on 2 cores that is up to half of the time, spent
    in the kernel. ``mallopt(M_MMAP_MAX, 0)`` serves them from the heap instead and a high
    ``M_TRIM_THRESHOLD`` (``trim_threshold`` bytes) keeps freed memory there for the next pass.

    * Linux with glibc only; elsewhere (or when ``mallopt`` is missing, e.g. musl) a no-op;
    * a no-op when the environment variable ``CDNET_ALLOCATOR`` is ``default`` (or ``off``);
    * a no-op when tcmalloc / jemalloc is preloaded (``LD_PRELOAD``): they already keep blocks;
    * idempotent: only the first call of a process acts, later calls return its result.

    The settings are process-wide and inherited by forked data-loader workers. Returns (and logs)
    a one-line description of what was done, which :func:`collect_env_info` also reports.
    """
    global _allocator_state
    if _allocator_state is not None:
        return _allocator_state
    mode = os.environ.get(ALLOCATOR_ENV, "heap").strip().lower()
    preload = os.environ.get("LD_PRELOAD", "")
    if mode in _DISABLED:
        state = f"default (disabled by {ALLOCATOR_ENV}={os.environ[ALLOCATOR_ENV]})"
    elif mode != "heap":
        raise ValueError(f"{ALLOCATOR_ENV} must be 'heap' or 'default', got {os.environ[ALLOCATOR_ENV]!r}")
    elif "tcmalloc" in preload or "jemalloc" in preload:
        state = f"default (LD_PRELOAD={preload})"
    elif not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        state = f"default (not Linux/glibc: {sys.platform} {platform.libc_ver()[0] or 'unknown libc'})"
    else:
        state = _glibc_keep_big_blocks(int(trim_threshold))
    _allocator_state = state
    logger.info("CPU allocator: %s", state)
    return state


def _glibc_keep_big_blocks(trim_threshold: int) -> str:
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError) as e:
        return f"default (no mallopt: {e})"
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    trim_threshold = min(trim_threshold, 2 ** 31 - 1)
    # mallopt returns 1 on success, 0 on error
    if mallopt(_M_MMAP_MAX, 0) != 1 or mallopt(_M_TRIM_THRESHOLD, trim_threshold) != 1:
        return "default (mallopt failed)"
    return f"glibc heap: mallopt(M_MMAP_MAX=0, M_TRIM_THRESHOLD={trim_threshold >> 20} MiB)"


def cpu_allocator_state() -> str:
    """What :func:`setup_cpu_allocator` did in this process (or that it was not called)."""
    return _allocator_state or "default (setup_cpu_allocator not called)"


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available else CPU; otherwise ``torch.device(name)`` (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise RuntimeError(f"MODEL.DEVICE={name!r} is not a device (cpu, cuda, cuda:N, auto)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"MODEL.DEVICE={name!r} but CUDA is not available; use 'cpu' or 'auto'")
    return device


def seed_all_rng(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)


def collect_env_info() -> str:
    """A table of the versions and hardware that matter for reproducing a run."""
    from tabulate import tabulate

    from ..version import __version__

    rows = [("sys.platform", sys.platform), ("Python", sys.version.replace("\n", " ")),
            ("platform", platform.platform()), ("cdnet_reid", __version__),
            ("numpy", np.__version__), ("PyTorch", torch.__version__),
            ("PyTorch debug build", torch.version.debug), ("CPU threads", torch.get_num_threads()),
            ("CPU allocator", cpu_allocator_state())]
    for mod in ("torchvision", "fvcore", "iopath", "yacs", "cv2", "PIL"):
        try:
            m = __import__(mod)
            rows.append((mod, getattr(m, "__version__", "unknown")))
        except ImportError:
            rows.append((mod, "not installed"))
    rows.append(("CUDA available", torch.cuda.is_available()))
    if torch.cuda.is_available():
        rows.append(("CUDA", torch.version.cuda))
        rows.append(("cuDNN", torch.backends.cudnn.version()))
        for i in range(torch.cuda.device_count()):
            rows.append((f"GPU {i}", torch.cuda.get_device_name(i)))
    return tabulate(rows)


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    """The first processor's ``key: value`` lines of ``/proc/cpuinfo`` (empty where there is none)."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                info[key.strip().lower()] = value.strip()
    except OSError:
        pass
    return info


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`)."""
    return _cpuinfo().get("model name") or platform.processor() or platform.machine() or "unknown"


def cpu_flags() -> frozenset:
    """The CPU's feature flags (``/proc/cpuinfo``; empty where it cannot be read)."""
    return frozenset(_cpuinfo().get("flags", "").split())
