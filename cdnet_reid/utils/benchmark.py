"""Timing and memory measurement shared by the benchmarks: timed runs of a step, candidates timed
round-robin (so that a machine's slow spells hit all of them alike), and the process's memory."""

import os
import resource
import sys
import time
from collections.abc import Callable

import torch

__all__ = ["current_rss_mb", "measure", "peak_rss_mb", "round_robin", "synchronize"]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(step: Callable[[], object], images_per_step: int, device: torch.device, iters: int
            ) -> tuple[float, float, float]:
    """One timed run of ``iters`` calls: ``(images/s, user CPU s, system CPU s)`` (this process,
    all threads)."""
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    synchronize(device)
    elapsed = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return images_per_step * iters / elapsed, r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime


def round_robin(candidates: dict[str, object], images_per_step: int, device: torch.device, runs: int,
                iters: int) -> dict[str, list[tuple[float, float, float]]]:
    """``{name: [(rate, user, sys), ...]}``: run r of every candidate, then run r + 1, ...

    A candidate is a callable (one step, timed here by :func:`measure`) or an object with a
    ``run()`` method that times itself (e.g. a step in another process) and returns the same
    triple."""
    results = {name: [] for name in candidates}
    for _ in range(runs):
        for name, c in candidates.items():
            results[name].append(c.run() if hasattr(c, "run") else measure(c, images_per_step, device, iters))
    return results


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: ``VmHWM`` (Linux; unlike ``ru_maxrss`` it does
    not carry the parent's peak over ``exec``), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2 ** 20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, else KiB


def current_rss_mb() -> float:
    """This process's resident memory now, in MB (Linux ``/proc``; else the peak)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE / 2 ** 20
    except OSError:
        return peak_rss_mb()
