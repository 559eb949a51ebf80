"""A short CDNet training run on generated data: the loss falls, the genotype is checkpointed."""

import json
import os

import pytest
import torch
from tiny import tiny_cfg

from cdnet_reid.engine import DefaultTrainer
from cdnet_reid.modeling.space import Genotype
from cdnet_reid.utils.env import seed_all_rng


@pytest.mark.slow
def test_cdnet_trains_and_checkpoints_its_genotype(tmp_path, data_root):
    cfg = tiny_cfg(tmp_path, data_root, MODEL__BACKBONE__NAME="CDNet", MODEL__HEADS__NAME="FBLNeck",
                   MODEL__BACKBONE__WIDTH_MULT="0.25", MODEL__HEADS__FC_DIMS="[64]",
                   MODEL__HEADS__PART_DIM="16", MODEL__HEADS__DROPOUT="0.2",
                   INPUT__SIZE_TRAIN="[64,32]", INPUT__SIZE_TEST="[64,32]", SOLVER__MAX_EPOCH="8",
                   SOLVER__MILESTONES="[7]", TEST__EVAL_PERIOD="0", SOLVER__CHECKPOINT_PERIOD="0")
    seed_all_rng(0)
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=False)
    results = trainer.train()
    assert results["TinySyntheticReID"]["mAP"] > 0
    rows = [json.loads(line) for line in open(os.path.join(tmp_path, "metrics.json"))]
    losses = [r["total_loss"] for r in rows if "total_loss" in r]
    assert losses[-1] < 0.8 * losses[0], (losses[0], losses[-1])
    ckpt = torch.load(os.path.join(tmp_path, "model_final.pth"), weights_only=True)
    geno = Genotype.from_dict(ckpt["genotype"])
    assert geno.space == "cdnet" and [list(e) for e in geno.layers][2] == [5, 7, 2]
