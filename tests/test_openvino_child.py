"""The tests marked ``openvino`` run in a child pytest process (see tests/conftest.py): OpenVINO's
threads in this process made a later, forking test crash it. The child gets this run's ``-m``
expression, so the fast tier runs the fast OpenVINO tests and the full suite all of them."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import OPENVINO_CHILD

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.skipif(OPENVINO_CHILD, reason="the child runs the openvino tests themselves")
def test_openvino_tests_pass_in_a_child_process(request, tmp_path):
    expr = request.config.getoption("markexpr") or ""
    marks = "openvino" + (f" and ({expr})" if expr else "")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", marks,
                           "--basetemp", str(tmp_path / "child"), str(ROOT / "tests")],
                          env={**os.environ, "CDNET_OPENVINO_CHILD": "1"}, capture_output=True, text=True,
                          timeout=1200, cwd=ROOT)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    print(summary)
    # 5: no test selected (e.g. -m "not slow" and every openvino test is slow)
    assert proc.returncode in (0, 5) and "failed" not in summary and "error" not in summary, \
        proc.stdout[-4000:] + proc.stderr[-2000:]
