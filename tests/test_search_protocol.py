"""The search-evaluation protocol: its statistics (Kendall τ-b, group summaries, the bootstrap
interval), the supernet's sub-network scores, the user errors of ``cdnet-reid search-pipeline``
and the tool end to end with ``--quick`` (tables consistent with the runs, resume reads back)."""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cdnet_reid import cli
from cdnet_reid.search.protocol import bootstrap_difference, group_summary, kendall_tau, summary
from cdnet_reid.search.subnet import alpha_score
from cdnet_reid.search.supernet import CDNetSupernet

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------- statistics
def test_kendall_tau_against_hand_computed_values():
    # x increasing; y = 3 1 2 5 4: concordant pairs 7, discordant 3 -> (7 - 3) / 10
    assert kendall_tau([1, 2, 3, 4, 5], [3, 1, 2, 5, 4]) == pytest.approx(0.4)
    # ties: x = 1 1 2 3, y = 1 2 2 3: C = 4, D = 0, n0 = 6, one pair tied in x, one in y -> 4 / sqrt(5 * 5)
    assert kendall_tau([1, 1, 2, 3], [1, 2, 2, 3]) == pytest.approx(0.8)
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, 12).tolist(), rng.integers(0, 5, 12).tolist()  # many ties
    assert kendall_tau(x, y) == pytest.approx(stats.kendalltau(x, y).statistic)


def test_group_summary_by_hand():
    s = group_summary([[1.0, 3.0], [5.0, 7.0]])
    assert (s.mean, s.genotypes, s.runs) == (4.0, 2, 4)
    assert s.sd_runs == pytest.approx(math.sqrt(20 / 3))  # deviations -3 -1 1 3, ddof 1
    assert s.sd_genotypes == pytest.approx(math.sqrt(8))  # genotype means 2 and 6
    assert summary([2.0]) == (2.0, None)
    assert group_summary([[2.0]]).sd_genotypes is None


def test_bootstrap_resamples_genotypes_and_seeds():
    # genotypes of group a: 10 and 20; b: 0. Resampling genotypes gives means 10, 15 or 20 (1/4, 1/2, 1/4):
    # a seed-only bootstrap would give 15 every time
    est, lo, hi = bootstrap_difference([[10.0], [20.0]], [[0.0]], n_resamples=2000, seed=0)
    assert (est, lo, hi) == (15.0, 10.0, 20.0)
    # seeds inside one genotype are resampled too
    est, lo, hi = bootstrap_difference([[1.0, 3.0]], [[0.0, 0.0]], n_resamples=2000, seed=0)
    assert (est, lo, hi) == (2.0, 1.0, 3.0)
    a, b = [[40.0, 42.0], [50.0, 47.0]], [[41.0, 45.0], [30.0, 33.0], [38.0, 36.0]]
    first = bootstrap_difference(a, b, seed=3)
    assert first == bootstrap_difference(a, b, seed=3)  # reproducible
    assert first[0] == pytest.approx(44.75 - 37.1666667) and first[1] <= first[0] <= first[2]
    with pytest.raises(ValueError):
        bootstrap_difference(a, [], seed=0)


# ---------------------------------------------------------------------------------- the supernet
def _supernet(topk):
    torch.manual_seed(0)
    net = CDNetSupernet(width_mult=0.125, topk=topk, stem="cifar").eval()
    return net


def test_forced_subnet_is_the_single_path_network():
    """With k = 1 and α favouring a genotype, the ordinary forward runs exactly that sub-network:
    forcing it must give the same maps, whatever α is inside the block; outside, α rules again."""
    net, ops = _supernet(topk=1), [3, 0, 11, 5, 7, 2]
    x = torch.rand(2, 3, 32, 16)
    with torch.no_grad():
        net.alphas.zero_()
        net.alphas[range(6), ops] = 5.0
        expected = net(x)
        net.alphas.zero_()
        net.alphas[range(6), [1, 1, 1, 1, 1, 1]] = 5.0
        with net.forced(ops):
            got = net(x)
        other = net(x)
    for key in expected:
        assert torch.equal(got[key], expected[key])
    assert not torch.equal(other[key], expected[key])
    with pytest.raises(ValueError):
        with net.forced([0] * 5):
            pass


def test_alpha_score_is_the_log_probability_of_the_genotype():
    alphas = torch.zeros(6, 12)
    assert alpha_score(alphas, [0] * 6) == pytest.approx(6 * math.log(1 / 12))
    alphas[0, 4] = math.log(3.0)  # p = 3 / 14 for op 4 of layer 0, 1 / 14 for the others
    assert alpha_score(alphas, [4, 0, 0, 0, 0, 0]) == pytest.approx(math.log(3 / 14) + 5 * math.log(1 / 12))


