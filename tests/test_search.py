"""Architecture search: mixed-op gradients, top-k execution, the split, SearchTrainer end to end."""

import json

import pytest
import torch
from tiny import tiny_cfg
from torch import nn

from cdnet_reid.config import ConfigError, get_cfg
from cdnet_reid.engine import DefaultTrainer
from cdnet_reid.modeling import build_model
from cdnet_reid.modeling.space import MixedOp, load_genotype, topk_weights
from cdnet_reid.search import CDNetSupernet, SearchTrainer, split_per_identity, unrolled_grads
from cdnet_reid.utils.env import seed_all_rng


class Scale(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.s = s
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x * self.s


def test_alpha_gradient_matches_the_closed_form():
    torch.manual_seed(0)
    ops = [Scale(float(s)) for s in (1, -2, 3, 0.5, 4)]
    mixed = MixedOp(ops)
    alpha = torch.tensor([[0.3, -0.1, 0.5, 0.2, -0.4]], requires_grad=True)
    order = torch.arange(5).view(1, 5)
    w, selected = topk_weights(alpha, 2, order)
    assert selected.tolist() == [[2, 0]]
    assert torch.equal(w.detach(), torch.tensor([[1.0, 0, 1, 0, 0]]))
    x = torch.randn(2, 3, 4, 4)
    G = torch.randn(2, 3, 4, 4)
    y = mixed(x, w[0], selected[0].tolist())
    assert torch.allclose(y, ops[2](x) + ops[0](x))  # value: the plain sum of the selected ops
    (y * G).sum().backward()
    p = torch.softmax(alpha.detach(), -1)[0]
    g = torch.tensor([(G * x * ops[i].s).sum() if i in (0, 2) else G.sum() for i in range(5)])
    expected = p * (g - (p * g).sum())  # softmax Jacobian: dL/da_j = p_j (g_j - sum_i p_i g_i)
    assert torch.allclose(alpha.grad[0], expected, atol=1e-4)
    assert alpha.grad[0, 1] != 0 and torch.isclose(alpha.grad[0, 1] / p[1], alpha.grad[0, 3] / p[3])


def test_only_k_candidates_run_in_topk_and_all_in_softmax():
    net = CDNetSupernet(width_mult=0.25, topk=2, seed=1)
    calls = [0] * 12
    for j, op in enumerate(net.cells[0].candidates):
        op.register_forward_hook(lambda m, i, o, j=j: calls.__setitem__(j, calls[j] + 1))
    net(torch.randn(2, 3, 32, 16))
    assert sum(1 for c in calls if c) == 2 and sum(calls) == 2
    net.mode = "softmax"
    calls[:] = [0] * 12
    net(torch.randn(2, 3, 32, 16))
    assert calls == [1] * 12


def test_ties_are_broken_reproducibly_from_the_seed():
    a, b, c = (CDNetSupernet(width_mult=0.25, seed=s) for s in (4, 4, 5))
    assert torch.equal(a.tie_order, b.tie_order) and not torch.equal(a.tie_order, c.tie_order)
    _, selected = a.selection()
    assert selected == [row[:2] for row in a.tie_order.tolist()]  # all alphas tied at 1e-3
    assert len({tuple(s) for s in selected}) > 1  # not the same two ops in every layer


def test_supernet_weight_counts_match_the_original():
    def count(name):
        cfg = get_cfg()
        cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.HEADS.NUM_CLASSES", "751",
                             "MODEL.BACKBONE.NAME", name, "MODEL.HEADS.NAME", "SearchHead"])
        model = build_model(cfg)
        alphas = model.backbone.arch_parameters()
        assert len(alphas) == 1 and alphas[0].shape == (6, 12 if name.startswith("CD") else 6)
        return sum(p.numel() for p in model.parameters() if all(p is not a for a in alphas))

    assert count("CDNetSupernet") == 19_526_735
    assert count("CNetSupernet") == 7_811_471


