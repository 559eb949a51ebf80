"""tools/soak_resume.py does not pass a run that finished before its kills were delivered."""

import subprocess
import sys
from pathlib import Path

import pytest
from tiny import tiny_opts

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_run_that_outlives_no_kill_is_not_a_soak(tmp_path, data_root):
    opts = tiny_opts(tmp_path / "unused", data_root)
    i = opts.index("OUTPUT_DIR")
    del opts[i:i + 2]  # set by the tool
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "soak_resume.py"), "--kills", "3", "--max-delay", "600",
         "--script", str(ROOT / "tests" / "tiny_train_net.py"), "--work-dir", str(tmp_path),
         "--", *opts, "SOLVER.MAX_EPOCH", "1", "TEST.EVAL_PERIOD", "0", "DETERMINISTIC", "True"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 3, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "NOT A SOAK: only 0 of 3 kills were delivered" in proc.stdout
    assert "OK" not in proc.stdout.split()
