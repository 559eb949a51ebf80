#!/usr/bin/env python
"""Run many 2-process training runs of four kinds and check that each ends as one process would:

* ``train``: a short run, status 0 and ``model_final.pth``;
* ``search``: a short architecture search (``SearchTrainer``), status 0 and ``genotype_final.json``;
* ``sigterm``: SIGTERM to the launching process during training, status 75 and a readable
  ``model_interrupted.pth`` named by ``last_checkpoint``;
* ``user_error``: a user error (a ``ConfigError``) met by rank 1 only, status 2 and one
  ``error:`` line.

No run may print a traceback or ``terminate called`` (a gloo thread outliving the interpreter).
Prints a table of the statuses seen and every failure; exits 1 if any run failed.

    python tools/benchmark_dist_exits.py --runs 25 -- --config-file configs/Synthetic/cdnet.yml \\
        MODEL.BACKBONE.WIDTH_MULT 0.25 INPUT.SIZE_TRAIN [64,32] INPUT.SIZE_TEST [64,32] \\
        SOLVER.ITERS_PER_EPOCH 2 TEST.EVAL_AT_START False DATALOADER.NUM_WORKERS 0

Everything after ``--`` is given to the training script (``--script``, default
``tools/train_net.py``) in every run; ``OUTPUT_DIR``, ``SOLVER.MAX_EPOCH`` and each kind's keys
are set by this tool. A benchmark, not a test: it takes minutes.
"""

import argparse
import collections
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from cdnet_reid.utils.checkpoint import CheckpointError, read_checkpoint  # noqa: E402

KINDS = ("train", "search", "sigterm", "user_error")
EXPECTED = {"train": 0, "search": 0, "sigterm": 75, "user_error": 2}
SEARCH_ARGS = ["TRAINER.NAME", "SearchTrainer", "MODEL.BACKBONE.NAME", "CNetSupernet",
               "MODEL.HEADS.NAME", "SearchHead", "MODEL.BACKBONE.WIDTH_MULT", "0.25",
               "INPUT.SIZE_TRAIN", "[64,32]", "INPUT.SIZE_TEST", "[64,32]", "SOLVER.LR_LIST", "[]",
               "SOLVER.SCHED", "Cosine"]
RANK1_ERROR = '''"""Raises a user error in the process of local rank 1 only (benchmark_dist_exits.py)."""
import os

from cdnet_reid.config import ConfigError


def add_rank1_error_config(cfg):
    if os.environ.get("LOCAL_RANK") == "1":
        raise ConfigError("a user error met by rank 1 only")
'''


def _command(args, kind, out, module):
    pre = ["--num-gpus", "2", "--dist-url", "auto"]
    post = ["SOLVER.MAX_EPOCH", "1000" if kind == "sigterm" else "1", "OUTPUT_DIR", out]
    if kind == "sigterm":
        post += ["TEST.EVAL_PERIOD", "0"]
    if kind == "search":
        post += SEARCH_ARGS
    if kind == "user_error":
        pre += ["--import-module", module]
    return [sys.executable, args.script, *pre, *args.train_args, *post]


def one_run(args, kind, index, module):
    """Run one job; return (status, failure or "")."""
    out = os.path.join(args.work_dir, f"{kind}_{index:03d}")
    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.Popen(_command(args, kind, out, module), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines, signalled = [], threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line)
            if kind == "sigterm" and not signalled.is_set() and " iter: " in line:
                signalled.set()
                time.sleep(random.Random(index).uniform(0, 1))  # at any moment of an iteration
                proc.send_signal(signal.SIGTERM)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        status = proc.wait(timeout=args.run_timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        status = proc.wait()
        reader.join()
        return status, f"no end after {args.run_timeout} s"
    reader.join()
    text = "".join(lines)
    failure = _check(kind, status, text, out)
    if failure:
        with open(os.path.join(args.work_dir, f"{kind}_{index:03d}.log"), "w") as f:
            f.write(text)
    elif not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    return status, failure


def _check(kind, status, text, out):
    if "terminate called" in text:
        return f"status {status}: 'terminate called' (a thread outlived the interpreter)"
    if "Traceback" in text:
        return f"status {status}: a traceback"
    if status != EXPECTED[kind]:
        return f"status {status}, expected {EXPECTED[kind]}"
    if kind == "train" and not os.path.exists(os.path.join(out, "model_final.pth")):
        return "no model_final.pth"
    if kind == "search" and not os.path.exists(os.path.join(out, "genotype_final.json")):
        return "no genotype_final.json"
    if kind == "sigterm":
        try:
            read_checkpoint(os.path.join(out, "model_interrupted.pth"))
            last = Path(out, "last_checkpoint").read_text().strip()
        except (CheckpointError, OSError) as e:
            return f"no interrupted checkpoint: {e}"
        if last != "model_interrupted.pth":
            return f"last_checkpoint names {last}"
    if kind == "user_error":
        errors = [line for line in text.splitlines() if line.startswith("error:")]
        if errors != ["error: a user error met by rank 1 only"]:
            return f"error lines: {errors}"
    return ""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=25, help="runs of each kind")
    p.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    p.add_argument("--jobs", type=int, default=1, help="runs at the same time")
    p.add_argument("--run-timeout", type=float, default=600, help="seconds before a run counts as hung")
    p.add_argument("--script", default=str(Path(__file__).resolve().parent / "train_net.py"))
    p.add_argument("--work-dir", default="", help="folder for the runs (default: a temp folder)")
    p.add_argument("--keep", action="store_true", help="keep the folders of the runs that passed")
    p.add_argument("train_args", nargs=argparse.REMAINDER, help="-- then the training arguments")
    args = p.parse_args(argv)
    args.train_args = [a for a in args.train_args if a != "--"]
    args.work_dir = args.work_dir or tempfile.mkdtemp(prefix="dist_exits_")
    os.makedirs(args.work_dir, exist_ok=True)
    module = os.path.join(args.work_dir, "rank1_error.py")
    Path(module).write_text(RANK1_ERROR)

    jobs = [(kind, i) for i in range(args.runs) for kind in args.kinds]  # kinds interleaved
    start = time.time()
    results = collections.defaultdict(list)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(one_run, args, kind, i, module): (kind, i) for kind, i in jobs}
        for done, future in enumerate(futures, 1):
            kind, i = futures[future]
            status, failure = future.result()
            results[kind].append((i, status, failure))
            print(f"[{done}/{len(jobs)} {time.time() - start:.0f} s] {kind} {i}: status {status}"
                  f"{'  FAILED: ' + failure if failure else ''}", flush=True)
    rows, failures = [], []
    for kind in args.kinds:
        statuses = collections.Counter(s for _, s, _ in results[kind])
        failed = [(i, f) for i, _, f in results[kind] if f]
        failures += [f"{kind} {i}: {f}" for i, f in failed]
        rows.append([kind, len(results[kind]), EXPECTED[kind],
                     ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())), len(failed)])
    print(tabulate(rows, headers=["kind", "runs", "expected status", "statuses (status: runs)",
                                  "failures"], tablefmt="github"))
    for line in failures:
        print("  ", line)
    total = sum(len(v) for v in results.values())
    print(f"{total} runs, {len(failures)} failures, {time.time() - start:.0f} s; logs of failed runs "
          f"in {args.work_dir}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
