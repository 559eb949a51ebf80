"""A search for a budget: the cost table, the expected-cost penalty and its gradient, a tiny
constrained search, the latency-table command."""

import json
import subprocess
import sys

import pytest
import torch
from test_search import search_cfg
from tiny import tiny_cfg

from cdnet_reid.config import ConfigError
from cdnet_reid.modeling import build_model
from cdnet_reid.modeling.space import load_genotype
from cdnet_reid.search import SearchTrainer
from cdnet_reid.search.cost import CostTerm, check_cost_config
from cdnet_reid.search.cost_table import (
    CostTableError,
    build_cost_table,
    cost_matrix,
    genotype_cost,
    load_cost_table,
    save_cost_table,
)
from cdnet_reid.utils.complexity import conv_linear_macs, inference_parameters, mac_analysis
from cdnet_reid.utils.env import seed_all_rng

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
#: The tiny search: CNet space, width 0.25, 32x16 crops, 4 epochs of 3 iterations, a fast
#: architecture LR.
TINY = dict(MODEL__BACKBONE__NAME="CNetSupernet", INPUT__SIZE_TRAIN="[32,16]", INPUT__SIZE_TEST="[32,16]",
            SEARCH__ARCH_LR="0.3", SOLVER__MAX_EPOCH="4", SEARCH__ARCH_MILESTONES="[]")


def test_cost_penalty_gradient_matches_finite_differences():
    torch.manual_seed(0)
    costs = torch.rand(3, 5, dtype=torch.float64).tolist()
    term = CostTerm("macs", fixed=0.7, costs=costs, target=2.0, weight=1.7)
    alphas = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    assert term.expected(alphas) > 2.0  # above the budget: the penalty is active
    base = torch.randn(3, 5, dtype=torch.float64)
    losses = {}
    (grad,) = term.add_to_grads([base.clone()], [alphas], losses)  # what the architecture step adds
    grad = grad - base
    assert float(losses["loss_cost"]) == pytest.approx(1.7 * (float(term.expected(alphas.detach())) / 2.0 - 1))
    eps, fd = 1e-6, torch.zeros_like(alphas)
    with torch.no_grad():
        for i in range(3):
            for j in range(5):
                a = alphas.clone()
                a[i, j] += eps
                hi = term(a)
                a[i, j] -= 2 * eps
                fd[i, j] = (hi - term(a)) / (2 * eps)
    assert torch.allclose(grad, fd, rtol=1e-6, atol=1e-9)
    assert grad.abs().max() > 1e-3
    # below the budget it is zero, and so is its gradient
    low = CostTerm("macs", fixed=0.7, costs=costs, target=100.0, weight=1.7)
    (zero,) = low.add_to_grads([torch.zeros_like(base)], [alphas], {})
    assert float(low(alphas).detach()) == 0.0 and torch.count_nonzero(zero) == 0
    # mode "target": below the budget the penalty pulls E[cost] up, with the opposite gradient
    up = CostTerm("macs", fixed=0.7, costs=costs, target=100.0, weight=1.7, mode="target")
    (pull,) = up.add_to_grads([torch.zeros_like(base)], [alphas], {})
    assert float(up(alphas).detach()) == pytest.approx(1.7 * (1 - float(up.expected(alphas.detach())) / 100.0))
    above = CostTerm("macs", fixed=0.7, costs=costs, target=2.0, weight=1.7, mode="target")
    (push,) = above.add_to_grads([torch.zeros_like(base)], [alphas], {})
    assert torch.allclose(push, grad) and torch.allclose(pull, -grad * 2.0 / 100.0)


def test_cost_config_contradictions_are_errors(tmp_path):
    cfg = search_cfg(tmp_path, tmp_path)
    assert check_cost_config(cfg) is None  # off by default: the paper's search
    for kv, match in ((["SEARCH.COST.TARGET", "5.0"], "KIND is empty"),
                      (["SEARCH.COST.KIND", "flops", "SEARCH.COST.TARGET", "5.0"], "KIND must be"),
                      (["SEARCH.COST.KIND", "macs"], "TARGET must be > 0"),
                      (["SEARCH.COST.KIND", "latency", "SEARCH.COST.TARGET", "5.0"], "needs SEARCH.COST.TABLE")):
        c = cfg.clone()
        c.merge_from_list(kv)
        with pytest.raises(ConfigError, match=match):
            check_cost_config(c)


