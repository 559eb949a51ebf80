"""Distributed helpers that degrade gracefully to a single process.

Every function works whether or not ``torch.distributed`` is initialised, so the whole engine runs
in a plain single-process test. Collectives use ``*_object`` variants of torch.distributed.
"""

import functools
import gc
from typing import Any

import numpy as np
import torch
import torch.distributed as dist


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def get_rank() -> int:
    return dist.get_rank() if is_dist() else 0


def is_main_process() -> bool:
    return get_rank() == 0


def synchronize() -> None:
    """Barrier across all processes; a no-op without distributed."""
    if get_world_size() > 1:
        if dist.get_backend() == dist.Backend.NCCL and torch.cuda.is_available():
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


@functools.lru_cache
def _cpu_group():
    """A group for CPU-tensor and object collectives: the default group when it has a gloo
    backend (``gloo``, ``cpu:gloo,cuda:nccl``), else a new gloo group beside NCCL. Cached until
    :func:`release_groups`."""
    if dist.get_backend() == dist.Backend.NCCL:
        return dist.new_group(backend="gloo")
    return dist.group.WORLD


def release_groups() -> None:
    """Drop the cached group of :func:`_cpu_group` and collect it. Call it when the process group
    is destroyed: a group still referenced keeps its gloo worker thread alive into interpreter
    shutdown, where it can abort the process (``terminate called without an active exception``)."""
    _cpu_group.cache_clear()
    gc.collect()


def all_gather(data: Any) -> list[Any]:
    """Gather a picklable object from every rank; returns the list on every rank."""
    if get_world_size() == 1:
        return [data]
    out: list[Any] = [None] * get_world_size()
    dist.all_gather_object(out, data, group=_cpu_group())
    return out


def gather(data: Any, dst: int = 0) -> list[Any]:
    """Gather a picklable object onto rank ``dst``; other ranks receive ``[]``."""
    if get_world_size() == 1:
        return [data]
    out = [None] * get_world_size() if get_rank() == dst else None
    dist.gather_object(data, out, dst=dst, group=_cpu_group())
    return out if get_rank() == dst else []


def all_reduce_max(value: int) -> int:
    """The largest of every rank's integer ``value`` (a cheap tensor collective)."""
    if get_world_size() == 1:
        return int(value)
    t = torch.tensor([int(value)], dtype=torch.int64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=_cpu_group())
    return int(t.item())


def raise_if_any(error: BaseException | None) -> None:
    """Collective: every rank passes the error it met (or None); if any rank met one, every rank
    raises the first (by rank), so that all processes stop together with the same message."""
    errors = all_gather(error) if get_world_size() > 1 else [error]
    first = next((e for e in errors if e is not None), None)
    if first is not None:
        raise first


def shared_random_seed() -> int:
    """A random seed drawn on rank 0 and shared by all ranks."""
    return int(all_gather(int(np.random.randint(2 ** 31)))[0])
