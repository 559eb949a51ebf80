"""LR schedules (values at boundaries, warm-up, checkpoint round trip) and parameter groups."""

import io
import math

import pytest
import torch
from torch import nn

from cdnet_reid.config import get_cfg
from cdnet_reid.solver import build_lr_scheduler, build_optimizer, get_param_groups


def _lrs(cfg, ipe):
    model = nn.Linear(2, 2)
    opt = build_optimizer(cfg, model)
    sched = build_lr_scheduler(cfg, opt, ipe)
    out = []
    for _ in range(cfg.SOLVER.MAX_EPOCH * ipe):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def lr_at(lrs, epoch, ipe, it=0):
    """LR during iteration ``it`` of 1-based ``epoch``."""
    return lrs[(epoch - 1) * ipe + it]


def test_paper_step_list_switches_at_epochs_150_225_300():
    cfg = get_cfg()  # defaults are the paper's recipe
    ipe = 3
    lrs = _lrs(cfg, ipe)
    expected = {1: 0.065, 149: 0.065, 150: 0.0065, 224: 0.0065, 225: 0.00065, 299: 0.00065,
                300: 0.000065, 350: 0.000065}
    for epoch, lr in expected.items():
        assert lr_at(lrs, epoch, ipe) == pytest.approx(lr)
        assert lr_at(lrs, epoch, ipe, ipe - 1) == pytest.approx(lr)


def test_gamma_steps_when_no_lr_list_and_unreached_milestones():
    cfg = get_cfg()
    cfg.merge_from_list(["SOLVER.LR_LIST", "[]", "SOLVER.BASE_LR", "1.0", "SOLVER.GAMMA", "0.5",
                         "SOLVER.MILESTONES", "[3, 5, 40]", "SOLVER.MAX_EPOCH", "6"])
    lrs = _lrs(cfg, 2)
    assert [lr_at(lrs, e, 2) for e in range(1, 7)] == pytest.approx([1, 1, .5, .5, .25, .25])


def test_linear_and_constant_warmup_do_not_shift_milestones():
    cfg = get_cfg()
    cfg.merge_from_list(["SOLVER.MAX_EPOCH", "10", "SOLVER.MILESTONES", "[4]",
                         "SOLVER.LR_LIST", "[0.1, 0.01]", "SOLVER.BASE_LR", "0.1",
                         "SOLVER.WARMUP_ITERS", "10", "SOLVER.WARMUP_FACTOR", "0.1"])
    lrs = _lrs(cfg, 5)
    assert lrs[0] == pytest.approx(0.01)
    assert lrs[5] == pytest.approx(0.01 + (0.1 - 0.01) * 5 / 10)
    assert lrs[10] == pytest.approx(0.1) and lrs[14] == pytest.approx(0.1)
    assert lrs[15] == pytest.approx(0.01)  # epoch 4 starts at iteration 15, warm-up or not
    cfg.merge_from_list(["SOLVER.WARMUP_METHOD", "constant"])
    lrs = _lrs(cfg, 5)
    assert lrs[0] == lrs[9] == pytest.approx(0.01) and lrs[10] == pytest.approx(0.1)


def test_cosine_and_exponential():
    cfg = get_cfg()
    cfg.merge_from_list(["SOLVER.SCHED", "Cosine", "SOLVER.BASE_LR", "0.025",
                         "SOLVER.ETA_MIN_LR", "0.0001", "SOLVER.MAX_EPOCH", "240"])
    lrs = _lrs(cfg, 1)
    assert lrs[0] == pytest.approx(0.025)
    assert lrs[120] == pytest.approx(0.0001 + 0.5 * (0.025 - 0.0001))
    assert lrs[-1] == pytest.approx(0.0001, rel=0.05)
    cfg = get_cfg()
    cfg.merge_from_list(["SOLVER.SCHED", "Exponential", "SOLVER.BASE_LR", "0.1",
                         "SOLVER.GAMMA", "0.97", "SOLVER.MAX_EPOCH", "240"])
    lrs = _lrs(cfg, 2)
    for epoch in (1, 50, 240):  # epoch E trains at 0.1 * 0.97 ** E
        assert lr_at(lrs, epoch, 2) == pytest.approx(0.1 * 0.97 ** epoch)
        assert lr_at(lrs, epoch, 2, 1) == pytest.approx(0.1 * 0.97 ** epoch)
    assert lr_at(lrs, 240, 2) == pytest.approx(6.69e-5, rel=1e-3)


def test_scheduler_state_round_trips_with_weights_only():
    cfg = get_cfg()
    cfg.merge_from_list(["SOLVER.MAX_EPOCH", "10", "SOLVER.MILESTONES", "[4]",
                         "SOLVER.LR_LIST", "[0.1, 0.01]", "SOLVER.BASE_LR", "0.1"])
    model = nn.Linear(2, 2)
    opt = build_optimizer(cfg, model)
    sched = build_lr_scheduler(cfg, opt, 5)
    for _ in range(17):
        opt.step()
        sched.step()
    buf = io.BytesIO()
    torch.save({"scheduler": sched.state_dict(), "optimizer": opt.state_dict()}, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    opt2 = build_optimizer(cfg, nn.Linear(2, 2))
    sched2 = build_lr_scheduler(cfg, opt2, 5)
    opt2.load_state_dict(state["optimizer"])
    sched2.load_state_dict(state["scheduler"])
    assert sched2.last_epoch == 17
    opt2.step()
    sched2.step()
    opt.step()
    sched.step()
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"] == pytest.approx(0.01)


def test_bad_schedules_are_reported():
    cfg = get_cfg()
    cfg.merge_from_list(["SOLVER.LR_LIST", "[0.1, 0.01]"])
    with pytest.raises(ValueError, match="LR_LIST needs"):
        _lrs(cfg, 1)
    cfg = get_cfg()
    cfg.merge_from_list(["SOLVER.SCHED", "Poly"])
    with pytest.raises(ValueError, match="SOLVER.SCHED"):
        _lrs(cfg, 1)


def test_param_groups_weight_decay_options():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=True), nn.BatchNorm2d(4), nn.Linear(4, 2))
    groups = get_param_groups(model, base_lr=0.1, weight_decay=5e-4)
    assert len(groups) == 1 and groups[0]["weight_decay"] == 5e-4  # the paper: decay everything
    assert len(groups[0]["params"]) == 6
    groups = get_param_groups(model, base_lr=0.1, weight_decay=5e-4, weight_decay_norm=0.0,
                              weight_decay_bias=0.0, bias_lr_factor=2.0, exclude=[model[2].weight])
    by_wd = {}
    for g in groups:
        by_wd.setdefault((g["weight_decay"], g["lr"]), 0)
        by_wd[(g["weight_decay"], g["lr"])] += len(g["params"])
    assert by_wd == {(5e-4, 0.1): 1, (0.0, 0.1): 2, (0.0, 0.2): 2}
    assert not math.isnan(sum(g["lr"] for g in groups))
