"""Trustworthy runs: strict loading, run folders that belong to one run, preemption, resume
robustness and clear errors for files that are not checkpoints."""

import argparse
import json
import logging
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny import tiny_cfg, tiny_opts
from tiny import train as _train
from torch import nn

from cdnet_reid.engine import DefaultTrainer, HookBase, hooks, run_main
from cdnet_reid.engine.resume import ResumeMismatchError
from cdnet_reid.engine.run_record import RunFolderError, RunLock
from cdnet_reid.utils.checkpoint import (
    Checkpointer,
    CheckpointError,
    IncompatibleCheckpointError,
    find_last_checkpoint,
    read_checkpoint,
)
from cdnet_reid.utils.env import seed_all_rng

SCRIPT = str(Path(__file__).resolve().parent / "tiny_train_net.py")


def _args(opts, **flags):
    """The parsed command line of ``train_net.py`` with ``opts`` as KEY VALUE overrides."""
    base = dict(config_file="", import_module=[], opts=list(opts), resume=False, eval_only=False,
                overwrite=False, resume_changed=False)
    return argparse.Namespace(**{**base, **flags})


@pytest.fixture
def messages():
    """Log messages of the ``cdnet_reid`` loggers (which stop propagating once a run set them up)."""
    records = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: records.append(record.getMessage())
    log = logging.getLogger("cdnet_reid")
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    yield records
    log.removeHandler(handler)
    log.setLevel(level)


class Kill(HookBase):
    """Stops the run before iteration ``at`` as a crash would."""

    def __init__(self, at):
        self.at = at

    def before_step(self):
        if self.trainer.iter == self.at:
            raise KeyboardInterrupt("simulated kill")


@pytest.fixture
def tiny_run(tiny_trained_run):
    return tiny_trained_run


# ------------------------------------------------------------------------------------ strict loading
def test_weights_of_another_architecture_are_refused(tiny_run, tmp_path, data_root):
    cfg, _, _ = tiny_run
    other = tiny_cfg(tmp_path, data_root, MODEL__HEADS__FC_DIMS="[24]",
                     MODEL__WEIGHTS=os.path.join(cfg.OUTPUT_DIR, "model_final.pth"))
    model = DefaultTrainer.build_model(other)
    with pytest.raises(IncompatibleCheckpointError, match=r"model_final.pth does not fit this model: "
                       r"\d+ of \d+ tensors match.*Of another shape: head\."):
        Checkpointer(model).load(other.MODEL.WEIGHTS)


def test_a_torchvision_state_dict_is_refused_everywhere(tmp_path, data_root):
    import torchvision

    path = tmp_path / "mobilenet.pth"
    torch.save(torchvision.models.mobilenet_v2().state_dict(), path)
    cfg = tiny_cfg(tmp_path / "out", data_root, MODEL__WEIGHTS=str(path), SOLVER__MAX_EPOCH="1",
                   MODEL__HEADS__NUM_CLASSES="12")
    with pytest.raises(IncompatibleCheckpointError, match=r"0 of \d+ tensors match.*Missing: backbone"):
        DefaultTrainer.build_model_for_eval(cfg)  # --eval-only
    trainer = DefaultTrainer(cfg)
    with pytest.raises(IncompatibleCheckpointError):
        trainer.resume_or_load(resume=False)  # training from MODEL.WEIGHTS
    from cdnet_reid.engine import DefaultPredictor

    with pytest.raises(IncompatibleCheckpointError):
        DefaultPredictor(cfg)


def test_only_a_classifier_of_another_size_is_skipped(tiny_run, tmp_path, data_root, messages):
    cfg, trainer_full, _ = tiny_run
    cfg5 = tiny_cfg(tmp_path, data_root, MODEL__HEADS__NUM_CLASSES="5")
    model = DefaultTrainer.build_model(cfg5)
    Checkpointer(model).load(os.path.join(cfg.OUTPUT_DIR, "model_final.pth"))
    assert model.head.classifier.weight.shape == (5, 32)
    kept = [m for m in messages if "kept the new classifier" in m]
    assert len(kept) == 1 and "head.classifier.weight" in kept[0]


