"""Start one process per device (and per machine), or join a torchrun launch.

* ``launch(main, num_gpus_per_machine, num_machines, machine_rank, dist_url)`` spawns the local
  processes itself. Each initialises the process group (NCCL on CUDA, gloo on CPU), **sets its CUDA
  device before any collective**, creates the per-machine group, then calls ``main(*args)``.
  On a CPU-only machine ``num_gpus_per_machine`` is the number of gloo processes.
* Under ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` in the environment) the process group
  is initialised from ``env://`` and ``main`` runs in the current process.
"""

import logging
import os
import signal
import socket
from datetime import timedelta
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ..utils import comm

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = timedelta(minutes=30)

__all__ = ["launch", "DEFAULT_TIMEOUT"]


def _find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _backend() -> str:
    return "nccl" if torch.cuda.is_available() else "gloo"


def _launched_by_torchrun() -> bool:
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def launch(main_func: Callable, num_gpus_per_machine: int, num_machines: int = 1,
           machine_rank: int = 0, dist_url: str = "auto", args: Sequence[Any] = (),
           timeout: timedelta = DEFAULT_TIMEOUT):
    """Run ``main_func(*args)`` in every process of the job (see the module docstring). Returns
    what ``main_func`` returns when it runs in this process (one process, or torchrun)."""
    if _launched_by_torchrun():
        _init_from_env(timeout)
        try:
            return main_func(*args)
        finally:
            _cleanup()
    world_size = num_machines * num_gpus_per_machine
    if world_size <= 1:
        return main_func(*args)
    if torch.cuda.is_available() and num_gpus_per_machine > torch.cuda.device_count():
        raise ValueError(f"--num-gpus {num_gpus_per_machine} but only {torch.cuda.device_count()} "
                         "CUDA devices are visible")
    if dist_url == "auto":
        if num_machines != 1:
            raise ValueError("dist_url='auto' only works on one machine; give --dist-url "
                             "tcp://<address of machine 0>:<port> on every machine")
        dist_url = f"tcp://127.0.0.1:{_find_free_port()}"
    if num_machines > 1 and dist_url.startswith("file://"):
        logger.warning("file:// init may not work across machines; prefer tcp://")
    context = mp.start_processes(_distributed_worker, nprocs=num_gpus_per_machine,
                                 start_method="spawn", join=False,
                                 args=(main_func, world_size, num_gpus_per_machine, machine_rank,
                                       dist_url, tuple(args), timeout))
    # SIGTERM sent to this parent (SLURM, Kubernetes) reaches the workers, which checkpoint and stop
    def forward(signum, _frame):
        for proc in context.processes:
            if proc.is_alive():
                os.kill(proc.pid, signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        while not context.join():
            pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def _distributed_worker(local_rank, main_func, world_size, num_gpus_per_machine, machine_rank,
                        dist_url, args, timeout):
    global_rank = machine_rank * num_gpus_per_machine + local_rank
    os.environ["LOCAL_RANK"] = str(local_rank)
    os.environ["LOCAL_WORLD_SIZE"] = str(num_gpus_per_machine)
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)  # before any collective, or NCCL guesses the device
    try:
        dist.init_process_group(backend=_backend(), init_method=dist_url, world_size=world_size,
                                rank=global_rank, timeout=timeout)
    except Exception as e:
        raise RuntimeError(f"process group initialisation failed at {dist_url}: {e}") from e
    comm.synchronize()
    try:
        main_func(*args)
    finally:
        _cleanup()


def _init_from_env(timeout):
    local_rank = int(os.environ["LOCAL_RANK"])
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=_backend(), init_method="env://", timeout=timeout)
    comm.synchronize()


def _cleanup():
    if dist.is_initialized():
        dist.destroy_process_group()
