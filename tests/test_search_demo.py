"""The watchable search (configs/Synthetic/search_cdnet.yml) end to end, with tiny overrides: the
genotype files, the entropy metrics, the picture of α, a readable log, the same genotype from
two runs with one seed; tools/plot_search.py and tools/random_genotype.py."""

import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from cdnet_reid.modeling.space.genotype import CANDIDATES, load_genotype
from cdnet_reid.search.plot import entropy, read_search_history
from cdnet_reid.utils.visualizer import read_metrics

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = str(Path(__file__).resolve().parent / "tiny_train_net.py")  # train_net + the tiny dataset
CONFIG = str(ROOT / "configs" / "Synthetic" / "search_cdnet.yml")
LAYERS = 6
# the search config as it is (top-k, k=2, all 12 CDNet candidates, its arch LR, split and hooks),
# on the tiny dataset at 32x16, quarter width, 2 epochs of 3 iterations
TINY = ["MODEL.DEVICE", "cpu", "DATASETS.NAMES", "('TinySyntheticReID',)", "DATASETS.TESTS", "('TinySyntheticReID',)",
        "INPUT.SIZE_TRAIN", "[32,16]", "INPUT.SIZE_TEST", "[32,16]", "INPUT.PADDING.SIZE", "2",
        "MODEL.BACKBONE.WIDTH_MULT", "0.25", "SOLVER.IMS_PER_BATCH", "16", "SOLVER.ITERS_PER_EPOCH", "3",
        "SOLVER.MAX_EPOCH", "2", "DATALOADER.NUM_WORKERS", "0", "TEST.IMS_PER_BATCH", "32", "LOG_PERIOD", "3"]


def _search(out, data_root, seed):
    env = dict(os.environ, OMP_NUM_THREADS="1")  # small convolutions: one thread is faster on a shared CPU
    proc = subprocess.run([sys.executable, SCRIPT, "--config-file", CONFIG, *TINY, "DATASETS.ROOT", str(data_root),
                           "OUTPUT_DIR", str(out), "SEED", str(seed)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_root):
    """Two searches with seed 0."""
    return [_search(tmp_path_factory.mktemp(f"search_demo{i}"), data_root, 0) for i in range(2)]


@pytest.mark.slow
def test_search_writes_genotypes_entropy_metrics_and_the_picture(runs):
    out = runs[0]
    for name in ("genotype_epoch0001.json", "genotype_epoch0002.json", "genotype_final.json", "model_final.pth"):
        assert (out / name).is_file(), name
    final = load_genotype(str(out / "genotype_final.json"))
    assert final.space == "cdnet" and len(final.layers) == LAYERS
    assert final.layers == load_genotype(str(out / "genotype_epoch0002.json")).layers

    # entropy of softmax(α) per layer and its mean, after every epoch, equal to the genotype files'
    series = read_metrics(str(out / "metrics.json"))
    keys = [f"alpha_entropy/layer{i}" for i in range(LAYERS)]
    for k in keys + ["alpha_entropy/mean"]:
        assert len(series[k][1]) == 2, k  # one value per epoch
    per_layer = np.stack([series[k][1] for k in keys], axis=1)  # (epochs, layers)
    assert np.allclose(series["alpha_entropy/mean"][1], per_layer.mean(axis=1), atol=1e-6)
    for epoch in (1, 2):
        geno = load_genotype(str(out / f"genotype_epoch{epoch:04d}.json"))
        probs = np.asarray(geno.meta["probabilities"])
        assert probs.shape == (LAYERS, 12) and np.allclose(probs.sum(1), 1, atol=1e-5)
        assert np.allclose(entropy(probs), per_layer[epoch - 1], atol=1e-4)
    assert (per_layer < math.log(12)).all() and per_layer[1].mean() < per_layer[0].mean()  # α moved, and on

    history = read_search_history(str(out))
    assert history.epochs.tolist() == [1, 2] and history.probs.shape == (2, LAYERS, 12)
    assert history.final.layers == final.layers and np.allclose(history.entropy, per_layer)

    # the picture, drawn by the hook at the end of the search
    from PIL import Image

    with Image.open(out / "search_alphas.png") as img:
        assert img.format == "PNG" and img.size[0] >= 1000 and img.size[1] >= 800


@pytest.mark.slow
def test_search_log_stays_readable(runs):
    log = (runs[0] / "log.txt").read_text()
    for epoch in (1, 2):  # the per-layer choice table after every epoch (GENOTYPE_PERIOD 1)
        assert f"Genotype after epoch {epoch} " in log
    assert log.count("runner-up (p)") >= 2  # the header of the table
    assert "Picture of the search written to" in log
    # no module dump of the supernet (12 candidates x 6 layers) in the file log
    dumped = "MixedOp(" in log
    assert not dumped, "the supernet's module dump is in log.txt"
    lines = len(log.splitlines())
    assert lines < 1000, f"log.txt has {lines} lines"


@pytest.mark.slow
def test_one_seed_gives_one_genotype(runs):
    a, b = (json.loads((out / "genotype_final.json").read_text()) for out in runs)
    assert a["layers"] == b["layers"]
    assert a["alphas"] == b["alphas"]  # DETERMINISTIC True: the very same logits
    assert any(x != 1e-3 for row in a["alphas"] for x in row)  # not the untouched initialisation


@pytest.mark.slow
def test_plot_search_tool(runs, tmp_path):
    target = tmp_path / "alphas.png"
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "plot_search.py"), str(runs[1]), "--output",
                           str(target)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert target.is_file() and target.stat().st_size > 10_000
    final = load_genotype(str(runs[1] / "genotype_final.json"))
    assert f"chosen genotype: {[list(e) for e in final.layers]}" in proc.stdout
    assert "init ln 12 = 2.4849" in proc.stdout
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "plot_search.py"), str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no genotype_epochXXXX.json files" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error:")


def _random_genotype_module():
    from cdnet_reid.apps import random_genotype

    return random_genotype


@pytest.mark.slow
def test_random_genotype_is_uniform_reproducible_and_loadable(tmp_path):
    rg = _random_genotype_module()
    a, b, c = rg.random_genotype("cdnet", 1), rg.random_genotype("cdnet", 1), rg.random_genotype("cdnet", 2)
    assert a.layers == b.layers and a.layers != c.layers
    assert all(e in CANDIDATES["cdnet"] for e in a.layers) and len(a.layers) == LAYERS
    # uniform over the 12 candidates: 300 seeds x 6 layers = 1800 draws, 150 expected per candidate
    counts = Counter(i for s in range(300) for i in rg.random_genotype("cdnet", s).ops)
    assert sorted(counts) == list(range(12))
    chi2 = sum((n - 150) ** 2 / 150 for n in counts.values())
    assert chi2 < 31.3  # 99.9 % quantile of chi-square with 11 degrees of freedom
    assert all(e in CANDIDATES["cnet"] for e in rg.random_genotype("cnet", 3).layers)
    path = tmp_path / "g.json"
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "random_genotype.py"), "--space", "cdnet", "--seed",
                           "1", "--output", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    loaded = load_genotype(str(path))
    assert loaded.layers == a.layers and loaded.meta["seed"] == 1 and loaded.meta["source"] == "random"
