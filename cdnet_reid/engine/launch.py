"""Start one process per device (and per machine), or join a torchrun launch.

* ``launch(main, num_gpus_per_machine, num_machines, machine_rank, dist_url)`` spawns the local
  processes itself. Each initialises the process group (gloo for CPU tensors, plus NCCL for CUDA
  tensors where CUDA is present), **sets its CUDA device before any collective**, then calls
  ``main(*args)``. On a CPU-only machine ``num_gpus_per_machine`` is the number of gloo processes.
* Under ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` in the environment) the process group
  is initialised from ``env://`` and ``main`` runs in the current process.

A spawned job ends as one process would: :func:`launch` returns when every process returned, and
otherwise raises in the launching process the exception that ended the job first (the one that
the others' failures follow from), with its process's traceback as the cause. SIGTERM and SIGINT
sent to the launching process reach every worker (a training run stops at the end of the
iteration and writes a checkpoint).

Every process of a job watches the others (:class:`_Watchdog`): a process that shows no sign of
life for ``timeout`` (stopped, hung in the kernel, its machine gone) stops every other process,
each with one line naming it (:class:`SilentProcessError`).
"""

import logging
import multiprocessing.connection
import os
import pickle
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ..utils import comm

logger = logging.getLogger(__name__)

#: How long a process may show no sign of life before the others stop (``--dist-timeout``).
DEFAULT_TIMEOUT = timedelta(minutes=3)
#: Limit of one collective operation (torch's default): a live process may compute alone (a long
#: evaluation on the main process) for this long while the others wait for it.
COLLECTIVE_TIMEOUT = timedelta(minutes=30)
#: Exit status of a process that stops because another one fell silent.
EXIT_SILENT_PEER = 1

__all__ = ["launch", "DEFAULT_TIMEOUT", "ProcessFailedError", "SilentProcessError"]


class SilentProcessError(RuntimeError):
    """A process of the job showed no sign of life for longer than the timeout."""


class ProcessFailedError(RuntimeError):
    """A worker process ended without reporting an exception (killed, crashed), or with one that
    cannot be sent to the launching process (its traceback is the message)."""


