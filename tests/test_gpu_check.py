"""tools/gpu_check.py runs on a machine without CUDA: the CPU rows pass, every CUDA row says it
was skipped."""

import importlib.util
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_quick_on_cpu(capsys, monkeypatch, data_root):
    monkeypatch.setenv("CDNET_DATASETS", str(data_root))
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "tools" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--quick"]) == 0
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in out.splitlines()
            if line.startswith("| ") and not line.startswith("| check")}
    assert "no CUDA device: the CUDA rows are skipped" in out
    assert rows["training step fp32 (cpu, 64x32, batch 16)"] == "ok"
    assert rows["ONNX export (opset 17, dynamic batch)"] == "ok"
    assert rows["training data loader vs model"] in ("ok", "SLOW")
    cuda_rows = [n for n in rows if n.startswith(("training step AMP", "DETERMINISTIC", "ranking", "evaluation",
                                                   "model fused", "MODEL.DEVICE"))]
    assert len(cuda_rows) == 7 and all(rows[n] == "SKIP (no CUDA device)" for n in cuda_rows), rows
