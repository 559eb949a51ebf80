"""Classification (CIFAR-100 pickles, ImageNet tree) through DefaultTrainer, ImageNet-style
pre-training -> re-ID fine-tuning, and several re-ID datasets in one run."""

import json
import logging
import os

import pytest
import torch
from datagen import make_cifar_pickles, make_duke, make_imagenet, make_market
from tiny import tiny_cfg
from tiny import train as _train

from cdnet_reid.config import get_cfg
from cdnet_reid.data import TrainingSampler, build_cls_test_loader, build_cls_train_loader
from cdnet_reid.engine import DefaultTrainer
from cdnet_reid.engine import resume as resume_module
from cdnet_reid.evaluation import ClassificationEvaluator
from cdnet_reid.utils.env import seed_all_rng
from cdnet_reid.utils.pretrain import load_pretrained

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CLS_OPTS = dict(
    MODEL__HEADS__CLASSIFICATION="True", MODEL__LOSSES__NAMES="('CrossEntropyLoss',)",
    MODEL__PIXEL_MEAN="[129.3, 124.1, 112.4]", MODEL__PIXEL_STD="[68.2, 65.4, 70.4]",
    INPUT__SIZE_TRAIN="[32,32]", INPUT__SIZE_TEST="[32,32]", INPUT__PADDING__SIZE="4",
    INPUT__CUTOUT__ENABLED="True", INPUT__CUTOUT__LENGTH="16", SOLVER__IMS_PER_BATCH="32",
    SOLVER__ITERS_PER_EPOCH="3", SOLVER__MAX_EPOCH="2", SOLVER__MILESTONES="[2]",
    TEST__EVAL_PERIOD="1", TEST__IMS_PER_BATCH="24", TEST__BEST_METRIC="top1",
    SOLVER__CHECKPOINT_PERIOD="1",
)


def _exact_accuracy(cfg, model, name):
    """Top-1/top-5 recomputed independently: the model over the whole test split at once."""
    loader, meta = build_cls_test_loader(cfg, name)
    assert meta == {}
    logits, labels = [], []
    model.eval()
    with torch.no_grad():
        for b in loader:
            logits.append(model(b["images"]))
            labels.append(b["targets"])
    logits, labels = torch.cat(logits), torch.cat(labels)
    order = logits.argsort(dim=1, descending=True)
    top1 = (order[:, 0] == labels).double().mean().item() * 100
    top5 = (order[:, :5] == labels[:, None]).any(1).double().mean().item() * 100
    return top1, top5, len(labels)


@pytest.fixture(scope="module")
def cifar_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar_root")
    make_cifar_pickles(str(root), num_classes=10, per_class_train=12, per_class_test=5)
    out = tmp_path_factory.mktemp("cifar_run")
    cfg = tiny_cfg(out, root, DATASETS__NAMES="('CIFAR100',)", DATASETS__TESTS="('CIFAR100',)", **CLS_OPTS)
    trainer, results = _train(cfg)
    return cfg, trainer, results


def test_cifar_classification_run_reports_exact_top1_top5(cifar_run):
    cfg, trainer, results = cifar_run
    assert trainer.iter == 6 and trainer.cfg.MODEL.HEADS.NUM_CLASSES == 10
    res = results["CIFAR100"]
    assert list(res) == ["top1", "top5"] and 0 <= res["top1"] <= res["top5"] <= 100
    top1, top5, n = _exact_accuracy(cfg, trainer.model, "CIFAR100")
    assert n == 50
    assert res["top1"] == pytest.approx(top1, abs=1e-9) and res["top5"] == pytest.approx(top5, abs=1e-9)
    rows = [json.loads(x) for x in open(os.path.join(cfg.OUTPUT_DIR, "metrics.json"))]
    assert [r["iteration"] for r in rows if "CIFAR100/top1" in r] == [2, 5]
    assert os.path.exists(os.path.join(cfg.OUTPUT_DIR, "model_best.pth"))


