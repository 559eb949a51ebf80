"""setup_cpu_allocator: harmless (idempotent, a no-op when disabled or off glibc), reported in the
environment table, and it does keep big blocks in the heap (no page faults on re-allocation)."""

import json
import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tiny import tiny_opts

from cdnet_reid.utils import env

ROOT = Path(__file__).resolve().parents[1]
GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# Runs in a fresh process (mallopt is process-wide): counts the calls that reach mallopt.
PROBE = textwrap.dedent("""
    import json, sys
    from cdnet_reid.utils import env
    calls = []
    real = env._glibc_keep_big_blocks
    env._glibc_keep_big_blocks = lambda t: calls.append(t) or real(t)
    first, second = env.setup_cpu_allocator(), env.setup_cpu_allocator()
    row = [l for l in env.collect_env_info().splitlines() if l.startswith("CPU allocator")]
    print(json.dumps({"first": first, "second": second, "calls": len(calls), "row": row}))
""")


def _probe(allocator=None):
    environ = {k: v for k, v in os.environ.items() if k != env.ALLOCATOR_ENV}
    if allocator is not None:
        environ[env.ALLOCATOR_ENV] = allocator
    environ["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", PROBE], env=environ, capture_output=True, text=True,
                         timeout=300, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_setup_is_idempotent_and_reported():
    r = _probe()
    assert r["first"] == r["second"] and r["calls"] == (1 if GLIBC else 0)
    if GLIBC:
        assert r["first"].startswith("glibc heap: mallopt(M_MMAP_MAX=0, M_TRIM_THRESHOLD=")
    assert len(r["row"]) == 1 and r["first"] in r["row"][0]


@pytest.mark.slow
@pytest.mark.parametrize("value", ["default", "off", "DEFAULT"])
def test_disabled_by_the_environment_variable(value):
    r = _probe(value)
    assert r["calls"] == 0
    assert r["first"] == r["second"] == f"default (disabled by {env.ALLOCATOR_ENV}={value})"
    assert r["first"] in r["row"][0]


def test_not_called_and_bad_values(monkeypatch):
    monkeypatch.setattr(env, "_allocator_state", None)
    assert env.cpu_allocator_state() == "default (setup_cpu_allocator not called)"
    monkeypatch.setenv(env.ALLOCATOR_ENV, "tcmalloc-please")
    with pytest.raises(ValueError, match=env.ALLOCATOR_ENV):
        env.setup_cpu_allocator()


def test_no_op_off_glibc_and_under_a_preloaded_allocator(monkeypatch):
    def never(_):
        raise AssertionError("mallopt must not be called")

    monkeypatch.setattr(env, "_glibc_keep_big_blocks", never)
    monkeypatch.delenv(env.ALLOCATOR_ENV, raising=False)
    monkeypatch.setattr(env, "_allocator_state", None)
    monkeypatch.setattr(env.sys, "platform", "darwin")
    assert env.setup_cpu_allocator().startswith("default (not Linux/glibc: darwin")
    monkeypatch.setattr(env, "_allocator_state", None)
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/libtcmalloc.so.4")
    assert env.setup_cpu_allocator() == "default (LD_PRELOAD=/usr/lib/libtcmalloc.so.4)"


# Allocates, fills and frees a 64 MiB tensor 30 times; prints the minor page faults of the last 10.
FAULTS = textwrap.dedent("""
    import resource, torch
    from cdnet_reid.utils.env import setup_cpu_allocator
    setup_cpu_allocator()
    counts = []
    for _ in range(30):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t = torch.ones(16 << 20)
        del t
        counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(sum(counts[-10:]))
""")


@pytest.mark.slow
@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_big_blocks_stay_in_the_heap():
    def faults(allocator):
        environ = {**os.environ, env.ALLOCATOR_ENV: allocator, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        out = subprocess.run([sys.executable, "-c", FAULTS], env=environ, capture_output=True,
                             text=True, timeout=300, check=True).stdout
        return int(out.split()[-1])

    default, heap = faults("default"), faults("heap")
    pages = 10 * (64 << 20) // os.sysconf("SC_PAGE_SIZE")
    # glibc's default maps each block afresh (every page faults in again); the heap keeps them
    assert default > pages // 2, default
    assert heap < pages // 20, heap


@pytest.mark.slow
def test_every_run_and_tool_sets_it_up(tmp_path, data_root):
    """A training run records the allocator in env.txt (engine.default_setup), and a tool sets it up
    too (engine.defaults.setup_tool_cfg): both in fresh processes, with the variable unset."""
    expected = "glibc heap: mallopt(M_MMAP_MAX=0" if GLIBC else "default ("
    environ = {k: v for k, v in os.environ.items() if k != env.ALLOCATOR_ENV}
    opts = tiny_opts(tmp_path / "run", data_root) + ["SOLVER.MAX_EPOCH", "1", "TEST.EVAL_PERIOD", "0"]
    subprocess.run([sys.executable, str(ROOT / "tests" / "tiny_train_net.py"), *opts], env=environ,
                   capture_output=True, text=True, timeout=300, check=True)
    rows = [r for r in (tmp_path / "run" / "env.txt").read_text().splitlines() if r.startswith("CPU allocator")]
    assert len(rows) == 1 and expected in rows[0], rows
    probe = ("import argparse, sys; sys.path.insert(0, 'tests'); import tiny; "
             "from cdnet_reid.engine.defaults import add_config_arguments, setup_tool_cfg; "
             "from cdnet_reid.utils.env import cpu_allocator_state; "
             "setup_tool_cfg(add_config_arguments(argparse.ArgumentParser()).parse_args([])); "
             "print(cpu_allocator_state())")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env={**environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=300, check=True).stdout
    assert expected in out.strip().splitlines()[-1], out
