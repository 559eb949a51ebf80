"""The training loop: the processes agree every ``sync_period`` iterations (metrics and the stop
signal in one collective), hook state is stored under the hook's own key, and a resume restores
the CUDA RNG states of the GPUs there are."""

import itertools
import os
import signal

import pytest
import torch
from torch import nn

from cdnet_reid.engine import HookBase, SimpleTrainer, train_loop
from cdnet_reid.engine.resume import restore_rng_state
from cdnet_reid.engine.train_loop import TrainingInterrupted
from cdnet_reid.utils.checkpoint import CheckpointError


class Quadratic(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(3))

    def forward(self, batch):
        return {"loss_a": (self.w * batch).pow(2).sum(), "loss_b": self.w.abs().sum()}


def _trainer(sync_period, iters_per_epoch=10):
    model = Quadratic()
    t = SimpleTrainer(model, itertools.repeat(torch.ones(3)), torch.optim.SGD(model.parameters(), lr=0.01))
    t.sync_period, t.iters_per_epoch = sync_period, iters_per_epoch
    return t


@pytest.fixture
def two_ranks(monkeypatch):
    """Pretend to be one of two processes whose partner reports the same values."""
    calls = []
    monkeypatch.setattr(train_loop.comm, "get_world_size", lambda: 2)
    monkeypatch.setattr(train_loop.comm, "all_gather", lambda obj: calls.append(obj) or [obj, obj])
    monkeypatch.setattr(train_loop.comm, "all_reduce_max", lambda v: calls.append(v) or v)
    return calls


def test_metrics_and_stop_signal_are_agreed_every_sync_period(two_ranks):
    t = _trainer(sync_period=4)
    t.train(0, 10)
    assert len(two_ranks) == 3  # after iterations 4, 8 and 10 (the end), one collective each
    history = t.storage.history("total_loss").values()
    assert [it for _, it in history] == list(range(10))  # every iteration, at its own iteration
    a, b = t.storage.history("loss_a").values()[0][0], t.storage.history("loss_b").values()[0][0]
    assert history[0][0] == pytest.approx(a + b) and a == pytest.approx(3.0)

    class Term(HookBase):
        def after_step(self):
            if self.trainer.iter == 1:
                os.kill(os.getpid(), signal.SIGTERM)

    t = _trainer(sync_period=4)
    t.register_hooks([Term()])
    with pytest.raises(TrainingInterrupted) as info:
        t.train(0, 10)
    assert info.value.iteration == 4  # the signal of iteration 2 is agreed at the next sync


def test_nonfinite_loss_is_found_at_the_sync_and_names_its_iteration(two_ranks):
    class Poison(HookBase):
        def before_step(self):
            if self.trainer.iter == 5:
                with torch.no_grad():
                    self.trainer.model.w.fill_(float("nan"))

    t = _trainer(sync_period=4)
    t.register_hooks([Poison()])
    with pytest.raises(FloatingPointError, match=r"iteration 5 \(epoch 1\).*loss_a"):
        t.train(0, 10)
    assert t.iter == 7  # raised at the sync after iteration 8


def test_cuda_rng_states_are_restored_for_the_gpus_there_are(monkeypatch):
    restored = {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, i: restored.__setitem__(i, s))
    cpu = torch.get_rng_state()
    saved_on_two = {"torch": cpu, "cuda": [torch.tensor([1], dtype=torch.uint8),
                                           torch.tensor([2], dtype=torch.uint8)]}
    restore_rng_state(saved_on_two, torch.device("cuda", 0))  # a checkpoint of 2 GPUs, 1 visible
    assert list(restored) == [0] and restored[0].item() == 1
    with pytest.raises(CheckpointError, match="cuda:3"):
        restore_rng_state(saved_on_two, torch.device("cuda", 3))


def test_hook_state_is_stored_under_the_hooks_key_not_its_class_name():
    class Counter(HookBase):
        state_key = "counter"

        def __init__(self, n=0):
            self.n = n

        def state_dict(self):
            return {"n": self.n}

        def load_state_dict(self, state):
            self.n = state["n"]

    class RenamedCounter(Counter):
        pass

    a, b = _trainer(1), _trainer(1)
    a.register_hooks([Counter(7)])
    b.register_hooks([RenamedCounter()])
    state = a.state_dict()
    assert state["hooks"] == {"counter": {"n": 7}}
    b.load_state_dict(state)
    assert b.hooks[0].n == 7

    class Keyless(Counter):
        state_key = None

    c = _trainer(1)
    c.register_hooks([Keyless(1)])
    with pytest.raises(ValueError, match="no state_key"):
        c.state_dict()
