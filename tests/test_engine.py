"""End-to-end behaviour of the trainer on a tiny model and dataset (CPU, seconds)."""

import json
import os

import pytest
import torch
from tiny import tiny_cfg
from tiny import train as _train

from cdnet_reid.engine import DefaultTrainer, HookBase, hooks
from cdnet_reid.utils.checkpoint import Checkpointer


def _metrics(output_dir):
    with open(os.path.join(output_dir, "metrics.json")) as f:
        return [json.loads(line) for line in f]


@pytest.fixture
def finished_run(tiny_trained_run):
    return tiny_trained_run


def test_run_writes_checkpoints_metrics_and_results(finished_run):
    cfg, trainer, results = finished_run
    out = cfg.OUTPUT_DIR
    assert trainer.iter == trainer.max_iter == 12
    for name in ("model_0001.pth", "model_0003.pth", "model_final.pth", "model_best.pth",
                 "last_checkpoint", "metrics.json"):
        assert os.path.exists(os.path.join(out, name)), name
    assert set(results["TinySyntheticReID"]) == {"Rank-1", "Rank-5", "Rank-10", "mAP", "mINP"}
    rows = _metrics(out)
    assert [r["iteration"] for r in rows] == list(range(12))  # LOG_PERIOD 1: one line per step
    assert "TinySyntheticReID/mAP" in rows[5] and "TinySyntheticReID/mAP" in rows[11]
    assert rows[0]["lr"] == pytest.approx(0.05) and rows[-1]["lr"] == pytest.approx(0.005)
    ckpt = torch.load(os.path.join(out, "model_final.pth"), weights_only=True)
    assert ckpt["iteration"] == 12 and ckpt["epoch"] == 4 and ckpt["num_classes"] == 12
    assert "MODEL:" in ckpt["config"] and "optimizer" in ckpt and "scheduler" in ckpt


def test_loss_falls(tmp_path, data_root):
    cfg = tiny_cfg(tmp_path, data_root, SOLVER__MAX_EPOCH="20", SOLVER__MILESTONES="[19]",
                   TEST__EVAL_PERIOD="0", SOLVER__CHECKPOINT_PERIOD="0", TEST__BEST_METRIC="''")
    _train(cfg)
    losses = [r["total_loss"] for r in _metrics(tmp_path)]
    assert len(losses) == 60
    first, last = losses[0], losses[-1]  # the last value is a median over 20 iterations
    assert last < 0.7 * first, (first, last)


def test_resume_reproduces_uninterrupted_run(finished_run, tmp_path, data_root):
    cfg_full, trainer_full, _ = finished_run

    class Kill(HookBase):
        def before_step(self):
            if self.trainer.iter == 7:  # in epoch 3, after the epoch-2 checkpoint
                raise KeyboardInterrupt("simulated kill")

    cfg = tiny_cfg(tmp_path, data_root, DETERMINISTIC="True")
    with pytest.raises(KeyboardInterrupt):
        _train(cfg, extra_hooks=[Kill()])
    assert open(tmp_path / "last_checkpoint").read() == "model_0002.pth"
    trainer, _ = _train(cfg, resume=True)
    assert trainer.start_iter == 6
    full = trainer_full.model.state_dict()
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, full[k]), k
    # the optimizer state (momentum) was restored too, so it matches as well
    sa, sb = trainer.optimizer.state_dict()["state"], trainer_full.optimizer.state_dict()["state"]
    assert all(torch.equal(sa[i]["momentum_buffer"], sb[i]["momentum_buffer"]) for i in sa)


def test_eval_only_reproduces_final_metrics(finished_run):
    cfg, _, results = finished_run
    cfg = cfg.clone()
    cfg.MODEL.WEIGHTS = os.path.join(cfg.OUTPUT_DIR, "model_final.pth")
    cfg.MODEL.HEADS.NUM_CLASSES = 0  # taken from the checkpoint
    model = DefaultTrainer.build_model_for_eval(cfg)
    assert model.head.classifier.out_features == 12
    again = DefaultTrainer.test(cfg, model)
    for k, v in results["TinySyntheticReID"].items():
        assert again["TinySyntheticReID"][k] == pytest.approx(v, abs=1e-6), k


def test_weights_skip_shape_mismatch(finished_run, tmp_path, data_root, caplog):
    cfg, trainer_full, _ = finished_run
    cfg2 = tiny_cfg(tmp_path, data_root, MODEL__HEADS__NUM_CLASSES="5",
                    MODEL__WEIGHTS=os.path.join(cfg.OUTPUT_DIR, "model_final.pth"))
    model = DefaultTrainer.build_model(cfg2)
    Checkpointer(model).load(cfg2.MODEL.WEIGHTS, checkpointables=[])
    full = trainer_full.model.state_dict()
    sd = model.state_dict()
    assert sd["head.classifier.weight"].shape == (5, 32)
    assert torch.equal(sd["backbone.body.0.weight"], full["backbone.body.0.weight"])


def test_nonfinite_loss_stops_with_iteration_and_terms(tmp_path, data_root):
    class Poison(HookBase):
        def before_step(self):
            if self.trainer.iter == 2:
                with torch.no_grad():
                    next(self.trainer.model.parameters()).fill_(float("nan"))

    cfg = tiny_cfg(tmp_path, data_root, TEST__EVAL_PERIOD="0")
    with pytest.raises(FloatingPointError, match=r"iteration 2 .*loss_cls"):
        _train(cfg, extra_hooks=[Poison()])


def test_hooks_can_be_filtered_and_inserted(tmp_path, data_root):
    class NoBest(DefaultTrainer):
        def build_hooks(self):
            return [h for h in super().build_hooks() if not isinstance(h, hooks.BestCheckpointer)]

    cfg = tiny_cfg(tmp_path, data_root, SOLVER__MAX_EPOCH="1")
    trainer = NoBest(cfg)
    assert not any(isinstance(h, hooks.BestCheckpointer) for h in trainer.hooks)
    seen = []
    marker = hooks.CallbackHook(after_step=lambda t: seen.append(t.iter))
    trainer.register_hooks([marker], before=hooks.PeriodicWriter)
    types = [type(h) for h in trainer.hooks]
    assert types.index(hooks.CallbackHook) == types.index(hooks.PeriodicWriter) - 1
    trainer.resume_or_load(resume=False)
    trainer.train()
    assert seen == [0, 1, 2]


def test_amp_step_on_cpu_uses_bf16(tmp_path, data_root):
    cfg = tiny_cfg(tmp_path, data_root, SOLVER__AMP__ENABLED="True", SOLVER__MAX_EPOCH="1",
                   TEST__EVAL_PERIOD="0")
    trainer = DefaultTrainer(cfg)
    dtypes = []
    conv = trainer.model.backbone.body[0]

    def record(module, inputs, output):
        if module.training:
            dtypes.append(output.dtype)

    conv.register_forward_hook(record)
    trainer.resume_or_load(resume=False)
    trainer.train()
    assert trainer.grad_scaler is None and trainer.amp
    assert len(dtypes) == 3 and set(dtypes) == {torch.bfloat16}  # training forwards under bf16 autocast
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in trainer.model.parameters())


def test_resume_without_checkpoint_starts_from_scratch(tmp_path, data_root):
    cfg = tiny_cfg(tmp_path, data_root, SOLVER__MAX_EPOCH="1", TEST__EVAL_PERIOD="0")
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=True)
    assert trainer.start_iter == 0