@pytest.fixture(scope="module")
def tiny_table(tmp_path_factory):
    cfg = search_cfg(tmp_path_factory.mktemp("table"), "unused", **TINY)
    return cfg, build_cost_table(cfg, measure_latency=False)


def test_table_predicts_the_measured_macs_and_params_of_a_genotype(tiny_table, tmp_path):
    cfg, table = tiny_table
    assert len(table["layers"]) == 6 and all(len(r["candidates"]) == 6 for r in table["layers"])
    geno = load_genotype("cnet_top2")
    final = cfg.clone()
    final.merge_from_list(["MODEL.BACKBONE.NAME", "CNet", "MODEL.HEADS.NUM_CLASSES", "12"])
    model = build_model(final, stored={"genotype": geno.to_dict()}).eval()
    x = torch.rand(1, 3, 32, 16) * 255
    assert genotype_cost(table, geno, "macs") == conv_linear_macs(mac_analysis(model, x))
    assert genotype_cost(table, geno, "params") == inference_parameters(model, x)


def test_a_budget_relative_to_a_reference_genotype_is_that_fraction_of_its_predicted_cost(tiny_table, tmp_path):
    from cdnet_reid.search.cost import build_cost_term
    from cdnet_reid.search.supernet import Supernet

    cfg, table = tiny_table
    supernet = next(m for m in build_model(cfg).modules() if isinstance(m, Supernet))
    ref_macs = genotype_cost(table, load_genotype("cnet_top2"), "macs")
    save_cost_table(table, str(tmp_path / "t.json"))  # read back, not rebuilt, by every build below
    c = cfg.clone()
    c.merge_from_list(["SEARCH.COST.KIND", "macs", "SEARCH.COST.TABLE", str(tmp_path / "t.json"),
                       "SEARCH.COST.REFERENCE", "cnet_top2", "SEARCH.COST.TARGET", "0.9"])
    term = build_cost_term(c, supernet)
    assert term.target == pytest.approx(0.9 * ref_macs)
    record = term.record(load_genotype("cnet_top2"))
    assert record["reference"] == "cnet_top2" and record["fraction"] == 0.9
    assert record["predicted"] == pytest.approx(ref_macs)
    geno = load_genotype("cnet_top2")
    geno.cost = record
    from cdnet_reid.modeling.space import save_genotype

    save_genotype(geno, str(tmp_path / "g.json"))  # the record passes the genotype file's check
    assert load_genotype(str(tmp_path / "g.json")).cost == record
    fixed, costs = cost_matrix(table, "macs")
    too_low = (fixed + sum(map(min, costs))) / ref_macs * 0.99
    for kv, match in ((["SEARCH.COST.TARGET", str(too_low)], "below the cheapest network"),
                      (["SEARCH.COST.REFERENCE", "cdnet_top2"], "REFERENCE cdnet_top2: a 6-layer cdnet genotype"),
                      (["SEARCH.COST.REFERENCE", str(tmp_path / "missing.json")], "missing.json")):
        bad = c.clone()
        bad.merge_from_list(kv)
        with pytest.raises(ConfigError, match=match):
            build_cost_term(bad, supernet)
    off = cfg.clone()
    off.merge_from_list(["SEARCH.COST.REFERENCE", "cnet_top2"])
    with pytest.raises(ConfigError, match="REFERENCE is set"):
        check_cost_config(off)


def _search(cfg):
    seed_all_rng(cfg.SEED)
    trainer = SearchTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    return trainer


@pytest.mark.slow
def test_constrained_search_lands_under_its_target(tiny_table, tmp_path, data_root):
    _, table = tiny_table
    fixed, costs = cost_matrix(table, "params")
    lo, hi = fixed + sum(map(min, costs)), fixed + sum(map(max, costs))
    target = lo + 0.25 * (hi - lo)
    free = _search(search_cfg(tmp_path / "free", data_root, **TINY)).supernet.genotype
    assert genotype_cost(table, free, "params") > target  # the unconstrained search does not fit
    cfg = search_cfg(tmp_path / "budget", data_root, SEARCH__COST__KIND="params",
                     SEARCH__COST__TARGET=str(target), **TINY)
    trainer = _search(cfg)
    geno = trainer.supernet.genotype
    assert genotype_cost(table, geno, "params") <= target
    saved = load_genotype(str(tmp_path / "budget" / "genotype_final.json"))
    assert saved.layers == geno.layers
    assert saved.cost["kind"] == "params" and saved.cost["target"] == pytest.approx(target)
    assert saved.cost["predicted"] == pytest.approx(genotype_cost(table, geno, "params"))
    metrics = [json.loads(line) for line in (tmp_path / "budget" / "metrics.json").read_text().splitlines()]
    assert any("arch/loss_cost" in m for m in metrics) and any("arch/cost_expected" in m for m in metrics)


