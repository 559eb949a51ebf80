"""Smoke tests of the measuring tools (they print the figures quoted in the README)."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tool(*args):
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / args[0]), *args[1:]], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


def test_complexity_prints_the_paper_counts():
    out = _tool("complexity.py", "--config-file", "configs/Market/cdnet.yml")
    assert "| total " in out and "2,963,414" in out and "1,796,600" in out
    assert re.search(r"conv \+ linear.*\| +955\.06 \|", out)


def test_benchmark_and_search_benchmark_run():
    out = _tool("benchmark.py", "--config-file", "configs/Synthetic/cdnet.yml", "--runs", "1",
                "--iters", "1", "--warmup", "0", "--batch-size", "2", "--train-batch-size", "8",
                "MODEL.BACKBONE.WIDTH_MULT", "0.25", "INPUT.SIZE_TEST", "[64,32]",
                "INPUT.SIZE_TRAIN", "[64,32]")
    assert re.search(r"\| inference +\| +2 \| 64x32", out) and re.search(r"\| training +\| +8 ", out)
    out = _tool("benchmark_search.py", "--space", "cnet", "--batch-size", "4", "--size", "32", "16",
                "--runs", "1")
    assert re.search(r"\| topk", out) and re.search(r"\| softmax", out)