def test_cost_matched_genotypes_are_uniform_draws_within_the_tolerance():
    from cdnet_reid.config import ConfigError
    from cdnet_reid.modeling.space.genotype import random_genotype
    from cdnet_reid.search.matched import cost_matched_genotypes

    costs = [[1.0 + l + 0.5 * j for j in range(6)] for l in range(6)]  # 6 cnet layers x 6 candidates
    table = {"space": "cnet", "fixed": {"macs": 10.0},
             "layers": [{"candidates": [{"macs": c} for c in row]} for row in costs]}

    def cost(g):
        return 10.0 + sum(costs[l][j] for l, j in enumerate(g.ops))

    first = random_genotype("cnet", 1, 6)
    picks = cost_matched_genotypes(table, "macs", 38.0, 5, tolerance=0.02, exclude=[first.layers])
    assert len(picks) == 5 and len({tuple(map(tuple, g.layers)) for g in picks}) == 5
    for g in picks:
        assert abs(cost(g) / 38.0 - 1) <= 0.02 and g.meta["predicted"] == pytest.approx(cost(g))
        assert random_genotype("cnet", g.meta["seed"], 6).layers == g.layers  # the seed reproduces it
        assert g.layers != first.layers
    seeds = [g.meta["seed"] for g in picks]
    assert seeds == sorted(seeds)  # the first draws that match, in order
    skipped = [s for s in range(1, seeds[-1]) if s not in seeds]
    assert all(abs(cost(random_genotype("cnet", s, 6)) / 38.0 - 1) > 0.02
               or random_genotype("cnet", s, 6).layers == first.layers for s in skipped)
    assert cost_matched_genotypes(table, "macs", 38.0, 5, tolerance=0.02, exclude=[first.layers]) == picks
    with pytest.raises(ConfigError, match="within 1% of macs 5"):
        cost_matched_genotypes(table, "macs", 5.0, 1, tolerance=0.01, max_draws=2000)


# ---------------------------------------------------------------------------------- the tool
@pytest.mark.parametrize("argv,expected", [
    (["--train-seeds"], "--train-seeds"),
    (["--random-seeds"], "needs random genotypes"),
    (["--paper", "no_such_genotype"], "no_such_genotype"),
    (["--search-seeds", "0", "0"], "twice"),
    (["--search-seeds", "--random-seeds", "1"], "no searched genotype"),
    (["--budgets", "0"], "--budgets"),
    (["--budgets", "0.8", "--cost-table", "no_such_table.json"], "no_such_table.json"),
    (["--budgets", "0.8", "--match-tolerance", "1.5"], "--match-tolerance"),
])
def test_bad_input_is_one_error_line_before_any_step(argv, expected, tmp_path, capsys):
    rc = cli.main(["search-pipeline", "--quick", "--output-dir", str(tmp_path / "p"), *argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], err
    assert not (tmp_path / "p").exists()  # nothing started


def _quick(out, data_root, *extra):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    opts = ["DATASETS.ROOT", str(data_root)]
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "search_pipeline.py"), "--quick", "--output-dir",
                           str(out), "--resamples", "500", "--search-opts", *opts, "--train-opts", *opts, *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_quick_protocol_end_to_end_and_resume(tmp_path, data_root):
    """``--quick``: 1 search, the searched + paper + 2 random genotypes x training seeds 0 1. The
    tables agree with every run's metrics.json, the interval holds its estimate, τ is Kendall's of
    the written scores; ``--resume`` trains nothing again and writes the same results."""
    from cdnet_reid.apps.search_pipeline import final_metrics

    out = tmp_path / "p"
    stdout = _quick(out, data_root)
    assert "[9/9]" in stdout and "ETA" in stdout
    res = json.loads((out / "results.json").read_text())
    genos = res["genotypes"]
    assert [g["name"] for g in genos] == ["searched_seed0", "paper", "random_seed1", "random_seed2"]
    assert [g["group"] for g in genos] == ["searched", "paper", "random", "random"]
    for g in genos:
        assert [r["seed"] for r in g["runs"]] == [0, 1]
        for r in g["runs"]:
            assert r["dir"] == str(out / f"train_{g['name']}" / f"train_seed{r['seed']}")
            assert r["mAP"] == final_metrics(r["dir"], "SyntheticReID")["mAP"]
        mean = sum(r["mAP"] for r in g["runs"]) / 2
        assert f"| {g['name']} " in stdout and f"| {mean:.1f} " in (out / "results.md").read_text()
    random = [r["mAP"] for g in genos[2:] for r in g["runs"]]
    searched = [r["mAP"] for r in genos[0]["runs"]]
    ci = res["intervals"][0]
    assert ci["difference"] == "searched - random"
    assert ci["estimate"] == pytest.approx(np.mean(searched) - np.mean(random))
    assert ci["low"] <= ci["estimate"] <= ci["high"]
    (sn,) = res["supernets"]
    maps = [np.mean([r["mAP"] for r in g["runs"]]) for g in genos]
    assert list(sn["scores"]) == [g["name"] for g in genos]
    loss = [-sn["scores"][g["name"]]["val_loss"] for g in genos]
    assert sn["tau_loss"] == pytest.approx(kendall_tau(loss, maps), nan_ok=True)
    alpha = [sn["scores"][g["name"]]["alpha_score"] for g in genos]
    assert max(alpha) == alpha[0]  # the argmax genotype is the most probable under its own α
    assert (out / "protocol.png").stat().st_size > 10_000
    # resume: every finished step read back, nothing retrained, the same numbers; a step without its
    # record (killed before writing it) runs again as `cdnet-reid train --resume ...`
    finals = sorted(out.glob("train_*/train_seed*/model_final.pth")) + [out / "search_seed0" / "model_final.pth"]
    assert len(finals) == 9
    before = {p: p.stat().st_mtime_ns for p in finals if "random_seed2" not in str(p) or "seed1" not in p.parent.name}
    (out / "train_random_seed2" / "train_seed1" / "step.json").unlink()
    stdout = _quick(out, data_root, "--resume")
    assert stdout.count("read back") == 8 and "train random_seed2 seed 1: running" in stdout
    log = (out / "train_random_seed2" / "train_seed1.log").read_text().splitlines()
    assert log.count(log[0]) == 1 and any(line.startswith("$ cdnet-reid train --resume --config-file ") for line in log)
    assert (out / "train_random_seed2" / "train_seed1" / "step.json").is_file()
    assert {p: p.stat().st_mtime_ns for p in before} == before
    again = json.loads((out / "results.json").read_text())

    def runs(genotypes):  # without the wall seconds, which the step run again has anew
        return [[{k: v for k, v in r.items() if k != "seconds"} for r in g["runs"]] for g in genotypes]

    assert runs(again["genotypes"]) == runs(genos)


