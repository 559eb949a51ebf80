"""Distributed runs end as one process would: status 0, 75 after SIGTERM (with the interrupted
checkpoint), 2 with one ``error:`` line for a user error met by any process, and one line naming
a process that stopped answering (``--dist-timeout``); the process group is torn down cleanly."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from tiny import tiny_opts

from cdnet_reid.engine.launch import _backend, _cleanup, _set_cuda_device
from cdnet_reid.utils import comm
from cdnet_reid.utils.checkpoint import read_checkpoint

SCRIPT = str(Path(__file__).resolve().parent / "tiny_train_net.py")
RANK1_ERROR = '''import os
from cdnet_reid.config import ConfigError


def add_rank1_error_config(cfg):
    if os.environ.get("LOCAL_RANK") == "1":
        raise ConfigError("a user error met by rank 1 only")
'''


def _start(args, cwd):
    return subprocess.Popen([sys.executable, SCRIPT, "--num-gpus", "2", "--dist-url", "auto", *args],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def _until(proc, text):
    """Lines of ``proc`` up to the first one containing ``text``."""
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError("".join(lines[-50:]))


def test_the_cached_cpu_group_is_released_with_the_process_group(tmp_path):
    """A cached group kept its gloo thread alive into interpreter shutdown (SIGABRT at exit)."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        comm._cpu_group()
        assert comm._cpu_group.cache_info().currsize == 1
    finally:
        _cleanup()
    assert not dist.is_initialized() and comm._cpu_group.cache_info().currsize == 0


def test_the_backend_serves_cpu_tensors_on_a_gpu_machine_and_each_process_finds_its_gpu(monkeypatch):
    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # one GPU given to each process
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    assert _backend() == "cpu:gloo,cuda:nccl"
    _set_cuda_device(3)
    assert chosen == [0]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _backend() == "gloo"


@pytest.mark.slow
def test_the_timeout_is_a_documented_flag():
    out = subprocess.run([sys.executable, SCRIPT, "--help"], capture_output=True, text=True).stdout
    assert "--dist-timeout SECONDS" in out and "no sign of life" in " ".join(out.split())
    bad = subprocess.run([sys.executable, SCRIPT, "--dist-timeout", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--dist-timeout" in bad.stderr


@pytest.mark.slow
def test_a_user_error_on_rank_1_is_one_line_and_status_2(tmp_path, data_root):
    (tmp_path / "rank1_error.py").write_text(RANK1_ERROR)
    proc = _start(["--import-module", str(tmp_path / "rank1_error.py"),
                   *tiny_opts(tmp_path / "run", data_root)], tmp_path)
    out = proc.stdout.read()
    assert proc.wait(timeout=300) == 2, out[-3000:]
    assert [line for line in out.splitlines() if line.startswith("error:")] == \
        ["error: a user error met by rank 1 only"]
    assert "Traceback" not in out and "terminate called" not in out


@pytest.mark.slow
def test_sigterm_stops_every_process_with_status_75_and_a_checkpoint(tmp_path, data_root):
    proc = _start([*tiny_opts(tmp_path, data_root), "SOLVER.MAX_EPOCH", "1000", "TEST.EVAL_PERIOD", "0"],
                  tmp_path)
    lines = _until(proc, " iter: 4/")
    proc.send_signal(signal.SIGTERM)
    out = "".join(lines) + proc.stdout.read()
    assert proc.wait(timeout=120) == 75, out[-3000:]
    assert "Stopped by SIGTERM after iteration" in out and "Traceback" not in out
    assert read_checkpoint(str(tmp_path / "model_interrupted.pth"))["iteration"] >= 4
    assert (tmp_path / "last_checkpoint").read_text() == "model_interrupted.pth"


def _workers(parent: int):
    """The pids of the spawned workers of ``parent``, by rank (spawned in rank order)."""
    kids = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True).stdout.split()
    return sorted(int(k) for k in kids if "spawn_main" in Path(f"/proc/{k}/cmdline").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("silent_rank", [1, 0])
def test_a_stopped_process_is_named_within_the_timeout(tmp_path, data_root, silent_rank):
    proc = _start(["--dist-timeout", "4", *tiny_opts(tmp_path, data_root), "SOLVER.MAX_EPOCH", "1000",
                   "TEST.EVAL_PERIOD", "0"], tmp_path)
    lines = _until(proc, " iter: 3/")
    workers = _workers(proc.pid)
    assert len(workers) == 2
    os.kill(workers[silent_rank], signal.SIGSTOP)
    start = time.monotonic()
    try:
        out = "".join(lines) + proc.stdout.read()
        status = proc.wait(timeout=120)
    finally:
        for pid in workers:
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
    assert status == 1, out[-3000:]
    assert time.monotonic() - start < 60  # the timeout (4 s) and a few heartbeats, not 30 minutes
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"rank {silent_rank} showed no sign of life for 4 s" in errors[0], errors
    assert "Traceback" not in out
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)  # none left behind


@pytest.mark.slow
def test_under_torchrun_every_process_ends_with_the_first_failure(tmp_path, data_root):
    """No launching process sees both: rank 0, whose next collective fails when rank 1 has gone,
    ends with rank 1's one-line user error (status 2) too, not with "connection closed" (or is
    stopped by torchrun first)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "rank1_error.py").write_text(RANK1_ERROR)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
         str(port), SCRIPT, "--import-module", str(tmp_path / "rank1_error.py"),
         *tiny_opts(tmp_path / "run", data_root)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    out = proc.stdout + proc.stderr
    # torchrun stops the other process once one has failed: each ends with the one line, or
    # before it ends by itself
    assert out.count("error: a user error met by rank 1 only") >= 1, out[-3000:]
    assert "exitcode  : 2" in out and "exitcode  : 1 " not in out, out[-3000:]
    assert "Connection closed" not in out and "RuntimeError" not in out, out[-3000:]
