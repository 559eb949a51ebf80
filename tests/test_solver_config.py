"""The SOLVER keys are checked before anything is built: one ConfigError naming the key and the
value (one ``error:`` line with exit status 2 from the command line), and BASE_LR has one meaning."""

import json

import pytest
from tiny import tiny_cfg, tiny_opts

from cdnet_reid.config import ConfigError, get_cfg
from cdnet_reid.engine import DefaultTrainer, main
from cdnet_reid.solver import check_lr_schedule


def _cfg(*opts):
    cfg = get_cfg()
    cfg.merge_from_list(list(opts))
    return cfg


@pytest.mark.parametrize("opts,match", [
    (["SOLVER.BASE_LR", "0.0", "SOLVER.LR_LIST", "[]"], r"^SOLVER\.BASE_LR must be a finite number > 0, got 0\.0$"),
    (["SOLVER.BASE_LR", "-0.1", "SOLVER.SCHED", "Cosine"], r"SOLVER\.BASE_LR must be .*got -0\.1$"),
    (["SOLVER.BASE_LR", "1e999"], r"SOLVER\.BASE_LR must be a finite number > 0, got inf$"),
    (["SOLVER.BASE_LR", "0.01"], r"^SOLVER\.BASE_LR is 0\.01 but SOLVER\.LR_LIST \[0\.065, 0\.0065, 0\.00065, "
                                 r"6\.5e-05\] starts at 0\.065: .*set SOLVER\.LR_LIST too \(e\.g\. "
                                 r"\[0\.01,0\.001,0\.0001,1e-05\]\), or SOLVER\.LR_LIST \[\] for "
                                 r"BASE_LR x SOLVER\.GAMMA"),
    (["SOLVER.LR_LIST", "[0.065, 0, 0.1, 0.1]"], r"^SOLVER\.LR_LIST\[1\] must be a finite number > 0, got 0$"),
    (["SOLVER.LR_LIST", "[0.065, 0.0065]"], r"SOLVER\.LR_LIST needs len\(SOLVER\.MILESTONES\) \+ 1 = 4 values"),
    (["SOLVER.MILESTONES", "[5, 3]", "SOLVER.LR_LIST", "[]"], r"SOLVER\.MILESTONES must be strictly increasing"),
    (["SOLVER.LR_LIST", "[]", "SOLVER.GAMMA", "0.0"], r"^SOLVER\.GAMMA must be a finite number > 0, got 0\.0$"),
    (["SOLVER.SCHED", "Poly"], r"SOLVER\.SCHED must be 'MultiStep', 'Cosine' or 'Exponential', got 'Poly'"),
    (["SOLVER.SCHED", "Cosine", "SOLVER.ETA_MIN_LR", "-1.0"], r"SOLVER\.ETA_MIN_LR must be a finite number >= 0"),
    (["SOLVER.WARMUP_METHOD", "cubic"], r"SOLVER\.WARMUP_METHOD must be 'linear' or 'constant', got 'cubic'"),
    (["SOLVER.WARMUP_ITERS", "-1"], r"SOLVER\.WARMUP_ITERS must be an integer >= 0, got -1"),
    (["SOLVER.MAX_EPOCH", "0"], r"SOLVER\.MAX_EPOCH must be an integer >= 1, got 0"),
    (["SOLVER.ITERS_PER_EPOCH", "10", "SOLVER.MAX_EPOCH", "3", "SOLVER.WARMUP_ITERS", "30"],
     r"^SOLVER\.WARMUP_ITERS 30 is not shorter than the run: SOLVER\.MAX_EPOCH 3 x 10 iterations per epoch = 30 "),
])
def test_bad_solver_keys_are_named_before_anything_is_built(opts, match):
    with pytest.raises(ConfigError, match=match) as info:
        check_lr_schedule(_cfg(*opts))
    assert "\n" not in str(info.value)


def test_warmup_longer_than_the_run_is_found_once_the_epoch_is_known():
    cfg = _cfg("SOLVER.MAX_EPOCH", "2", "SOLVER.WARMUP_ITERS", "50")
    check_lr_schedule(cfg)  # the epoch length comes from the data
    with pytest.raises(ConfigError, match=r"WARMUP_ITERS 50 is not shorter than the run: .* = 40 iterations"):
        check_lr_schedule(cfg, iters_per_epoch=20)


def test_matching_base_lr_and_lr_list_are_accepted():
    check_lr_schedule(_cfg())  # the defaults
    check_lr_schedule(_cfg("SOLVER.BASE_LR", "0.01", "SOLVER.LR_LIST", "[0.01,0.001,0.0001,0.00001]"))
    check_lr_schedule(_cfg("SOLVER.BASE_LR", "0.01", "SOLVER.LR_LIST", "[]"))
    check_lr_schedule(_cfg("SOLVER.BASE_LR", "0.01", "SOLVER.SCHED", "Cosine"))  # LR_LIST is MultiStep's


def test_the_trainer_checks_the_solver_before_reading_the_data(tmp_path, monkeypatch):
    def unreachable(cls, cfg):
        raise AssertionError("the training data were read")

    monkeypatch.setattr(DefaultTrainer, "build_train_loader", classmethod(unreachable))
    cfg = tiny_cfg(tmp_path, tmp_path / "no_data", SOLVER__BASE_LR="0.0")
    with pytest.raises(ConfigError, match="SOLVER.BASE_LR must be a finite number > 0, got 0.0"):
        DefaultTrainer(cfg)


def _lrs(out_dir):
    rows = [json.loads(line) for line in (out_dir / "metrics.json").read_text().splitlines()]
    return {r["iteration"]: r["lr"] for r in rows if "lr" in r}


@pytest.mark.slow
def test_base_lr_override_changes_the_logged_lr_or_refuses(tmp_path, data_root, capsys):
    """``SOLVER.BASE_LR 0.01`` (the tools' --help example) used to be ignored when LR_LIST was set."""
    base = ["SOLVER.MAX_EPOCH", "2", "SOLVER.MILESTONES", "[2]", "TEST.EVAL_PERIOD", "0",
            "TEST.BEST_METRIC", "''"]
    with pytest.raises(SystemExit) as info:  # LR_LIST [0.05, 0.005] (tiny_opts) disagrees
        main(tiny_opts(tmp_path / "refused", data_root) + base + ["SOLVER.BASE_LR", "0.01"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: SOLVER.BASE_LR is 0.01 but SOLVER.LR_LIST [0.05, 0.005]")
    assert not (tmp_path / "refused" / "metrics.json").exists()

    main(tiny_opts(tmp_path / "gamma", data_root) + base + ["SOLVER.BASE_LR", "0.01", "SOLVER.LR_LIST", "[]"])
    lrs = _lrs(tmp_path / "gamma")  # 3 iterations per epoch (tiny_opts); epoch 2 starts at iteration 3
    assert lrs[0] == pytest.approx(0.01) and lrs[2] == pytest.approx(0.01)
    assert lrs[3] == pytest.approx(0.001) and lrs[5] == pytest.approx(0.001)