def test_genotype_cost_record_round_trips_and_is_checked(tmp_path):
    from cdnet_reid.modeling.space import GenotypeError, save_genotype

    geno = load_genotype("cdnet_top2")
    assert "cost" not in geno.to_dict()  # files without a budget are unchanged
    geno.cost = {"kind": "macs", "unit": "MACs", "target": 1e6, "predicted": 9e5, "table": None}
    save_genotype(geno, str(tmp_path / "g.json"))
    assert load_genotype(str(tmp_path / "g.json")).cost == geno.cost
    bad = json.loads((tmp_path / "g.json").read_text())
    bad["cost"]["target"] = "fast"
    (tmp_path / "b.json").write_text(json.dumps(bad))
    with pytest.raises(GenotypeError, match="cost.target"):
        load_genotype(str(tmp_path / "b.json"))


def test_a_table_is_checked_on_load(tiny_table, tmp_path):
    _, table = tiny_table
    save_cost_table(table, str(tmp_path / "t.json"))
    assert load_cost_table(str(tmp_path / "t.json")) == table
    with pytest.raises(CostTableError, match="no 'latency_ms'"):
        load_cost_table(str(tmp_path / "t.json"), "latency")
    broken = json.loads(json.dumps(table))
    broken["layers"][2]["candidates"][5]["macs"] = -1
    (tmp_path / "b.json").write_text(json.dumps(broken))
    with pytest.raises(CostTableError, match=r"b.json: key 'layers\[2\].candidates\[5\].macs'"):
        load_cost_table(str(tmp_path / "b.json"))


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "cdnet_reid.cli", "latency-table", *args], cwd=cwd,
                          capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


@pytest.mark.slow
def test_a_calibrated_table_scales_latency_only_and_is_checked(tiny_table):
    table = json.loads(json.dumps(tiny_table[1]))
    table["fixed"]["latency_ms"] = 1.0
    for row in table["layers"]:
        for c in row["candidates"]:
            c["latency_ms"] = 0.5
    geno = load_genotype("cnet_top2")
    raw = genotype_cost(table, geno, "latency")
    table["latency_calibration"] = {"scale": 1.25}
    assert genotype_cost(table, geno, "latency") == pytest.approx(1.25 * raw)
    assert genotype_cost(table, geno, "latency", calibrated=False) == pytest.approx(raw)
    assert genotype_cost(table, geno, "macs") == genotype_cost(tiny_table[1], geno, "macs")
    fixed, costs = cost_matrix(table, "latency")
    assert fixed == pytest.approx(1.25) and costs[0][0] == pytest.approx(0.625)
    from cdnet_reid.search.cost_table import validate_cost_table

    for bad in (0, -1.0, float("nan"), "2", True):
        table["latency_calibration"] = {"scale": bad}
        with pytest.raises(CostTableError, match="latency_calibration.scale"):
            validate_cost_table(table, "t.json")