def test_cifar_train_loader_is_shuffled_infinite_with_cutout(cifar_run):
    cfg = cifar_run[0].clone()
    cfg.defrost()
    cfg.DATALOADER.SAMPLER_TRAIN = "IdentitySampler"  # ignored for classification
    loader = build_cls_train_loader(cfg)
    assert loader.dataset.num_classes == 10 and len(loader.dataset) == 120
    it = iter(loader)
    batches = [next(it) for _ in range(8)]  # 256 samples > one pass of 120: infinite
    b = batches[0]
    assert b["images"].shape == (32, 3, 32, 32) and b["images"].dtype == torch.uint8
    assert isinstance(loader.batch_sampler.sampler.sampler, TrainingSampler)
    names = [n for x in batches for n in x["img_paths"]]
    assert len(set(names[:120])) == 120 and names[:120] != sorted(names[:120])  # shuffled epochs
    # Cutout: a square filled with the rounded PIXEL_MEAN (129, 124, 112) in every training image
    fill = torch.tensor([129, 124, 112], dtype=torch.uint8).view(3, 1, 1)
    assert all(((img == fill).all(0)).sum() >= 64 for img in b["images"])


def test_imagenet_tree_classification_run(tmp_path):
    make_imagenet(str(tmp_path / "data"), num_classes=4, train_per=8, val_per=3)
    cfg = tiny_cfg(tmp_path / "out", tmp_path / "data", DATASETS__NAMES="('ImageNet',)",
                   DATASETS__TESTS="('ImageNet',)", INPUT__PADDING__ENABLED="False",
                   INPUT__RANDOM_RESIZED_CROP__ENABLED="True", INPUT__RESIZE_SHORT_TEST="36",
                   SOLVER__SCHED="Exponential", SOLVER__GAMMA="0.97", SOLVER__BASE_LR="0.1",
                   SOLVER__WEIGHT_DECAY="3e-5",
                   **{**CLS_OPTS, "INPUT__CUTOUT__ENABLED": "False", "SOLVER__IMS_PER_BATCH": "8",
                      "SOLVER__MAX_EPOCH": "1", "TEST__EVAL_PERIOD": "0"})
    trainer, results = _train(cfg)
    res = results["ImageNet"]
    assert set(res) == {"top1", "top5"} and res["top5"] == 100.0  # 4 classes: top-5 always hits
    top1, _, n = _exact_accuracy(cfg, trainer.model, "ImageNet")
    assert n == 12 and res["top1"] == pytest.approx(top1, abs=1e-9)
    batch = next(iter(build_cls_test_loader(cfg, "ImageNet").loader))
    assert batch["images"].shape[1:] == (3, 32, 32)


def test_classification_evaluator_counts_exactly():
    ev = ClassificationEvaluator(topk=(1, 2, 5))
    logits = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.5, 0.3], [0.1, 0.3, 0.6], [0.4, 0.35, 0.25]])
    ev.process({"targets": torch.tensor([0, 2, 2])}, logits[:3])  # batch of 3: 2 right
    ev.process({"targets": torch.tensor([2]), "valid": torch.tensor([True])}, logits[3:])  # 0 right
    ev.process({"targets": torch.tensor([1]), "valid": torch.tensor([False])}, logits[:1])  # left out
    res = ev.evaluate()
    assert res["top1"] == pytest.approx(50.0)  # 2 / 4 (the mean of batch means would be 33.3)
    assert res["top2"] == pytest.approx(75.0) and res["top5"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="logits"):
        ev.process({"targets": torch.tensor([0])}, torch.zeros(1, 3, 2))


