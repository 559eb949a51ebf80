"""Smoke tests of the measuring tools (they print the figures quoted in the README)."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(*args):
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / args[0]), *args[1:]], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.slow
def test_complexity_prints_the_paper_counts():
    out = _tool("complexity.py", "--config-file", "configs/Market/cdnet.yml")
    assert "| total " in out and "2,963,414" in out and "1,796,600" in out
    assert re.search(r"conv \+ linear.*\| +955\.06 \|", out)


@pytest.mark.slow
def test_benchmark_and_search_benchmark_run():
    out = _tool("benchmark.py", "--config-file", "configs/Synthetic/cdnet.yml", "--runs", "1",
                "--iters", "1", "--warmup", "0", "--batch-size", "2", "--train-batch-size", "8",
                "MODEL.BACKBONE.WIDTH_MULT", "0.25", "INPUT.SIZE_TEST", "[64,32]",
                "INPUT.SIZE_TRAIN", "[64,32]")
    assert re.search(r"\| inference +\| +2 \| 64x32", out) and re.search(r"\| training +\| +8 ", out)
    assert "this process's allocator: " in out
    out = _tool("benchmark_search.py", "--space", "cnet", "--batch-size", "4", "--size", "32", "16",
                "--runs", "1")
    assert re.search(r"\| topk", out) and re.search(r"\| softmax", out)


@pytest.mark.slow
def test_benchmark_compare_rows():
    """--compare: every row of the inference table (allocator variants in their own processes)
    and the allocator table of training, with CPU time, kernel share and peak memory."""
    out = _tool("benchmark.py", "--config-file", "configs/Synthetic/cdnet.yml", "--compare", "--no-compile",
                "--runs", "1", "--iters", "1", "--warmup", "0", "--batch-size", "2", "--train-batch-size", "8",
                "MODEL.BACKBONE.WIDTH_MULT", "0.25", "INPUT.SIZE_TEST", "[64,32]", "INPUT.SIZE_TRAIN", "[64,32]")
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in out.splitlines() if line.startswith("| ") and not line.startswith("| model")
            and not line.startswith("| mode ")}
    expected = ["plain, contiguous weights (MODEL.CHANNELS_LAST False)", "plain (this config)",
                "fast path: BN folded, channels-last",
                "fast path: + fused conv epilogues (default)", "onnxruntime fp32 (exported model)",
                "torchvision mobilenet_v2", "torchvision resnet50",
                "plain, default allocator (own process)", "plain, big blocks kept in the heap (own process)",
                "fast path (default), default allocator (own process)",
                "fast path (default), big blocks kept in the heap (own process)",
                "training, default allocator (own process)",
                "training, big blocks kept in the heap (own process)",
                "training, contiguous weights (MODEL.CHANNELS_LAST False), heap (own process)"]
    for name in expected:
        assert name in rows, (name, out)
    assert any(n.startswith("onnxruntime int8 (static QDQ, per-channel") for n in rows)
    from cdnet_reid.engine.runtimes import cpu_has_native_bf16

    openvino = ["OpenVINO fp32"] + (["OpenVINO bf16", "PyTorch bf16 (BN folded, channels-last, bf16 weights)"]
                                    if cpu_has_native_bf16() else [])
    for name in openvino if importlib.util.find_spec("openvino") else []:
        assert name in rows, (name, out)
    assert any(n.startswith("OpenVINO int8 (QDQ file") for n in rows) or not importlib.util.find_spec("openvino")
    peaks = {n: r for n, r in rows.items() if n.startswith("peak ")}
    assert any(n.startswith("peak fp32 (GEMM ") for n in peaks), out
    assert all(r[-1] == "100%" and float(r[0]) > 0 for r in peaks.values())
    assert rows["plain (this config)"][-1].endswith("%")  # the share of the fp32 peak
    assert rows["plain, contiguous weights (MODEL.CHANNELS_LAST False)"][2] == "1.00x"
    assert float(rows["plain, default allocator (own process)"][5]) > 100  # peak RSS, MB
    assert rows["plain (this config)"][5] == "-"
    assert "plain, default allocator: default (disabled by CDNET_ALLOCATOR=default)" in out
    assert "plain, big blocks kept in the heap: " in out