@pytest.mark.slow
def test_latency_table_command_writes_a_table_and_rejects_a_corrupt_one(tmp_path):
    cfg = tiny_cfg(tmp_path, tmp_path)
    opts = ["MODEL.BACKBONE.NAME", "CNetSupernet", "MODEL.HEADS.NAME", "SearchHead", "MODEL.BACKBONE.WIDTH_MULT",
            "0.25", "INPUT.SIZE_TEST", "[32,16]", "MODEL.HEADS.NUM_CLASSES", "8"]
    (tmp_path / "c.yml").write_text(cfg.dump())
    out = tmp_path / "table.json"
    r = _cli("--config-file", str(tmp_path / "c.yml"), "--runtime", "torch", "--output", str(out),
             "--runs", "2", "--iters", "2", "--warmup", "1", "--threads", "1", "--genotype", "cnet_top2",
             *opts, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    table = load_cost_table(str(out), "latency")
    assert table["runtime"] == "torch" and table["space"] == "cnet" and table["input_size"] == [32, 16]
    assert table["threads"] == 1 and table["batch_size"] == 1 and table["cpu"]
    assert all(c["latency_ms"] > 0 for row in table["layers"] for c in row["candidates"])
    assert set(table["fixed"]["parts"]) == {"stem", "downsample1", "downsample2", "head"}
    assert "cnet genotype" in r.stdout
    # calibrated on whole networks (default 5: the paper's and 4 random), every latency scaled by it
    cal = table["latency_calibration"]
    assert len(cal["genotypes"]) == len(cal["measured_ms"]) == 5
    assert cal["genotypes"][0] == [list(e) for e in load_genotype("cnet_top2").layers]
    assert cal["scale"] > 0 and "latency calibrated on 5 whole networks" in r.stdout
    paper = load_genotype("cnet_top2")
    raw = genotype_cost(table, paper, "latency", calibrated=False)
    assert genotype_cost(table, paper, "latency") == pytest.approx(cal["scale"] * raw)
    assert raw == pytest.approx(cal["predicted_ms"][0], rel=1e-5)
    # a table measured elsewhere: checked, shown
    r = _cli("--table", str(out), cwd=tmp_path)
    assert r.returncode == 0 and "cnet space" in r.stdout, r.stderr
    corrupt = json.loads(out.read_text())
    del corrupt["layers"][1]["candidates"][3]["latency_ms"]
    (tmp_path / "corrupt.json").write_text(json.dumps(corrupt))
    r = _cli("--table", str(tmp_path / "corrupt.json"), cwd=tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith("error:") and "corrupt.json" in lines[0] and "layers[1].candidates[3]" in lines[0]
    (tmp_path / "junk.json").write_text("{not json")
    r = _cli("--table", str(tmp_path / "junk.json"), cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("error:") and "junk.json" in r.stderr
    # onnxruntime: every block exported on its own (the search head reads one of the two maps)
    r = _cli("--config-file", str(tmp_path / "c.yml"), "--runtime", "onnxruntime", "--output", str(tmp_path / "o.json"),
             "--runs", "1", "--iters", "1", "--warmup", "0", "--threads", "1", "--calibrate", "2", *opts, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ort = load_cost_table(str(tmp_path / "o.json"), "latency")
    assert ort["runtime"] == "onnxruntime" and ort["fixed"]["parts"]["head"]["latency_ms"] > 0
    assert len(ort["latency_calibration"]["measured_ms"]) == 2 and ort["latency_calibration"]["scale"] > 0
    try:
        import openvino  # noqa: F401
    except ImportError:  # an absent runtime: one line, before any work
        r = _cli("--config-file", str(tmp_path / "c.yml"), "--runtime", "openvino", *opts, cwd=tmp_path)
        assert r.returncode == 2 and r.stderr.startswith("error:") and "openvino" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_complexity_reports_the_measured_cost_of_a_budget_genotype(tiny_table, tmp_path, capsys):
    from cdnet_reid.apps.complexity import main as complexity

    cfg, table = tiny_table
    geno = load_genotype("cnet_top2")
    predicted = genotype_cost(table, geno, "macs")
    geno.cost = {"kind": "macs", "unit": "MACs", "target": predicted * 2, "predicted": predicted, "table": None,
                 "reference": "cnet_top2", "fraction": 2.0}
    from cdnet_reid.modeling.space import save_genotype

    save_genotype(geno, str(tmp_path / "g.json"))
    final = cfg.clone()
    final.merge_from_list(["MODEL.BACKBONE.NAME", "CNet", "MODEL.BACKBONE.GENOTYPE", str(tmp_path / "g.json")])
    (tmp_path / "c.yml").write_text(final.dump())
    complexity(["--config-file", str(tmp_path / "c.yml")])
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("genotype searched for a budget")]
    assert len(line) == 1 and f"measured {predicted:.6g} here (50.0% of the target)" in line[0], line
    assert f"target {predicted * 2:.6g} MACs (2 x cnet_top2's)" in line[0], line