# ----------------------------------------------------------------------------------- pre-training
def test_classification_checkpoint_initialises_reid_model(cifar_run, tmp_path, data_root):
    cls_cfg, cls_trainer, _ = cifar_run
    ckpt = os.path.join(cls_cfg.OUTPUT_DIR, "model_final.pth")
    source = torch.load(ckpt, weights_only=True)["model"]
    # same class count as the checkpoint: the classifier is skipped by name, not by shape
    cfg = tiny_cfg(tmp_path, data_root, MODEL__PRETRAIN_PATH=ckpt, MODEL__HEADS__NUM_CLASSES="10",
                   SOLVER__MAX_EPOCH="1", TEST__EVAL_PERIOD="0")
    model = DefaultTrainer.build_model(cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = load_pretrained(model, ckpt)
    sd = model.state_dict()
    expected = sorted(k for k in sd if not k.startswith("head.classifier."))
    assert sorted(report.loaded) == expected and sorted(report.classifier) == [
        "head.classifier.bias", "head.classifier.weight"]
    assert report.missing == [] and report.mismatched == []
    for k in expected:
        assert torch.equal(sd[k], source[k]), k
    assert torch.equal(sd["head.classifier.weight"], before["head.classifier.weight"])
    assert not torch.equal(sd["head.classifier.weight"], source["head.classifier.weight"])


def test_pretrain_path_applied_on_fresh_start_not_on_resume(cifar_run, tmp_path, data_root, monkeypatch):
    ckpt = os.path.join(cifar_run[0].OUTPUT_DIR, "model_final.pth")
    source = torch.load(ckpt, weights_only=True)["model"]
    calls = []
    real = resume_module.load_pretrained
    monkeypatch.setattr(resume_module, "load_pretrained", lambda m, p: calls.append(p) or real(m, p))
    cfg = tiny_cfg(tmp_path, data_root, MODEL__PRETRAIN_PATH=ckpt, SOLVER__MAX_EPOCH="1",
                   TEST__EVAL_PERIOD="0", TEST__BEST_METRIC="''")
    seed_all_rng(0)
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=True)  # nothing to resume yet: a fresh start, so it applies
    assert calls == [ckpt]
    assert torch.equal(trainer.model.state_dict()["backbone.body.0.weight"], source["backbone.body.0.weight"])
    assert trainer.model.head.classifier.out_features == 12  # TinySyntheticReID's ids
    trainer.train()
    trained = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    again = DefaultTrainer(cfg)
    again.resume_or_load(resume=True)
    assert calls == [ckpt]  # not applied again
    for k, v in again.model.state_dict().items():
        assert torch.equal(v, trained[k]), k


def test_pretrain_global_neck_to_fbl_neck_and_errors(tmp_path):
    from cdnet_reid.modeling.heads import BLNeck, FBLNeck
    from cdnet_reid.modeling.meta_arch import Baseline

    def model(head):
        return Baseline(backbone=torch.nn.Conv2d(3, 4, 1), head=head, pixel_mean=[0, 0, 0], pixel_std=[1, 1, 1])

    src = model(BLNeck(in_channels=4, num_classes=3, fc_dims=[4]))  # the ImageNet model's global-only neck
    path = str(tmp_path / "imagenet.pth")
    torch.save({"module." + k: v for k, v in src.state_dict().items()}, path)  # DataParallel names
    dst = model(FBLNeck(local_channels=4, global_channels=4, num_classes=5, fc_dims=[4], part_dim=2))
    report = load_pretrained(dst, path)
    fcs = sorted(k for k in src.state_dict() if k.startswith("head.fcs."))
    assert sorted(report.loaded) == ["backbone.bias", "backbone.weight"] + [
        k.replace("head.fcs.", "head.global_fcs.") for k in fcs]
    assert sorted(report.classifier) == ["head.global_classifier.bias", "head.global_classifier.weight",
                                         "head.local_classifier.bias", "head.local_classifier.weight"]
    assert all(k.startswith(("head.local_fcs.", "head.squeeze.")) for k in report.missing)
    assert torch.equal(dst.head.global_fcs[0].weight, src.head.fcs[0].weight)
    torch.save({"something.else": torch.zeros(2)}, str(tmp_path / "wrong.pth"))
    with pytest.raises(RuntimeError, match="none of its 1 tensors matches"):
        load_pretrained(dst, str(tmp_path / "wrong.pth"))
    with pytest.raises(FileNotFoundError, match="PRETRAIN_PATH"):
        load_pretrained(dst, str(tmp_path / "missing.pth"))


