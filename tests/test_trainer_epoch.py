"""An epoch of P x K training is the original code's epoch (the sampler's stated length), unless
SOLVER.ITERS_PER_EPOCH says otherwise; plain shuffling keeps images // batch."""

import pytest
from datagen import make_market
from tiny import tiny_cfg

from cdnet_reid.engine import DefaultTrainer
from cdnet_reid.engine.trainer import ResumeMismatchError


@pytest.fixture(scope="module")
def market_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("market")
    make_market(str(root))  # 6 training ids x 6 images
    return root


def _trainer(tmp_path, root, **overrides):
    cfg = tiny_cfg(tmp_path, root, DATASETS__NAMES="('Market1501',)", DATASETS__TESTS="('Market1501',)",
                   SOLVER__IMS_PER_BATCH="8", SOLVER__MAX_EPOCH="10", SOLVER__MILESTONES="[4]",
                   **{"SOLVER__ITERS_PER_EPOCH": "0", **overrides})
    return DefaultTrainer(cfg)


def test_pk_epoch_is_the_samplers_and_moves_the_lr_steps(tmp_path, market_root):
    trainer = _trainer(tmp_path, market_root)
    # per id max(6, 4) // 4 * 4 = 4 images, 6 ids = 24 images = 3 batches of 8 (not 36 // 8 = 4)
    assert trainer.iters_per_epoch == 3 and trainer.max_iter == 30
    lrs = []
    for _ in range(trainer.max_iter):
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.optimizer.step()
        trainer.scheduler.step()
    assert lrs[8] == pytest.approx(0.05) and lrs[9] == pytest.approx(0.005)  # epoch 4 starts at iteration 9


def test_explicit_iters_per_epoch_and_plain_shuffling(tmp_path, market_root):
    assert _trainer(tmp_path / "a", market_root, SOLVER__ITERS_PER_EPOCH="5").iters_per_epoch == 5
    shuffled = _trainer(tmp_path / "b", market_root, DATALOADER__SAMPLER_TRAIN="TrainingSampler")
    assert shuffled.iters_per_epoch == 36 // 8


def test_resume_stops_when_the_epoch_length_changed(tmp_path, data_root, monkeypatch):
    """A checkpoint counted with another epoch length (e.g. images // batch, before the sampler's
    epoch) would move every LR step and evaluation of the resumed run."""
    cfg = tiny_cfg(tmp_path, data_root, SOLVER__ITERS_PER_EPOCH="0", SOLVER__MAX_EPOCH="2",
                   TEST__EVAL_PERIOD="0", TEST__BEST_METRIC="''")
    with monkeypatch.context() as m:
        m.setattr(DefaultTrainer, "compute_iters_per_epoch", staticmethod(lambda cfg, loader: 5))
        first = DefaultTrainer(cfg)
        first.resume_or_load(resume=False)
        first.train()
    again = DefaultTrainer(cfg)
    assert again.iters_per_epoch == 6  # 12 ids x 8 images, K 4: 96 // 16
    with pytest.raises(ResumeMismatchError, match=r"written at iteration 10 as epoch 2, with another number of "
                                                   r"iterations per epoch \(about 5\) than this run's 6"):
        again.resume_or_load(resume=True)
    again.resume_or_load(resume=True, allow_changed=True)
    assert again.start_iter == 10