class _RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, shown as the cause of its re-raise."""

    def __init__(self, text: str):
        super().__init__(text)

    def __str__(self):
        return self.args[0]


def _find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _backend() -> str:
    """gloo for CPU tensors always (a ``MODEL.DEVICE cpu`` run on a GPU machine, object
    collectives), NCCL for CUDA tensors where CUDA is present."""
    return "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"


def _set_cuda_device(local_rank: int) -> None:
    """Before any collective, or NCCL guesses the device. A launcher that gives each process one
    GPU (``CUDA_VISIBLE_DEVICES``) leaves it device 0 whatever its local rank."""
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank % torch.cuda.device_count())


def _as_timedelta(timeout: timedelta | float) -> timedelta:
    timeout = timeout if isinstance(timeout, timedelta) else timedelta(seconds=float(timeout))
    if timeout.total_seconds() <= 0:
        raise ValueError(f"the distributed timeout must be positive, got {timeout.total_seconds()} s")
    return timeout


def _launched_by_torchrun() -> bool:
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def launch(main_func: Callable, num_gpus_per_machine: int, num_machines: int = 1,
           machine_rank: int = 0, dist_url: str = "auto", args: Sequence[Any] = (),
           timeout: timedelta | float = DEFAULT_TIMEOUT):
    """Run ``main_func(*args)`` in every process of the job (see the module docstring). Returns
    what ``main_func`` returns when it runs in this process (one process, or torchrun).
    ``timeout`` (a timedelta or seconds): how long a process may show no sign of life before
    every other process stops with :class:`SilentProcessError`."""
    timeout = _as_timedelta(timeout)
    if _launched_by_torchrun():
        _init_process_group("env://", None, None)
        return _run_watched(main_func, args, timeout)
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
    with tempfile.TemporaryDirectory(prefix="cdnet_reid_launch_") as reports:
        context = mp.start_processes(_distributed_worker, nprocs=num_gpus_per_machine,
                                     start_method="spawn", join=False,
                                     args=(main_func, world_size, num_gpus_per_machine, machine_rank,
                                           dist_url, tuple(args), timeout, reports))
        _wait_for_workers(context.processes, reports, machine_rank * num_gpus_per_machine, timeout)


def _wait_for_workers(processes: list, reports: str, first_rank: int, timeout: timedelta) -> None:
    """Wait for every worker while forwarding SIGTERM/SIGINT to them; raise the failure that ended
    the job first. Once one worker failed, the others get ``timeout`` to end (their next collective
    fails at once); those still running then, or stopped, are killed."""
    def forward(signum, _frame):
        # SIGINT is forwarded as SIGTERM: a Ctrl-C in a terminal reaches the workers too, and a
        # second SIGINT would interrupt them at once instead of after the iteration
        for proc in processes:
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)

    handlers = {}
    if threading.current_thread() is threading.main_thread():
        handlers = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    failed_at = None
    try:
        while any(p.is_alive() for p in processes):
            multiprocessing.connection.wait([p.sentinel for p in processes if p.is_alive()], timeout=0.2)
            if failed_at is None and any(p.exitcode not in (None, 0) for p in processes):
                failed_at = time.monotonic()
            reported = _read_reports(reports)
            silent = any(isinstance(r["error"], SilentProcessError) for r in reported)
            if failed_at is not None and (silent or time.monotonic() - failed_at > timeout.total_seconds()):
                for proc in processes:
                    if proc.is_alive():
                        proc.kill()  # SIGKILL also ends a stopped process
    finally:
        for proc in processes:
            proc.join()
        for s, h in handlers.items():
            signal.signal(s, h)
    reported = _read_reports(reports)
    if reported:
        first = min(reported, key=lambda r: (r["time"], r["rank"]))
        error = first["error"]
        raise error from _RemoteTraceback(f"\nIn the process of rank {first['rank']}:\n{first['traceback']}")
    for local_rank, proc in enumerate(processes):
        if proc.exitcode != 0:
            how = (f"was killed by {signal.Signals(-proc.exitcode).name}" if proc.exitcode < 0
                   else f"ended with status {proc.exitcode}")
            raise ProcessFailedError(f"the process of rank {first_rank + local_rank} {how}")


def _read_reports(folder: str) -> list[dict]:
    out = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(".pkl"):
            with open(os.path.join(folder, name), "rb") as f:
                report = pickle.load(f)
            try:  # its class may live in a module that only the worker imported
                report["error"] = pickle.loads(report["error"])
            except Exception:  # noqa: BLE001 - then it is sent as its traceback
                report["error"] = ProcessFailedError(
                    f"the process of rank {report['rank']} failed:\n{report['traceback']}")
            out.append(report)
    return out


def _write_report(folder: str, rank: int, error: BaseException) -> None:
    """The exception that ended worker ``rank``, for the launching process (atomic rename; the
    first report of a process stays: it was written before the process group was torn down, so
    before the other processes' failures that follow from it)."""
    if os.path.exists(os.path.join(folder, f"rank{rank}.pkl")):
        return
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    try:
        data = pickle.dumps(error)
        pickle.loads(data)
    except Exception:  # noqa: BLE001 - an exception that cannot travel is sent as its traceback
        data = pickle.dumps(ProcessFailedError(f"the process of rank {rank} failed:\n{text}"))
    report = {"time": time.time(), "rank": rank, "error": data, "traceback": text}
    tmp = os.path.join(folder, f".rank{rank}.tmp")
    with open(tmp, "wb") as f:
        pickle.dump(report, f)
    os.replace(tmp, os.path.join(folder, f"rank{rank}.pkl"))


def _distributed_worker(local_rank, main_func, world_size, num_gpus_per_machine, machine_rank,
                        dist_url, args, timeout, reports):
    global_rank = machine_rank * num_gpus_per_machine + local_rank
    os.environ["LOCAL_RANK"] = str(local_rank)
    os.environ["LOCAL_WORLD_SIZE"] = str(num_gpus_per_machine)
    try:
        _init_process_group(dist_url, world_size, global_rank)
        _run_watched(main_func, args, timeout, report=lambda e: _write_report(reports, global_rank, e))
    except BaseException as e:  # noqa: BLE001 - every ending is reported to the launching process
        try:
            _write_report(reports, global_rank, e)
        except OSError:  # the launching process is gone (and its folder with it)
            pass
        sys.exit(1)


def _init_process_group(init_method: str, world_size: int | None, rank: int | None) -> None:
    _set_cuda_device(int(os.environ.get("LOCAL_RANK", 0)))
    kwargs = {} if world_size is None else dict(world_size=world_size, rank=rank)
    try:
        dist.init_process_group(backend=_backend(), init_method=init_method,
                                timeout=COLLECTIVE_TIMEOUT, **kwargs)
    except Exception as e:
        raise RuntimeError(f"process group initialisation failed at {init_method}: {e}") from e
    comm.synchronize()


def _run_watched(main_func: Callable, args: Sequence[Any], timeout: timedelta,
                 report: Callable[[BaseException], None] | None = None):
    """``main_func(*args)`` in an initialised process group, watched by a :class:`_Watchdog`; the
    processes leave together (a barrier) when it returns, then the group is torn down.

    An exception is agreed first (:class:`_FirstFailure`): every process raises the one that
    ended the job first, also under torchrun and on other machines, where no launching process
    sees them all. It goes to ``report`` before the teardown makes the other processes fail."""
    watchdog = _Watchdog(timeout, report)
    failure = _FirstFailure(watchdog.store, comm.get_rank(), comm.get_world_size())
    watchdog.start()
    try:
        result = main_func(*args)
        comm.synchronize()  # every collective of every process has completed
        return result
    except BaseException as e:
        first = failure.agree(e)
        if report is not None:
            report(first)
        if first is not e:
            raise first from e
        raise
    finally:
        watchdog.stop()
        _cleanup()
        failure.linger(timeout)


class _FirstFailure:
    """The exception that ended a job first, kept in the job's key-value store: the first process
    to fail writes its exception there before it tears its process group down (which makes the
    others fail); a process that fails later raises the stored one instead of its own (a
    "connection closed" that only follows from it). The process hosting the store lingers a few
    seconds after its failure, until the others have read it."""

    KEY, READ = "cdnet_reid/first_failure", "cdnet_reid/first_failure_read"

    def __init__(self, store, rank: int, world: int):
        self.store, self.rank, self.world = (store if world > 1 else None), rank, world
        self.failed = False

    def agree(self, error: BaseException) -> BaseException:
        if self.store is None:
            return error
        self.failed = True
        try:
            data = pickle.dumps(error)
            pickle.loads(data)
        except Exception:  # noqa: BLE001 - an exception that cannot travel stays local
            data = b""
        try:
            stored = self.store.compare_set(self.KEY, "", data) if data else (
                self.store.get(self.KEY) if self.store.check([self.KEY]) else b"")
            self.store.add(self.READ, 1)
            if stored and stored != data:
                first = pickle.loads(stored)
                if isinstance(first, BaseException):
                    return first
        except Exception:  # noqa: BLE001 - the store's host has ended: keep this process's own
            pass
        return error

    def linger(self, timeout: timedelta) -> None:
        """On the process that hosts the store (rank 0 of a tcp:// job) after a failure: wait
        until every process has read the first failure, at most 10 s."""
        if not self.failed or self.rank != 0 or self.store is None:
            return
        end = time.monotonic() + min(10.0, timeout.total_seconds())
        try:
            while self.store.add(self.READ, 0) < self.world and time.monotonic() < end:
                time.sleep(0.05)
        except Exception:  # noqa: BLE001 - nothing more to wait for
            pass


def _cleanup() -> None:
    """Tear the process group down. The cached CPU group is released and collected with it, so no
    gloo thread outlives it into interpreter shutdown."""
    if dist.is_initialized():
        dist.destroy_process_group()
    comm.release_groups()


class _Watchdog:
    """Each process counts its heartbeat in the job's key-value store and reads the others'
    (a "beat" thread); a process whose count does not move for ``timeout``, or a store that does
    not answer for that long (its host, the rank-0 process, is silent: a store call then blocks),
    ends this process with one line naming the silent rank (a "watch" thread).

    Threads, so that a live process computing alone for a long time (the main process's
    evaluation) is never taken for a silent one."""

    def __init__(self, timeout: timedelta, on_silence: Callable[[BaseException], None] | None):
        self.timeout = timeout.total_seconds()
        self.period = min(5.0, max(0.1, self.timeout / 10))
        self.on_silence = on_silence
        self._halt = threading.Event()
        self.store = dist.distributed_c10d._get_default_store() if dist.is_initialized() else None
        self.rank, self.world = comm.get_rank(), comm.get_world_size()
        now = time.monotonic()
        self._seen = {r: (-1, now) for r in range(self.world) if r != self.rank}
        self._store_answered = now
        self._threads = [threading.Thread(target=self._beat, name="cdnet_reid-heartbeat", daemon=True),
                         threading.Thread(target=self._watch, name="cdnet_reid-watchdog", daemon=True)]

    def start(self) -> None:
        if self.store is not None and self.world > 1:
            for t in self._threads:
                t.start()

    def stop(self) -> None:
        self._halt.set()
        for t in self._threads:
            if t.is_alive():
                t.join(timeout=self.period + 1)

    def _beat(self) -> None:
        while not self._halt.wait(self.period):
            try:
                self.store.add(f"cdnet_reid/heartbeat/{self.rank}", 1)
                for r, (count, _) in list(self._seen.items()):
                    value = self.store.add(f"cdnet_reid/heartbeat/{r}", 0)
                    if value != count:
                        self._seen[r] = (value, time.monotonic())
                self._store_answered = time.monotonic()
            except Exception:  # noqa: BLE001 - the store's host has ended: its process fails too
                return

    def _watch(self) -> None:
        while not self._halt.wait(self.period):
            now = time.monotonic()
            if now - self._store_answered > self.timeout and self.rank != 0:
                silent = {0}  # the store lives in the rank-0 process (tcp://, spawned jobs)
            else:
                silent = {r for r, (_, since) in self._seen.items() if now - since > self.timeout}
            if silent and not self._halt.is_set():
                self._fail(sorted(silent))

    def _fail(self, silent: list[int]) -> None:
        who = ", ".join(str(r) for r in silent)
        error = SilentProcessError(
            f"the process{'es' if len(silent) > 1 else ''} of rank {who} showed no sign of life for "
            f"{self.timeout:g} s (--dist-timeout): stopped, hung or lost; every process stops "
            f"(seen by rank {self.rank})")
        if self.on_silence is not None:
            try:
                self.on_silence(error)
            except Exception:  # noqa: BLE001 - the line below is printed all the same
                pass
        else:
            print(f"error: {error}", file=sys.stderr, flush=True)
        logger.error("%s", error)
        for h in logging.getLogger("cdnet_reid").handlers:
            h.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_SILENT_PEER)  # the main thread may be blocked in a collective
