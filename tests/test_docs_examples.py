"""The extension examples of projects/README.md run as written (in order, in a fresh process)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(markdown: Path):
    return re.findall(r"```python\n(.*?)```", markdown.read_text(), flags=re.S)


def test_projects_readme_has_an_example_per_component():
    text = (ROOT / "projects" / "README.md").read_text()
    blocks = python_blocks(ROOT / "projects" / "README.md")
    for registry in ("BACKBONE_REGISTRY", "HEAD_REGISTRY", "DATASET_REGISTRY", "HookBase",
                     "EVALUATOR_REGISTRY", "TRAINER_REGISTRY"):
        assert any(registry in b for b in blocks), registry
    assert "## Where a new component goes" in text


@pytest.mark.slow
def test_projects_readme_examples_run(tmp_path, data_root):
    script = "\n\n".join(python_blocks(ROOT / "projects" / "README.md"))
    (tmp_path / "examples.py").write_text(script + "\nprint('ALL EXAMPLES RAN')\n")
    proc = subprocess.run([sys.executable, "examples.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
                                            "CDNET_DATASETS": str(data_root)})
    assert proc.returncode == 0 and "ALL EXAMPLES RAN" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-4000:]
