"""The run folder belongs to one run whatever happens to it: --overwrite takes the lock before it
moves anything, a run that loses its folder stops with one line and writes nothing more there,
and an OUTPUT_DIR that cannot be a writable folder is refused before training."""

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tiny import tiny_opts

from cdnet_reid.engine import DefaultTrainer, HookBase, run_main
from cdnet_reid.engine.run_record import RunFolderError, RunLock

ROOT = str(Path(__file__).resolve().parents[1])
SCRIPT = str(Path(__file__).resolve().parent / "tiny_train_net.py")


def _args(opts, **flags):
    base = dict(config_file="", import_module=[], opts=list(opts), resume=False, eval_only=False,
                overwrite=False, resume_changed=False)
    return argparse.Namespace(**{**base, **flags})


@pytest.mark.slow
def test_overwrite_of_a_live_run_moves_nothing(tmp_path, data_root):
    files = {"model_0001.pth": b"live", "last_checkpoint": b"model_0001.pth", "metrics.json": b"{}",
             "log.txt": b"live log"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    code = (f"import sys, time; sys.path.insert(0, {ROOT!r}); from cdnet_reid.engine.run_record import "
            f"RunLock; l = RunLock({str(tmp_path)!r}).acquire(); print('locked', flush=True); time.sleep(60)")
    live = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderError, match="in use by another run"):
            run_main(_args(tiny_opts(tmp_path, data_root), overwrite=True))
    finally:
        live.kill()
        live.wait()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name in files} == files
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("overwritten-")]


class _TakeTheFolder(HookBase):
    """Before iteration 2: the folder is deleted, and (``recreate``) created again and locked by
    another run, as an operator or a second run might do."""

    def __init__(self, recreate):
        self.recreate, self.other = recreate, None

    def before_step(self):
        if self.trainer.iter == 2:
            out = self.trainer.cfg.OUTPUT_DIR
            shutil.rmtree(out)
            if self.recreate:
                self.other = RunLock(out).acquire()


class _Trainer(DefaultTrainer):
    recreate = True

    def build_hooks(self):
        return [_TakeTheFolder(self.recreate)] + super().build_hooks()


class _TrainerDeleteOnly(_Trainer):
    recreate = False


@pytest.mark.slow
@pytest.mark.parametrize("trainer_cls", [_Trainer, _TrainerDeleteOnly])
def test_a_run_that_loses_its_folder_stops_and_writes_nothing_there(tmp_path, data_root, trainer_cls):
    out = tmp_path / "run"
    opts = tiny_opts(out, data_root) + ["SOLVER.CHECKPOINT_PERIOD", "1", "TEST.EVAL_PERIOD", "1"]
    with pytest.raises(RunFolderError, match=r"OUTPUT_DIR .* is no longer this run's.*after iteration 3"):
        run_main(_args(opts), trainer_cls=trainer_cls)
    if trainer_cls.recreate:  # only the other run's lock is there
        assert [p.name for p in out.iterdir()] == [".run.lock"]
    else:
        assert not out.exists()


@pytest.mark.parametrize("eval_only", [False, True])
def test_an_output_dir_that_is_a_file_or_under_a_file_is_refused(tmp_path, data_root, eval_only):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunFolderError, match=r"OUTPUT_DIR .*file is a file, not a folder"):
        run_main(_args(tiny_opts(tmp_path / "file", data_root), eval_only=eval_only))
    with pytest.raises(RunFolderError, match=r"OUTPUT_DIR .*file/run cannot be created: .*file is a file"):
        run_main(_args(tiny_opts(tmp_path / "file" / "run", data_root), eval_only=eval_only))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_dir_is_refused(tmp_path, data_root):
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    try:
        with pytest.raises(RunFolderError, match="OUTPUT_DIR .*ro is not writable"):
            run_main(_args(tiny_opts(tmp_path / "ro", data_root)))
    finally:
        (tmp_path / "ro").chmod(0o755)


@pytest.mark.slow
def test_the_cli_refuses_an_output_dir_under_a_file_in_one_line(tmp_path, data_root):
    (tmp_path / "file").write_text("x")
    proc = subprocess.run([sys.executable, SCRIPT, *tiny_opts(tmp_path / "file" / "run", data_root)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1].startswith("error: OUTPUT_DIR")
    assert "Traceback" not in proc.stderr
