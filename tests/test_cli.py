"""The command line: a 2-process gloo run on CPU, then --eval-only on its checkpoint."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny import tiny_opts

from cdnet_reid.utils.checkpoint import read_checkpoint

SCRIPT = str(Path(__file__).resolve().parent / "tiny_train_net.py")


def _run(args, cwd):
    proc = subprocess.run([sys.executable, SCRIPT, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _table_row(log, dataset):
    """Numbers of the last results-table row of ``dataset`` in a log."""
    rows = [line for line in log.splitlines() if line.startswith(f"| {dataset}")]
    return [float(x) for x in re.findall(r"\d+\.\d+", rows[-1])]


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory, data_root):
    out = tmp_path_factory.mktemp("ddp")
    opts = tiny_opts(out, data_root) + ["SOLVER.MAX_EPOCH", "2"]
    log = _run(["--num-gpus", "2", "--dist-url", "auto", *opts], cwd=out)
    return out, log


@pytest.mark.slow
def test_two_gloo_processes_train_and_evaluate(two_process_run):
    out, log = two_process_run
    assert "World size: 2" in log
    assert (out / "model_final.pth").exists() and (out / "log.txt.rank1").exists()
    assert "Rank of current process: 1. World size: 2" in (out / "log.txt.rank1").read_text()
    rows = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    assert max(r["iteration"] for r in rows) == 5
    assert (out / "config.yaml").read_text().count("NUM_CLASSES: 12") == 1
    assert (out / "env.txt").exists()
    # every process's RNG state is stored (dropout draws continue exactly on each rank)
    states = read_checkpoint(str(out / "model_final.pth"))["rng_states"]
    assert len(states) == 2 and not torch.equal(states[0]["torch"], states[1]["torch"])


@pytest.mark.slow
def test_eval_only_matches_the_runs_final_evaluation(two_process_run, data_root, tmp_path):
    out, log = two_process_run
    final = _table_row(log, "TinySyntheticReID")
    opts = tiny_opts(tmp_path, data_root) + ["MODEL.WEIGHTS", str(out / "model_final.pth")]
    log2 = _run(["--eval-only", *opts], cwd=tmp_path)
    assert _table_row(log2, "TinySyntheticReID") == final


@pytest.mark.slow
def test_two_process_search_writes_the_genotype(tmp_path, data_root):
    opts = tiny_opts(tmp_path, data_root) + [
        "SOLVER.MAX_EPOCH", "1", "MODEL.BACKBONE.NAME", "CNetSupernet", "MODEL.HEADS.NAME", "SearchHead",
        "MODEL.BACKBONE.WIDTH_MULT", "0.25", "TRAINER.NAME", "SearchTrainer", "INPUT.SIZE_TRAIN", "[64,32]",
        "INPUT.SIZE_TEST", "[64,32]", "SOLVER.LR_LIST", "[]", "SOLVER.SCHED", "Cosine"]
    log = _run(["--num-gpus", "2", "--dist-url", "auto", *opts], cwd=tmp_path)
    assert "Genotype after epoch 1" in log
    assert json.loads((tmp_path / "genotype_final.json").read_text())["space"] == "cnet"


@pytest.mark.slow
def test_eval_only_keeps_the_training_config(two_process_run, data_root):
    out, _ = two_process_run
    before = (out / "config.yaml").read_text()
    _run(["--eval-only", "--resume", *tiny_opts(out, data_root)], cwd=out)
    assert (out / "config.yaml").read_text() == before
    assert (out / "config_eval.yaml").exists()


@pytest.mark.slow
def test_torchrun_env_launch(tmp_path, data_root):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
           str(_free_port()), SCRIPT, *tiny_opts(tmp_path, data_root), "SOLVER.MAX_EPOCH", "1"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "World size: 2" in proc.stdout + proc.stderr
    assert (tmp_path / "model_final.pth").exists() and (tmp_path / "log.txt.rank1").exists()


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
