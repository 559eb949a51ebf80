"""Distributed helpers that degrade gracefully to a single process.

Every function works whether or not ``torch.distributed`` is initialised, so the whole engine runs
in a plain single-process test. Collectives use ``*_object`` variants of torch.distributed.
"""

import functools
from typing import Any, List

import numpy as np
import torch
import torch.distributed as dist

_LOCAL_PROCESS_GROUP = None  # set by engine.launch when several machines are used


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def get_rank() -> int:
    return dist.get_rank() if is_dist() else 0


def get_local_rank() -> int:
    """Rank of this process within its machine (0 without distributed)."""
    if not is_dist():
        return 0
    if _LOCAL_PROCESS_GROUP is not None:
        return dist.get_rank(group=_LOCAL_PROCESS_GROUP)
    import os
    return int(os.environ.get("LOCAL_RANK", get_rank()))


def get_local_size() -> int:
    if not is_dist():
        return 1
    if _LOCAL_PROCESS_GROUP is not None:
        return dist.get_world_size(group=_LOCAL_PROCESS_GROUP)
    import os
    return int(os.environ.get("LOCAL_WORLD_SIZE", get_world_size()))


def is_main_process() -> bool:
    return get_rank() == 0


def synchronize() -> None:
    """Barrier across all processes; a no-op without distributed."""
    if get_world_size() > 1:
        if dist.get_backend() == dist.Backend.NCCL and torch.cuda.is_available():
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


@functools.lru_cache()
def _cpu_group():
    """A gloo group for object collectives (works alongside NCCL)."""
    if dist.get_backend() == dist.Backend.NCCL:
        return dist.new_group(backend="gloo")
    return dist.group.WORLD


def all_gather(data: Any) -> List[Any]:
    """Gather a picklable object from every rank; returns the list on every rank."""
    if get_world_size() == 1:
        return [data]
    out: List[Any] = [None] * get_world_size()
    dist.all_gather_object(out, data, group=_cpu_group())
    return out


def gather(data: Any, dst: int = 0) -> List[Any]:
    """Gather a picklable object onto rank ``dst``; other ranks receive ``[]``."""
    if get_world_size() == 1:
        return [data]
    out = [None] * get_world_size() if get_rank() == dst else None
    dist.gather_object(data, out, dst=dst, group=_cpu_group())
    return out if get_rank() == dst else []


def shared_random_seed() -> int:
    """A random seed drawn on rank 0 and shared by all ranks."""
    return int(all_gather(int(np.random.randint(2 ** 31)))[0])


def reduce_dict(values: dict, average: bool = True) -> dict:
    """Reduce a dict of scalar tensors onto rank 0 (averaged by default)."""
    world = get_world_size()
    if world < 2:
        return values
    with torch.no_grad():
        names = sorted(values)
        stacked = torch.stack([values[k] for k in names])
        dist.reduce(stacked, dst=0)
        if get_rank() == 0 and average:
            stacked /= world
    return dict(zip(names, stacked))