@pytest.mark.parametrize("kind", ["folder", "jpeg", "text", "empty", "truncated", "pickle"])
def test_a_file_that_is_not_a_checkpoint_gets_one_line(tiny_run, tmp_path, kind):
    path = tmp_path / f"weights_{kind}"
    if kind == "folder":
        path.mkdir()
    elif kind == "jpeg":
        path.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 100)
    elif kind == "text":
        path.write_text("MODEL:\n  WEIGHTS: x\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(Path(tiny_run[0].OUTPUT_DIR, "model_final.pth").read_bytes()[:5000])
    else:
        torch.save({"model": {}, "obj": argparse.Namespace(a=1)}, path)
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(str(path))
    msg = str(e.value)
    assert str(path) in msg and "\n" not in msg and "weights_only=False" not in msg
    expected = {"folder": "folder", "jpeg": "JPEG", "text": "not a PyTorch checkpoint",
                "empty": "empty", "truncated": "truncated or corrupt", "pickle": "pickled"}[kind]
    assert expected in msg


def test_a_full_disk_is_named(tmp_path, monkeypatch):
    def full(*a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 4096 vs 4000")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(CheckpointError, match=r"could not write checkpoint .*model_x.pth: the write "
                       r"failed; \d+ MiB free on its disk \(disk full"):
        Checkpointer(nn.Linear(2, 2), str(tmp_path)).save("model_x")
    assert os.listdir(tmp_path) == []  # no temporary file left behind


# ------------------------------------------------------------------------------------- run folders
def test_a_new_run_refuses_a_folder_with_checkpoints(tiny_run, data_root):
    cfg, _, _ = tiny_run
    best = Path(cfg.OUTPUT_DIR, "model_best.pth").read_bytes()
    with pytest.raises(RunFolderError, match="holds another run.*--resume.*--overwrite"):
        run_main(_args(tiny_opts(cfg.OUTPUT_DIR, data_root)))
    assert Path(cfg.OUTPUT_DIR, "model_best.pth").read_bytes() == best


def test_overwrite_moves_the_previous_run_aside(tmp_path, data_root):
    opts = tiny_opts(tmp_path, data_root) + ["SOLVER.MAX_EPOCH", "1", "TEST.EVAL_PERIOD", "0"]
    run_main(_args(opts))
    first = (tmp_path / "model_final.pth").read_bytes()
    run_main(_args(opts + ["SEED", "1"], overwrite=True))
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("overwritten-")]
    assert len(aside) == 1 and (aside[0] / "model_final.pth").read_bytes() == first
    assert (aside[0] / "metrics.json").exists() and (tmp_path / "model_final.pth").exists()