def test_split_disjoint_and_authors():
    pids = [0] * 2 + [1] * 4 + [2] * 5 + [3] * 8 + [4] * 1
    w, a = split_per_identity(pids, 4, "disjoint", seed=0)
    assert not set(w) & set(a) and sorted(w + a) == list(range(len(pids)))

    def per_id(idx):
        return [sum(pids[i] == p for i in idx) for p in range(5)]

    assert per_id(a) == [1, 2, 2, 4, 0]
    assert split_per_identity(pids, 4, "disjoint", seed=0) == (w, a)
    w, a = split_per_identity(pids, 4, "authors", seed=0)
    assert per_id(a) == [4, 4, 4, 4, 4]  # exactly K per identity (the original split)
    assert per_id(w) == [4, 4, 4, 4, 4]  # n<4 -> 4 draws; n=4 keeps all; n=5 -> 4; n=8 -> 4
    ids3 = [i for i in range(len(pids)) if pids[i] == 3]
    assert len(set(a) & set(ids3) & set(w)) == 0  # n=8: r=4 removed, no top-up
    ids2 = [i for i in range(len(pids)) if pids[i] == 2]
    assert len(set(a) & set(w) & set(ids2)) == 3  # n=5: r=1 removed, 3 top-ups shared
    with pytest.raises(ValueError, match="SEARCH.SPLIT"):
        split_per_identity(pids, 4, "random")


def search_cfg(out, data_root, **kw):
    opts = dict(MODEL__BACKBONE__NAME="CDNetSupernet", MODEL__HEADS__NAME="SearchHead",
                MODEL__BACKBONE__WIDTH_MULT="0.25", TRAINER__NAME="SearchTrainer", SEARCH__GENOTYPE_PERIOD="1",
                INPUT__SIZE_TRAIN="[64,32]", INPUT__SIZE_TEST="[64,32]", SOLVER__MAX_EPOCH="2",
                SOLVER__SCHED="Cosine", SOLVER__LR_LIST="[]", SEARCH__ARCH_LR="0.05",
                SEARCH__ARCH_MILESTONES="[2]", TEST__EVAL_PERIOD="0", TEST__BEST_METRIC="''",
                DETERMINISTIC="True")
    opts.update(kw)
    return tiny_cfg(out, data_root, **opts)


def _run(cfg, resume=False, kill_at=None):
    seed_all_rng(cfg.SEED)
    trainer = SearchTrainer(cfg)
    if kill_at is not None:
        from cdnet_reid.engine import HookBase

        class Kill(HookBase):
            def before_step(self):
                if self.trainer.iter == kill_at:
                    raise KeyboardInterrupt

        trainer.register_hooks([Kill()])
    trainer.resume_or_load(resume=resume)
    trainer.train()
    return trainer


def test_unrolled_search_needs_sgd_and_softmax(tmp_path, data_root):
    for opts, message in ((dict(SOLVER__OPT="Adam"), "SOLVER.OPT SGD, got 'Adam'"),
                          (dict(SEARCH__MODE="topk"), "SEARCH.MODE softmax")):
        cfg = search_cfg(tmp_path, data_root, **{"SEARCH__MODE": "softmax", "SEARCH__UNROLLED": "True", **opts})
        with pytest.raises(ConfigError, match=message):
            SearchTrainer(cfg)


@pytest.mark.slow
def test_search_splits_the_training_set_once(tmp_path, data_root, monkeypatch):
    import cdnet_reid.search.trainer as search_trainer

    calls = []
    split = search_trainer.split_per_identity
    monkeypatch.setattr(search_trainer, "split_per_identity", lambda *a, **k: calls.append(a) or split(*a, **k))
    trainer = SearchTrainer(search_cfg(tmp_path, data_root))
    assert len(calls) == 1
    weight, arch = split(*calls[0], seed=0)  # SEED 0
    assert len(trainer.data_loader.dataset) == len(weight) and len(trainer.arch_loader.dataset) == len(arch)


@pytest.fixture(scope="module")
def search_run(tmp_path_factory, data_root):
    out = tmp_path_factory.mktemp("search")
    return out, _run(search_cfg(out, data_root))


@pytest.mark.slow
def test_search_keeps_alphas_out_of_the_weight_optimizer_and_in_checkpoints(search_run):
    out, trainer = search_run
    alphas = trainer.supernet.alphas
    assert trainer.model.arch_parameters() == [alphas]
    assert all(p is not alphas for p in trainer.model.weight_parameters())
    assert all(p is not alphas for g in trainer.optimizer.param_groups for p in g["params"])
    assert [p for g in trainer.arch_optimizer.param_groups for p in g["params"]] == [alphas]
    assert not torch.allclose(alphas, torch.full_like(alphas, 1e-3))  # α moved
    ckpt = torch.load(out / "model_final.pth", weights_only=True)
    assert torch.equal(ckpt["model"]["backbone.alphas"], alphas.detach())
    assert "arch_optimizer" in ckpt and "arch_scheduler" in ckpt and ckpt["genotype"]["space"] == "cdnet"
    lines = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    steps = [m for m in lines if "total_loss" in m]
    assert len(steps) == trainer.max_iter and all("arch/total_loss" in m for m in steps)