# ----------------------------------------------------------------------------------- several datasets
def test_train_on_two_datasets_and_evaluate_both_in_one_table(tmp_path, caplog):
    make_market(str(tmp_path / "data"))
    make_duke(str(tmp_path / "data"))
    cfg = tiny_cfg(tmp_path / "out", tmp_path / "data", DATASETS__NAMES="('Market1501', 'DukeMTMC')",
                   DATASETS__TESTS="('Market1501', 'DukeMTMC')", SOLVER__MAX_EPOCH="1",
                   SOLVER__ITERS_PER_EPOCH="2", TEST__EVAL_PERIOD="1")
    with caplog.at_level(logging.INFO, logger="cdnet_reid"):
        trainer, results = _train(cfg)
    ds = trainer.data_loader.dataset
    assert ds.num_classes == 6 + 5 == trainer.cfg.MODEL.HEADS.NUM_CLASSES  # namespaced pids
    assert list(results) == ["Market1501", "DukeMTMC"]
    for res in results.values():
        assert set(res) == {"Rank-1", "Rank-5", "Rank-10", "mAP", "mINP"}
    tables = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Evaluation results")]
    assert len(tables) == 1
    rows = [ln for ln in tables[0].splitlines() if ln.startswith("| ")]
    assert [r.split("|")[1].strip() for r in rows] == ["Dataset", "Market1501", "DukeMTMC"]
    rows = [json.loads(x) for x in open(os.path.join(cfg.OUTPUT_DIR, "metrics.json"))]
    assert "Market1501/mAP" in rows[-1] and "DukeMTMC/mAP" in rows[-1]


def test_mixed_tasks_in_training_are_rejected(tmp_path):
    cfg = tiny_cfg(tmp_path, tmp_path, DATASETS__NAMES="('Market1501', 'CIFAR100')")
    with pytest.raises(ValueError, match="mixes tasks"):
        DefaultTrainer.build_train_loader(cfg)


# ----------------------------------------------------------------------------------- configs
@pytest.mark.parametrize("dataset", ["Market", "DukeMTMC", "MSMT17"])
def test_pretrained_configs(dataset):
    path = os.path.join(ROOT, "configs", dataset, "cdnet_pretrained.yml")
    cfg = get_cfg()
    cfg.merge_from_file(path)
    assert cfg.MODEL.PRETRAIN_PATH.endswith(".pth")
    assert tuple(cfg.DATASETS.NAMES) == tuple(cfg.DATASETS.TESTS)
    if dataset == "MSMT17":
        assert cfg.SOLVER.MAX_EPOCH == 240 and cfg.SOLVER.BASE_LR == 0.045
        assert list(cfg.SOLVER.LR_LIST) == [0.045, 0.0045, 0.00045, 0.000045]
    else:
        assert cfg.SOLVER.MAX_EPOCH == 350 and list(cfg.SOLVER.LR_LIST)[0] == 0.065


def test_classification_configs():
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(ROOT, "configs", "CIFAR100", "cdnet.yml"))
    assert cfg.INPUT.CUTOUT.ENABLED and cfg.INPUT.CUTOUT.LENGTH == 16 and cfg.INPUT.PADDING.SIZE == 4
    assert cfg.TEST.BEST_METRIC == "top1" and list(cfg.MODEL.PIXEL_MEAN) == [129.3, 124.1, 112.4]
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(ROOT, "configs", "ImageNet", "cdnet.yml"))
    assert cfg.INPUT.RANDOM_RESIZED_CROP.ENABLED and not cfg.INPUT.PADDING.ENABLED
    assert cfg.INPUT.RESIZE_SHORT_TEST == 256 and list(cfg.INPUT.SIZE_TEST) == [224, 224]
    assert (cfg.SOLVER.SCHED, cfg.SOLVER.GAMMA, cfg.SOLVER.BASE_LR, cfg.SOLVER.WEIGHT_DECAY,
            cfg.SOLVER.MAX_EPOCH, cfg.SOLVER.IMS_PER_BATCH) == ("Exponential", 0.97, 0.1, 3e-5, 240, 128)