@pytest.mark.slow
def test_a_second_process_is_refused_while_a_run_holds_the_folder(tmp_path):
    root = str(Path(__file__).resolve().parents[1])
    code = (f"import sys, time; sys.path.insert(0, {root!r}); from cdnet_reid.engine.run_record import "
            f"RunLock; l = RunLock({str(tmp_path)!r}).acquire(); print('locked', flush=True); time.sleep(30)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderError, match=rf"in use by another run \(process {holder.pid} on "):
            RunLock(str(tmp_path)).acquire()
    finally:
        holder.kill()
        holder.wait()
    RunLock(str(tmp_path)).acquire().release()  # the OS released the dead holder's lock


def test_a_run_that_fails_at_start_up_writes_no_config(tmp_path, data_root):
    opts = tiny_opts(tmp_path, data_root) + ["MODEL.BACKBONE.NAME", "CDNet",
                                             "MODEL.BACKBONE.GENOTYPE", "no_such_genotype"]
    with pytest.raises(Exception, match="no_such_genotype"):
        run_main(_args(opts))
    assert not (tmp_path / "config.yaml").exists() and not (tmp_path / "env.txt").exists()


def test_stale_temporary_files_are_removed_and_checkpoints_readable_by_all(tmp_path, data_root):
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / ".tmp_abc_model_0001.pth").write_bytes(b"partial")
    run_main(_args(tiny_opts(tmp_path, data_root) + ["SOLVER.MAX_EPOCH", "1", "TEST.EVAL_PERIOD", "0"]))
    assert not list(tmp_path.glob(".tmp_*"))
    umask = os.umask(0)
    os.umask(umask)
    for name in ("model_final.pth", "metrics.json", "config.yaml"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name


# ------------------------------------------------------------------------ evaluation and resume
def test_a_failing_evaluation_keeps_the_epochs_checkpoint(tmp_path, data_root, monkeypatch):
    def broken(cls, cfg, model):
        raise OSError("cannot decode gallery image 0042_c1s1_001.jpg")

    cfg = tiny_cfg(tmp_path, data_root)
    monkeypatch.setattr(DefaultTrainer, "test", classmethod(broken))
    with pytest.raises(OSError, match="cannot decode"):
        _train(cfg)
    assert (tmp_path / "model_0002.pth").exists()
    assert (tmp_path / "last_checkpoint").read_text() == "model_0002.pth"


def test_a_missing_test_set_stops_before_training(tmp_path, data_root):
    cfg = tiny_cfg(tmp_path, data_root, DATASETS__TESTS="('Market1501',)")
    with pytest.raises(Exception, match="Market"):
        DefaultTrainer(cfg)
    assert not list(tmp_path.glob("*.pth"))


def test_resume_from_a_checkpoint_written_before_its_evaluation_is_exact(tiny_run, tmp_path, data_root):
    cfg_full, trainer_full, results_full = tiny_run
    cfg = tiny_cfg(tmp_path, data_root, DETERMINISTIC="True")
    with pytest.raises(KeyboardInterrupt):
        _train(cfg, extra_hooks=[Kill(6)])  # killed right after the epoch-2 checkpoint + evaluation
    trainer, results = _train(cfg, resume=True)
    best = {type(h).__name__: h.state_dict() for h in trainer.hooks}["BestCheckpointer"]
    best_full = {type(h).__name__: h.state_dict() for h in trainer_full.hooks}["BestCheckpointer"]
    assert best == best_full and results == results_full
    rows = [json.loads(line) for line in (tmp_path / "metrics.json").read_text().splitlines()]
    full_rows = [json.loads(line) for line in Path(cfg_full.OUTPUT_DIR, "metrics.json").read_text().splitlines()]
    iters = [r["iteration"] for r in rows if "total_loss" in r]
    assert iters == sorted(set(iters)) == list(range(12))  # no iteration written twice
    evals = [r["iteration"] for r in rows if "TinySyntheticReID/mAP" in r]
    assert evals == [r["iteration"] for r in full_rows if "TinySyntheticReID/mAP" in r] == [5, 11]


def test_resume_falls_back_when_the_named_checkpoint_is_gone(tmp_path, data_root, messages):
    cfg = tiny_cfg(tmp_path, data_root, TEST__EVAL_PERIOD="0")
    with pytest.raises(KeyboardInterrupt):
        _train(cfg, extra_hooks=[Kill(9)])
    (tmp_path / "model_0003.pth").write_bytes(b"PK\x03\x04garbage")  # the one last_checkpoint names
    assert find_last_checkpoint(str(tmp_path)).endswith("model_0002.pth")
    assert any("newest readable" in m for m in messages)
    os.remove(tmp_path / "model_0003.pth")
    assert find_last_checkpoint(str(tmp_path)).endswith("model_0002.pth")


def test_resume_stops_on_a_changed_batch_size_unless_asked(tmp_path, data_root):
    cfg = tiny_cfg(tmp_path, data_root, TEST__EVAL_PERIOD="0")
    with pytest.raises(KeyboardInterrupt):
        _train(cfg, extra_hooks=[Kill(4)])
    changed = tiny_cfg(tmp_path, data_root, TEST__EVAL_PERIOD="0", SOLVER__IMS_PER_BATCH="8")
    with pytest.raises(ResumeMismatchError, match=r"SOLVER.IMS_PER_BATCH: 16 -> 8"):
        _train(changed, resume=True)
    trainer, _ = _train(changed, resume=True, allow_changed=True)
    assert trainer.start_iter == 3


def test_max_to_keep_holds_after_a_resume(tmp_path, data_root):
    cfg = tiny_cfg(tmp_path, data_root, TEST__EVAL_PERIOD="0", SOLVER__MAX_TO_KEEP="2",
                   SOLVER__MAX_EPOCH="6")
    with pytest.raises(KeyboardInterrupt):
        _train(cfg, extra_hooks=[Kill(10)])
    _train(cfg, resume=True)
    assert sorted(p.name for p in tmp_path.glob("model_0*.pth")) == ["model_0004.pth", "model_0005.pth"]


def test_checkpoints_hold_the_rng_state_of_every_process(tiny_run):
    ckpt = read_checkpoint(os.path.join(tiny_run[0].OUTPUT_DIR, "model_final.pth"))
    assert len(ckpt["rng_states"]) == 1 and torch.equal(ckpt["rng_states"][0]["torch"],
                                                         tiny_run[1]._rng_states[0]["torch"])


# ------------------------------------------------------------------------------------- preemption
def _cli(args, cwd, **kw):
    return subprocess.Popen([sys.executable, SCRIPT, *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, **kw)


@pytest.mark.slow
def test_sigterm_checkpoints_and_resume_continues_exactly(tmp_path, data_root):
    opts = ["DETERMINISTIC", "True", "SOLVER.MAX_EPOCH", "30", "TEST.EVAL_PERIOD", "0",
            "SOLVER.CHECKPOINT_PERIOD", "0", "TEST.BEST_METRIC", "''"]
    full = _cli([*tiny_opts(tmp_path / "full", data_root), *opts], tmp_path)
    assert full.wait(timeout=300) == 0, full.stdout.read()[-3000:]
    run = _cli([*tiny_opts(tmp_path / "run", data_root), *opts], tmp_path)
    for line in run.stdout:  # wait until training runs
        if "iter: 20" in line:
            break
    run.send_signal(signal.SIGTERM)
    out = run.stdout.read()
    assert run.wait(timeout=120) == 75, out[-3000:]
    assert "Stopped by SIGTERM after iteration" in out and "--resume" in out
    stopped = read_checkpoint(str(tmp_path / "run" / "model_interrupted.pth"))
    assert 20 <= stopped["iteration"] < 90
    assert (tmp_path / "run" / "last_checkpoint").read_text() == "model_interrupted.pth"
    again = _cli(["--resume", *tiny_opts(tmp_path / "run", data_root), *opts], tmp_path)
    assert again.wait(timeout=300) == 0, again.stdout.read()[-3000:]
    a = read_checkpoint(str(tmp_path / "full" / "model_final.pth"))["model"]
    b = read_checkpoint(str(tmp_path / "run" / "model_final.pth"))["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_the_cli_reports_bad_input_in_one_line(tmp_path, data_root):
    (tmp_path / "model_0001.pth").write_bytes(b"x")
    proc = _cli(tiny_opts(tmp_path, data_root), tmp_path)
    out = proc.stdout.read()
    assert proc.wait(timeout=120) == 2
    assert "error: OUTPUT_DIR" in out and "Traceback" not in out


def test_a_run_killed_during_its_final_evaluation_evaluates_on_resume(tiny_run, tmp_path, data_root):
    _, _, results_full = tiny_run
    cfg = tiny_cfg(tmp_path, data_root, DETERMINISTIC="True")

    class KillInFinalEval(HookBase):  # placed after the periodic checkpointer, before the evaluation
        def after_epoch(self):
            if self.trainer.iter + 1 == self.trainer.max_iter:
                raise KeyboardInterrupt("killed while evaluating")

    seed_all_rng(cfg.SEED)
    trainer = DefaultTrainer(cfg)
    trainer.register_hooks([KillInFinalEval()], before=hooks.EvalHook)
    trainer.resume_or_load(resume=False)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert (tmp_path / "last_checkpoint").read_text() == "model_final.pth"
    trainer, results = _train(cfg, resume=True)
    assert trainer.start_iter == trainer.max_iter and results == results_full
