"""N processes optimise what one process optimises with their union of batches: hard mining over
the gathered batch (MODEL.LOSSES.TRI.GATHER) and BatchNorm over it (MODEL.NORM.SYNC)."""

import pytest
import torch
from dist_first_step import first_step, several_steps
from tiny import tiny_opts
from torch import nn

from cdnet_reid.engine import launch
from cdnet_reid.modeling.norm import GlobalBatchNorm, convert_sync_batchnorm

# no random augmentation or dropout: the processes must see exactly the pixels one process sees
DETERMINISTIC_INPUT = ["INPUT.FLIP.ENABLED", "False", "INPUT.PADDING.ENABLED", "False",
                       "MODEL.HEADS.DROPOUT", "0.0", "MODEL.HEADS.NUM_CLASSES", "12"]


def _step(tmp_path, data_root, name, processes, extra=()):
    out = tmp_path / f"{name}.pth"
    opts = tiny_opts(tmp_path / name, data_root) + DETERMINISTIC_INPUT + list(extra)
    launch(first_step, processes, dist_url="auto", args=(opts, str(out)))
    return torch.load(out, weights_only=True)


def _relative(a: torch.Tensor, b: torch.Tensor, floor: float) -> float:
    """``|a - b| / |b|``; a gradient that is zero in exact arithmetic (a bias in front of a
    BatchNorm: ~1e-8 of rounding noise) is measured against ``floor`` instead."""
    return float((a - b).norm() / max(float(b.norm()), floor))


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, data_root):
    return _step(tmp_path_factory.mktemp("one"), data_root, "one", 1)


@pytest.mark.slow
def test_two_processes_compute_the_losses_and_gradients_of_one(one_process, tmp_path, data_root):
    two = _step(tmp_path, data_root, "two", 2)
    for k, v in one_process["losses"].items():
        assert two["losses"][k] == pytest.approx(v, rel=1e-5), k
    assert two["grads"].keys() == one_process["grads"].keys()
    floor = 1e-3 * float(torch.cat([g.flatten() for g in one_process["grads"].values()]).norm())
    worst = max((_relative(two["grads"][k], g, floor), k) for k, g in one_process["grads"].items())
    assert worst[0] < 1e-5, worst


@pytest.mark.slow
def test_without_gather_and_sync_two_processes_optimise_something_else(one_process, tmp_path, data_root):
    two = _step(tmp_path, data_root, "local", 2, ["MODEL.LOSSES.TRI.GATHER", "False",
                                                  "MODEL.NORM.SYNC", "False"])
    diff = max(abs(two["losses"][k] - v) / abs(v) for k, v in one_process["losses"].items())
    assert diff > 1e-3  # the test above would catch a regression



@pytest.mark.slow
def test_two_processes_train_every_parameter_as_one_does(tmp_path, data_root):
    """Several optimizer steps (SGD with momentum): every parameter and buffer of a 2-process run
    equals the 1-process run's, BatchNorm weights included (MODEL.NORM.SYNC converts them after
    the optimizer has been built), and the optimizer holds every parameter of the model."""
    def run(name, processes):
        out = tmp_path / f"{name}.pth"
        opts = tiny_opts(tmp_path / name, data_root) + DETERMINISTIC_INPUT
        launch(several_steps, processes, dist_url="auto", args=(opts, str(out), 4))
        return torch.load(out, weights_only=True)

    one, two = run("one", 1), run("two", 2)
    assert two["trained"] == two["params"] and one["trained"] == one["params"]
    bn_weights = [k for k in one["state"] if k.endswith(".weight") and one["state"][k].dim() == 1]
    # the BatchNorm weights did move in 4 steps, so a frozen one cannot pass for a trained one
    assert all(float((one["state"][k] - 1).abs().max()) > 1e-4 for k in bn_weights), bn_weights
    for k, v in one["state"].items():
        if v.is_floating_point():
            scale = max(float(v.abs().max()), 1e-3)
            assert float((two["state"][k] - v).abs().max()) / scale < 1e-4, k
        else:
            assert torch.equal(two["state"][k], v), k


def test_the_cpu_conversion_keeps_the_parameters_an_optimizer_holds():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm1d(4)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    bn = model[1]
    converted = convert_sync_batchnorm(model)
    assert isinstance(converted[1], GlobalBatchNorm) and isinstance(converted[2][0], GlobalBatchNorm)
    held = [p for g in optimizer.param_groups for p in g["params"]]
    assert [id(p) for p in converted.parameters()] == [id(p) for p in held]
    assert converted[1].running_var is bn.running_var
