"""Tiny components for fast engine tests: a 2-conv backbone and a small SyntheticReID."""

from collections import OrderedDict

import torch
from torch import nn

from cdnet_reid.config import get_cfg
from cdnet_reid.data.datasets import DATASET_REGISTRY, SyntheticReID
from cdnet_reid.engine import DefaultTrainer, hooks
from cdnet_reid.modeling import BACKBONE_REGISTRY, Backbone, ShapeSpec
from cdnet_reid.utils.env import seed_all_rng


@BACKBONE_REGISTRY.register()
class TinyNet(Backbone):
    """conv-BN-ReLU (stride 2) twice, then conv-BN-ReLU: 32 x H/4 x W/4."""

    def __init__(self, *, width: int = 16):
        super().__init__()

        def block(cin, cout, stride):
            return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.body = nn.Sequential(*block(3, width, 2), *block(width, 2 * width, 2),
                                  *block(2 * width, 2 * width, 1))
        self.out_channels = 2 * width

    @classmethod
    def from_config(cls, cfg, **context):
        return {}

    def forward(self, x):
        return OrderedDict(res=self.body(x))

    def output_shape(self):
        return OrderedDict(res=ShapeSpec(self.out_channels, 4))


@DATASET_REGISTRY.register()
class TinySyntheticReID(SyntheticReID):
    """12 training ids, 8 test ids, 32 x 16 crops: generated in well under a second."""

    def __init__(self, root: str = "datasets"):
        super().__init__(root, num_train_ids=12, num_test_ids=8, num_cameras=3, images_per_id=8,
                         query_cams_per_id=1, gallery_per_id=4, num_distractors=4, num_junk=2,
                         height=32, width=16, seed=0)


def tiny_opts(output_dir, data_root):
    """Command-line overrides that train TinyNet on TinySyntheticReID in seconds on CPU."""
    return [
        "MODEL.DEVICE", "cpu", "MODEL.BACKBONE.NAME", "TinyNet", "MODEL.HEADS.NAME", "BLNeck",
        "MODEL.HEADS.FC_DIMS", "[32]", "MODEL.HEADS.DROPOUT", "0.0",
        "DATASETS.NAMES", "('TinySyntheticReID',)", "DATASETS.TESTS", "('TinySyntheticReID',)",
        "DATASETS.ROOT", str(data_root), "INPUT.SIZE_TRAIN", "[32,16]", "INPUT.SIZE_TEST", "[32,16]",
        "INPUT.PADDING.SIZE", "2", "DATALOADER.NUM_WORKERS", "0", "DATALOADER.NUM_INSTANCE", "4",
        "SOLVER.IMS_PER_BATCH", "16", "SOLVER.ITERS_PER_EPOCH", "3", "SOLVER.MAX_EPOCH", "4",
        "SOLVER.BASE_LR", "0.05", "SOLVER.MILESTONES", "[3]", "SOLVER.LR_LIST", "[0.05,0.005]",
        "SOLVER.CHECKPOINT_PERIOD", "1", "TEST.EVAL_PERIOD", "2", "TEST.IMS_PER_BATCH", "32",
        "SEED", "0", "OUTPUT_DIR", str(output_dir), "LOG_PERIOD", "1",
    ]


def tiny_cfg(output_dir, data_root, **overrides):
    """The config of :func:`tiny_opts`; ``A__B="v"`` overrides key ``A.B``."""
    cfg = get_cfg()
    cfg.merge_from_list(tiny_opts(output_dir, data_root))
    cfg.merge_from_list([x for kv in overrides.items() for x in (kv[0].replace("__", "."), kv[1])])
    return cfg


def seeded_model(cfg, seed=0):
    """``DefaultTrainer.build_model(cfg)`` with weights drawn from ``seed`` and BatchNorm statistics
    away from the identity (so that inference paths that fold or skip BatchNorm show), in eval mode."""
    torch.manual_seed(seed)
    model = DefaultTrainer.build_model(cfg).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model


def train(cfg, resume=False, extra_hooks=(), allow_changed=False):
    """Train ``cfg`` in this process as ``train_net.py`` does (seeded, resumable); ``(trainer, results)``."""
    seed_all_rng(cfg.SEED)
    trainer = DefaultTrainer(cfg)
    trainer.register_hooks(list(extra_hooks), before=hooks.PeriodicWriter)
    trainer.resume_or_load(resume=resume, allow_changed=allow_changed)
    return trainer, trainer.train()


#: Overrides that make a shipped CDNet config (or the defaults) tiny: quarter width, 64x32 input,
#: one epoch of 2 iterations, no evaluation during training, data in the main process. The README's
#: commands and the installed-wheel test use these.
TINY_CDNET_OPTS = ["MODEL.DEVICE", "cpu", "MODEL.BACKBONE.WIDTH_MULT", "0.25", "INPUT.SIZE_TRAIN", "[64,32]",
                   "INPUT.SIZE_TEST", "[64,32]", "SOLVER.MAX_EPOCH", "1", "SOLVER.ITERS_PER_EPOCH", "2",
                   "SOLVER.WARMUP_ITERS", "0", "TEST.EVAL_PERIOD", "0", "DATALOADER.NUM_WORKERS", "0"]
