"""The package as users get it: a wheel installed in a fresh virtual environment works from any
folder (package data included) through the ``cdnet-reid`` console command and the Python API."""

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
from tiny import TINY_CDNET_OPTS

ROOT = Path(__file__).resolve().parents[1]

#: The shared tiny overrides, with a batch that fits 2 iterations of the default (Market-style) recipe.
TINY = TINY_CDNET_OPTS + ["SOLVER.IMS_PER_BATCH", "16", "SOLVER.MILESTONES", "[]", "SOLVER.BASE_LR", "0.01",
                          "SOLVER.LR_LIST", "[0.01]", "SEED", "0"]


def _run(cmd, cwd, env):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv holding only the wheel of this checkout; torch & co. come from the running
    interpreter's own site-packages (a ``.pth`` line, so this works whether the tests run in a venv
    or in a system Python; a path in a ``.pth`` file adds no editable installs of that folder)."""
    tmp = tmp_path_factory.mktemp("install")
    _run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
          "-w", str(tmp / "dist")], cwd=tmp, env=os.environ)
    wheel = next((tmp / "dist").glob("cdnet_reid-*.whl"))
    venv.EnvBuilder(system_site_packages=False, with_pip=False).create(tmp / "venv")
    python = tmp / "venv" / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    running = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    Path(site, "running_interpreter.pth").write_text("".join(f"{p}\n" for p in running))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"OMP_NUM_THREADS": "1"}
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
         cwd=tmp, env=env)
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    return python, tmp / "venv" / "bin" / "cdnet-reid", elsewhere, env


@pytest.mark.slow
def test_the_wheel_ships_the_genotypes_and_the_command(installed):
    python, command, elsewhere, env = installed
    out = _run([str(python), "-c", "import cdnet_reid, cdnet_reid.modeling.space as c; "
                "print(cdnet_reid.__file__); print(c.load_genotype('cdnet_top2').layers)"], elsewhere, env)
    assert str(ROOT) not in out.splitlines()[0] and "site-packages" in out.splitlines()[0]
    assert "[3, 5, 1]" in out or "(3, 5, 1)" in out
    usage = _run([str(command), "--help"], elsewhere, env)
    assert all(c in usage for c in ("complexity", "benchmark", "extract", "export", "search-gallery", "visualize",
                                    "plot-metrics", "random-genotype", "search-pipeline", "configs"))
    assert "usage: cdnet-reid extract" in _run([str(command), "extract", "--help"], elsewhere, env)
    # the configs ship inside the wheel: listed, and usable by their name from any folder
    listed = _run([str(command), "configs"], elsewhere, env)
    assert "Market/cdnet.yml" in listed and "site-packages" in listed
    out = _run([str(command), "complexity", "--config-file", "Market/cdnet.yml"], elsewhere, env)
    assert "CDNet + FBLNeck, 751 classes, input 1x3x256x128" in out


@pytest.mark.slow
def test_train_and_extract_features_from_another_folder(installed, data_root):
    python, command, elsewhere, env = installed
    out_dir = elsewhere / "run"
    log = _run([str(command), "train", "--config-file", "Synthetic/cdnet.yml", *TINY, "SOLVER.WARMUP_ITERS", "0",
                "TEST.EVAL_AT_START", "False", "DATASETS.ROOT", str(data_root), "OUTPUT_DIR", str(out_dir)],
               elsewhere, env)
    assert "Evaluation results" in log and (out_dir / "model_final.pth").exists()
    code = ("import sys, glob, numpy as np\n"
            "from cdnet_reid.config import get_cfg\n"
            "from cdnet_reid.engine import DefaultPredictor\n"
            "cfg = get_cfg(); cfg.merge_from_list(sys.argv[1:])\n"
            "paths = sorted(glob.glob(cfg.DATASETS.ROOT + '/**/query/*.jpg', recursive=True))[:5]\n"
            "feats = DefaultPredictor(cfg)(paths)\n"
            "print('features', tuple(feats.shape), float(np.linalg.norm(feats.numpy(), axis=1).mean()))\n")
    out = _run([str(python), "-c", code, *TINY, "DATASETS.ROOT", str(data_root), "MODEL.WEIGHTS",
                str(out_dir / "model_final.pth")], elsewhere, env)
    assert "features (5, 384) 1.0" in out  # 128 global + 2 x 128 local at width 0.25, L2-normalised
    # the checkpoint alone is enough: no config file, the same features as the predictor's
    _run([str(command), "extract", "--input", str(next(data_root.glob("**/query"))), "--output",
          str(elsewhere / "f.npy"), "--no-progress", "MODEL.WEIGHTS", str(out_dir / "model_final.pth"),
          "DATALOADER.NUM_WORKERS", "0"], elsewhere, env)
    code = ("import sys, numpy as np, cdnet_reid\n"
            "f = np.load(sys.argv[1]); names = open(sys.argv[2]).read().splitlines()\n"
            "x = cdnet_reid.FeatureExtractor(sys.argv[3])([sys.argv[4] + '/' + n for n in names])\n"
            "print('max diff', float(abs(x.numpy() - f).max()))\n")
    out = _run([str(python), "-c", code, str(elsewhere / "f.npy"), str(elsewhere / "f.paths.txt"),
                str(out_dir / "model_final.pth"), str(next(data_root.glob("**/query")))], elsewhere, env)
    assert float(out.split("max diff")[-1]) < 1e-5
