"""Checkpoint safety: atomic writes, weights_only loading, plain state dicts."""

import os

import pytest
import torch
from torch import nn

from cdnet_reid.utils import checkpoint as ckpt_mod
from cdnet_reid.utils.checkpoint import Checkpointer


class _Custom:
    """An arbitrary Python object: unpickling it would run arbitrary code."""


def _model(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))


def test_failed_save_leaves_previous_checkpoint_loadable(tmp_path, monkeypatch):
    model = _model(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ck = Checkpointer(model, str(tmp_path), optimizer=opt)
    ck.save("model_final", iteration=10)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    real_save = torch.save

    def crash_midway(obj, f, *a, **k):
        real_save({"model": {"partial": torch.zeros(1)}}, f)  # some bytes hit the disk...
        raise OSError("disk full")  # ...then the process dies

    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    monkeypatch.setattr(ckpt_mod.torch, "save", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        ck.save("model_final", iteration=20)
    monkeypatch.undo()

    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_final.pth"]  # no temp files
    fresh = _model(1)
    extra = Checkpointer(fresh, str(tmp_path)).resume_or_load("", resume=True)
    assert extra["iteration"] == 10
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_checkpoint_is_plain_data_loadable_with_weights_only(tmp_path):
    model = _model(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 3, 3)).sum().backward()
    opt.step()
    Checkpointer(model, str(tmp_path), optimizer=opt).save("m", config="A: 1\n", best_metric={"mAP": 1.5})
    data = torch.load(tmp_path / "m.pth", weights_only=True)
    assert data["config"] == "A: 1\n" and data["best_metric"] == {"mAP": 1.5}
    assert "momentum_buffer" in data["optimizer"]["state"][0]


def test_plain_state_dict_and_module_prefix_are_accepted(tmp_path):
    src = _model(0)
    sd = {"module." + k: v for k, v in src.state_dict().items()}
    torch.save(sd, tmp_path / "plain.pth")
    dst = _model(1)
    Checkpointer(dst).load(str(tmp_path / "plain.pth"))
    for k, v in dst.state_dict().items():
        assert torch.equal(v, src.state_dict()[k])


def test_pickled_objects_are_refused_and_missing_file_is_named(tmp_path):
    torch.save({"model": {}, "obj": _Custom()}, tmp_path / "evil.pth")
    with pytest.raises(RuntimeError, match="weights_only"):
        Checkpointer(_model(0)).load(str(tmp_path / "evil.pth"))
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        Checkpointer(_model(0)).load(str(tmp_path / "nope.pth"))
