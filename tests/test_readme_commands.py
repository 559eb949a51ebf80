"""The README's commands work: every fenced ``bash`` block marked ``<!-- runnable... -->`` is run, in
order, in a scratch folder, with overrides that make the models tiny and the training short."""

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny import TINY_CDNET_OPTS

ROOT = Path(__file__).resolve().parents[1]

#: Appended to every command that takes KEY VALUE overrides: the same tiny CDNet everywhere, so the
#: checkpoint of the training command fits the commands that use it.
TINY = TINY_CDNET_OPTS
#: Commands left to other tests or to the user: the venv, installing, and the test suite itself.
SKIP = ("python3 -m venv", "pip ", "python -m pytest")
#: Tools without KEY VALUE overrides.
NO_OVERRIDES = ("tools/plot_metrics.py",)


def runnable_commands(readme: Path):
    """The command lines of the marked blocks (continuations joined, comments dropped)."""
    text = readme.read_text()
    commands = []
    for block in re.findall(r"<!-- runnable[^>]*-->\s*```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line).strip()
            if line and not line.startswith(SKIP):
                commands.append(line)
    return commands


def test_the_readme_marks_its_main_commands():
    commands = runnable_commands(ROOT / "README.md")
    assert commands[0] == "python tools/train_net.py --config-file configs/Synthetic/cdnet.yml"
    tools = {shlex.split(c)[1] for c in commands}
    assert {"tools/extract_features.py", "tools/visualize_ranks.py", "tools/export_onnx.py",
            "tools/search_gallery.py"} <= tools


def test_ci_does_what_a_newcomer_does():
    """CI creates a fresh venv, installs requirements.txt into it and runs the README's test command."""
    block = re.search(r"<!-- runnable[^>]*-->\s*```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)[1]
    readme = [re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines()]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert "python3 -m venv .venv && . .venv/bin/activate" in readme[0]
    assert any(re.match(r"python3 -m venv ", line) for line in ci)
    assert any(re.match(r"\. .*/bin/activate", line) for line in ci)
    assert any(re.match(r"python -m pip install .*-r requirements.txt", line) for line in ci)
    test_command = next(line for line in readme if line.startswith("python -m pytest"))
    assert ci[-1] == test_command, (ci[-1], test_command)


@pytest.mark.slow
def test_the_readme_commands_run(tmp_path, data_root):
    for name in ("tools", "configs", "cdnet_reid", "projects"):
        (tmp_path / name).symlink_to(ROOT / name)
    (tmp_path / "datasets").symlink_to(data_root)  # the default data root, relative to the cwd
    env = {k: v for k, v in os.environ.items() if k not in ("CDNET_DATASETS", "PYTHONPATH")}
    env["OMP_NUM_THREADS"] = "1"
    for command in runnable_commands(ROOT / "README.md"):
        args = shlex.split(command)
        assert args[0] == "python", command
        if args[1] not in NO_OVERRIDES:
            args += TINY
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, *args[1:]], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        print(f"{time.perf_counter() - start:5.1f} s  {command}")
    assert (tmp_path / "logs/synthetic/cdnet/model_final.pth").exists()
    assert (tmp_path / "results.csv").exists() and (tmp_path / "cdnet.onnx").exists()
