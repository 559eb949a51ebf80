#!/usr/bin/env python
"""Kill a training run with SIGKILL at random moments, resume it each time, and check that
nothing was lost: every checkpoint loads, no temporary file is left, and the final weights equal
those of an uninterrupted run of the same command.

    python tools/soak_resume.py --kills 20 -- --config-file configs/Synthetic/cdnet.yml \\
        MODEL.BACKBONE.WIDTH_MULT 0.25 SOLVER.MAX_EPOCH 4 DETERMINISTIC True SEED 0

Everything after ``--`` is passed to the training script (``--script``, default
``tools/train_net.py``); ``OUTPUT_DIR`` is set by this tool. Needs a fixed ``SEED`` and
``DETERMINISTIC True`` for the final comparison to be meaningful.

Exit status: 0 (OK) when every kill was delivered and nothing was lost; 1 (FAILED) when something
was lost; 3 (NOT A SOAK) when the run finished before all kills were delivered, so that fewer
resumes than asked were tested.
"""

import argparse
import glob
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from cdnet_reid.utils.checkpoint import CheckpointError, read_checkpoint  # noqa: E402


def _run(script, args, out, resume=False):
    cmd = [sys.executable, script, *(["--resume"] if resume else []), *args, "OUTPUT_DIR", out]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kills", type=int, default=20, help="SIGKILLs before the run may finish")
    p.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    p.add_argument("--max-delay", type=float, default=8.0,
                   help="each run is killed after a uniform random 0.5..MAX_DELAY seconds (start-up "
                        "included); make the training long enough to outlast the kills")
    p.add_argument("--script", default=str(Path(__file__).resolve().parent / "train_net.py"))
    p.add_argument("--work-dir", default="", help="folder for the two runs (default: a temp folder)")
    p.add_argument("train_args", nargs=argparse.REMAINDER, help="-- then the training arguments")
    args = p.parse_args(argv)
    train_args = [a for a in args.train_args if a != "--"]
    work = args.work_dir or tempfile.mkdtemp(prefix="soak_resume_")
    ref_dir, run_dir = os.path.join(work, "reference"), os.path.join(work, "killed")
    for d in (ref_dir, run_dir):
        shutil.rmtree(d, ignore_errors=True)

    start = time.time()
    if _run(args.script, train_args, ref_dir).wait() != 0:
        raise SystemExit(f"the reference run failed; try it by hand: {args.script} {train_args}")
    duration = time.time() - start
    print(f"reference run: {duration:.1f} s")

    rng = random.Random(args.seed)
    unloadable, restarts, delivered = [], 0, 0
    for kill in range(args.kills):
        proc = _run(args.script, train_args, run_dir, resume=restarts > 0)
        restarts += 1
        delay = rng.uniform(0.5, args.max_delay)
        try:
            code = proc.wait(timeout=delay)
            print(f"kill {kill + 1}: the run ended by itself (status {code}) before {delay:.1f} s")
            if code == 0:
                break
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            delivered += 1
        for path in glob.glob(os.path.join(run_dir, "*.pth")):
            try:
                read_checkpoint(path)
            except CheckpointError as e:
                unloadable.append(str(e))
        last = os.path.join(run_dir, "last_checkpoint")
        at = open(last).read() if os.path.exists(last) else "-"
        print(f"kill {kill + 1} after {delay:.1f} s: last checkpoint {at}")
    final = _run(args.script, train_args, run_dir, resume=restarts > 0).wait()
    stray = glob.glob(os.path.join(run_dir, ".tmp_*"))
    a = read_checkpoint(os.path.join(ref_dir, "model_final.pth"))["model"]
    b = read_checkpoint(os.path.join(run_dir, "model_final.pth"))["model"]
    differing = [k for k in a if not torch.equal(a[k], b[k])]
    print(f"restarts: {restarts}, final status: {final}, unloadable files: {len(unloadable)}, "
          f"stray temporary files: {len(stray)}, tensors differing from the reference: "
          f"{len(differing)} of {len(a)}")
    for line in unloadable + stray + differing[:10]:
        print("  ", line)
    ok = final == 0 and not unloadable and not stray and not differing
    if ok and delivered < args.kills:
        # the run finished before every kill was delivered: the resumes were not exercised as asked
        print(f"NOT A SOAK: only {delivered} of {args.kills} kills were delivered before the run "
              f"finished; make the training longer or --max-delay shorter "
              f"({time.time() - start:.0f} s in all; runs in {work})")
        return 3
    print("OK" if ok else "FAILED", f"({time.time() - start:.0f} s in all; kills delivered: "
          f"{delivered}; runs in {work})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