@pytest.mark.slow
def test_search_writes_a_genotype_that_training_consumes(search_run, tmp_path, data_root):
    out, trainer = search_run
    for name in ("genotype_epoch0001.json", "genotype_epoch0002.json", "genotype_final.json"):
        assert (out / name).exists(), name
    geno = load_genotype(str(out / "genotype_final.json"))
    assert geno.layers == trainer.supernet.genotype.layers
    assert len(geno.meta["probabilities"]) == 6 and geno.alphas is not None
    cfg = tiny_cfg(tmp_path, data_root, MODEL__BACKBONE__NAME="CDNet", MODEL__HEADS__NAME="FBLNeck",
                   MODEL__BACKBONE__GENOTYPE=str(out / "genotype_final.json"),
                   MODEL__BACKBONE__WIDTH_MULT="0.25", MODEL__HEADS__PART_DIM="16",
                   INPUT__SIZE_TRAIN="[64,32]", INPUT__SIZE_TEST="[64,32]", SOLVER__MAX_EPOCH="1",
                   TEST__EVAL_PERIOD="0")
    seed_all_rng(0)
    t = DefaultTrainer(cfg)
    assert t.model.backbone.genotype.layers == geno.layers
    t.resume_or_load(resume=False)
    results = t.train()
    # --eval-only rebuilds the searched network from the genotype stored in the checkpoint, even
    # when the config names another genotype
    cfg.defrost()
    cfg.MODEL.BACKBONE.GENOTYPE = "cdnet_top2"
    cfg.MODEL.WEIGHTS = str(tmp_path / "model_final.pth")
    model = DefaultTrainer.build_model_for_eval(cfg)
    assert model.backbone.genotype.layers == geno.layers
    again = DefaultTrainer.test(cfg, model)["TinySyntheticReID"]
    assert again["mAP"] == pytest.approx(results["TinySyntheticReID"]["mAP"], abs=1e-6)


@pytest.mark.slow
def test_search_resume_reproduces_uninterrupted_run(search_run, tmp_path, data_root):
    _, full = search_run
    cfg = search_cfg(tmp_path, data_root, SOLVER__CHECKPOINT_PERIOD="1")
    with pytest.raises(KeyboardInterrupt):
        _run(cfg, kill_at=4)
    resumed = _run(cfg, resume=True)
    assert resumed.start_iter == 3
    ref = full.model.state_dict()
    for k, v in resumed.model.state_dict().items():
        assert torch.equal(v, ref[k]), k
    assert resumed.arch_optimizer.state_dict()["state"][0]["exp_avg"].equal(
        full.arch_optimizer.state_dict()["state"][0]["exp_avg"])


@pytest.mark.slow
def test_unrolled_gradient_has_no_side_effects(data_root, tmp_path):
    cfg = search_cfg(tmp_path, data_root, SEARCH__MODE="softmax", SEARCH__UNROLLED="True",
                     SOLVER__MAX_EPOCH="1", MODEL__BACKBONE__NAME="CNetSupernet")
    seed_all_rng(0)
    trainer = SearchTrainer(cfg)
    module = trainer.model
    batch = next(iter(trainer.data_loader))
    arch_batch = next(iter(trainer.arch_loader))
    before = {k: v.clone() for k, v in module.state_dict().items()}
    grads = unrolled_grads(module, lambda b: sum(module(b).values()), batch, arch_batch,
                           module.arch_parameters(), trainer.optimizer)
    assert grads[0].shape == (6, 6) and torch.isfinite(grads[0]).all() and grads[0].abs().sum() > 0
    for k, v in module.state_dict().items():
        assert torch.equal(v, before[k]), k
    trainer.resume_or_load(resume=False)
    trainer.train()  # one epoch of second-order search runs end to end
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in module.parameters())
