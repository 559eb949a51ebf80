"""cdnet-reid visualize checks what it was asked before the (long) inference."""

import pytest
from tiny import tiny_cfg

from cdnet_reid.apps import visualize as tool
from cdnet_reid.config import ConfigError
from cdnet_reid.engine import DefaultTrainer


def test_out_of_range_queries_stop_before_inference(tmp_path, data_root, monkeypatch):
    def no_inference(*args, **kwargs):
        raise AssertionError("inference ran before the query indices were checked")

    monkeypatch.setattr(tool, "inference_on_dataset", no_inference)
    cfg = tiny_cfg(tmp_path, data_root, MODEL__HEADS__NUM_CLASSES="12")
    model = DefaultTrainer.build_model(cfg)
    with pytest.raises(ConfigError, match=r"query indices \[999, -1\] out of range"):
        tool.visualize_dataset(cfg, model, "TinySyntheticReID", str(tmp_path / "vis"), queries=[0, 999, -1])


def test_training_curves_have_one_panel_per_kind():
    from cdnet_reid.search.hooks import CURVE_PANELS
    from cdnet_reid.utils.visualizer import curve_panels

    names = ["total_loss", "loss_cls", "arch/total_loss", "lr", "arch_lr", "time", "data_time",
             "arch/data_time", "Market1501/mAP", "Market1501/Rank-1", "alpha_entropy/layer0",
             "alpha_entropy/layer1"]
    panels = curve_panels(names, CURVE_PANELS)
    assert panels == {"losses": ["total_loss", "arch/total_loss", "loss_cls"], "learning rate": ["arch_lr", "lr"],
                      "evaluation (%)": ["Market1501/Rank-1", "Market1501/mAP"],
                      "α entropy (nats)": ["alpha_entropy/layer0", "alpha_entropy/layer1"]}
    assert list(curve_panels(["total_loss", "lr"])) == ["losses", "learning rate"]
    # without the caller's panel rule, a component's "<name>/x" scalars are not known here
    assert curve_panels(["alpha_entropy/layer0"]) == {"evaluation (%)": ["alpha_entropy/layer0"]}