@pytest.mark.slow
def test_quick_budget_protocol_trains_each_budget_network_beside_random_ones_of_its_cost(tmp_path, data_root):
    """``--budgets``: a latency table measured first, a search for 90 % of the paper's latency
    (relative to it), random genotypes of its predicted latency, every one trained; the budget
    table and the "budget - matched random" interval agree with the runs."""
    from cdnet_reid.modeling.space.genotype import load_genotype
    from cdnet_reid.search.cost_table import genotype_cost, load_cost_table

    out = tmp_path / "b"
    stdout = _quick(out, data_root, "--search-seeds", "--random-seeds", "--budgets", "0.9", "--matched-random", "2",
                    "--train-seeds", "0")
    assert "[1/6] latency table" in stdout and "[6/6]" in stdout  # table, search, 4 trainings
    table = load_cost_table(str(out / "latency_table" / "table.json"), "latency")
    assert table["latency_calibration"]["scale"] > 0 and table["input_size"] == [32, 16]
    res = json.loads((out / "results.json").read_text())
    genos = {g["name"]: g for g in res["genotypes"]}
    assert [g["group"] for g in res["genotypes"]] == ["paper", "budget", "matched random", "matched random"]
    budget = load_genotype(str(out / "search_budget90_seed0" / "genotype_final.json"))
    paper_ms = genotype_cost(table, load_genotype("cdnet_top2"), "latency")
    assert budget.cost["reference"] == "cdnet_top2" and budget.cost["fraction"] == 0.9
    assert budget.cost["target"] == pytest.approx(0.9 * paper_ms) and budget.cost["mode"] == "target"
    own = genotype_cost(table, budget, "latency")
    matched = [g for g in res["genotypes"] if g["group"] == "matched random"]
    for g in matched:
        drawn = load_genotype(g["genotype"])
        assert abs(genotype_cost(table, drawn, "latency") / own - 1) <= 0.05
        assert drawn.meta["matched_to"] == "budget90_seed0" and drawn.layers != budget.layers
    (row,) = res["budgets"]
    assert row["predicted_vs_paper"] == pytest.approx(own / paper_ms)
    measured = genos["budget90_seed0"]["latency_ms"] / genos["paper"]["latency_ms"]
    assert row["measured_vs_paper"] == pytest.approx(measured)
    assert row["matched_mAP"] == pytest.approx(np.mean([g["runs"][0]["mAP"] for g in matched]))
    (ci,) = res["intervals"]
    assert ci["difference"] == "budget - matched random"
    assert ci["estimate"] == pytest.approx(genos["budget90_seed0"]["runs"][0]["mAP"] - row["matched_mAP"])
    assert re.search(r"\| budget90_seed0 +\| 90% +\|", (out / "results.md").read_text())
    assert {s["name"] for s in res["supernets"]} == {"search_budget90_seed0"}
    stdout = _quick(out, data_root, "--search-seeds", "--random-seeds", "--budgets", "0.9", "--matched-random", "2",
                    "--train-seeds", "0", "--resume")
    assert stdout.count("read back") == 6
