"""CNet / CDNet against the reference figures of the original code (parameter counts, MACs, shapes)."""

import json

import pytest
import torch

from cdnet_reid.config import get_cfg
from cdnet_reid.modeling import build_model
from cdnet_reid.modeling.backbones import CDNet, CNet
from cdnet_reid.modeling.heads import FBLNeck
from cdnet_reid.modeling.space import Genotype, GenotypeError, load_genotype, ours_to_authors, save_genotype
from cdnet_reid.modeling.space.ops import CBlock, ChannelGate, DownSample
from cdnet_reid.utils.checkpoint import Checkpointer


def nparams(module):
    return sum(p.numel() for p in module.parameters())


def model_cfg(*opts):
    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.HEADS.NUM_CLASSES", "751", *opts])
    return cfg


@pytest.fixture(scope="module")
def cdnet():
    return build_model(model_cfg())


@pytest.fixture(scope="module")
def cnet():
    return build_model(model_cfg("MODEL.BACKBONE.NAME", "CNet", "MODEL.BACKBONE.GENOTYPE", "cnet_top2"))


def test_parameter_counts(cdnet, cnet):
    assert nparams(cdnet.backbone) == 1_747_448
    assert nparams(cdnet) == 2_963_414
    assert nparams(cdnet.head) == 1_215_966
    assert nparams(cnet.backbone) == 1_387_088
    assert nparams(cnet) == 2_603_054
    # the authors' layout has 493 / 403 state-dict entries and 289 / 235 parameter tensors
    assert (len(cdnet.state_dict()), len(list(cdnet.parameters()))) == (493, 289)
    assert (len(cnet.state_dict()), len(list(cnet.parameters()))) == (403, 235)


def test_classification_model_counts():
    cifar = build_model(model_cfg("MODEL.HEADS.NUM_CLASSES", "100", "MODEL.BACKBONE.STEM", "cifar",
                                  "MODEL.HEADS.CLASSIFICATION", "True"))
    assert nparams(cifar) == 2_287_808 and nparams(cifar.backbone) == 1_739_768
    imagenet = build_model(model_cfg("MODEL.HEADS.NUM_CLASSES", "1000", "MODEL.HEADS.NAME", "GlobalNeck",
                                     "MODEL.HEADS.CLASSIFICATION", "True"))
    assert nparams(imagenet) == 2_524_128 and nparams(imagenet.head) == 776_680


@pytest.mark.parametrize("mult,total,backbone", [(0.5, 1_514_330, 454_012), (0.75, 2_133_944, 995_802),
                                                 (1.5, 5_251_922, 3_880_308)])
def test_width_multiplier_floors_to_4(mult, total, backbone):
    m = build_model(model_cfg("MODEL.BACKBONE.WIDTH_MULT", str(mult)))
    assert (nparams(m), nparams(m.backbone)) == (total, backbone)


def test_variants_without_fusion_and_with_bl_neck():
    m = build_model(model_cfg("MODEL.BACKBONE.ADAPTIVE_FUSION", "False"))
    assert (nparams(m), nparams(m.backbone)) == (2_917_790, 1_701_824)
    m = build_model(model_cfg("MODEL.HEADS.NAME", "BLNeck"))
    assert nparams(m) == 2_396_391 and nparams(m.head) == 648_943


def test_per_block_counts_match_the_original(cdnet, cnet):
    assert [nparams(c) for c in cdnet.backbone.cells] == [
        54_544, 109_472, 66_048, 348_336, 141_048, 148_224, 640_576, 229_664]
    assert [nparams(b) for b in cdnet.backbone.cells[3].blocks] == [217_560, 130_776]
    assert [nparams(b) for b in cdnet.backbone.cells[6].blocks] == [410_912, 229_664]
    assert nparams(cdnet.backbone.stem) == 9_536
    assert [nparams(c) for c in cnet.backbone.cells] == [
        64_144, 69_136, 66_048, 238_104, 151_320, 148_224, 446_496, 194_080]
    assert [nparams(ChannelGate(m)) for m in (64, 96, 128)] == [2_128, 4_728, 8_352]
    # the gate is ONE module applied to both branches
    block = CBlock(64, 256, 3, 5)
    calls = []
    block.gate.register_forward_hook(lambda *a: calls.append(1))
    block(torch.randn(1, 64, 8, 4))
    assert len(calls) == 2 and isinstance(cdnet.backbone.cells[2], DownSample)


@pytest.mark.parametrize("size,stem,expected", [
    ((256, 128), "imagenet", [(256, 32, 16), (384, 16, 8), (512, 16, 8)]),
    ((32, 32), "cifar", [(256, 16, 16), (384, 8, 8), (512, 8, 8)]),
    ((32, 32), "imagenet", [(256, 4, 4), (384, 2, 2), (512, 2, 2)]),
    ((224, 224), "imagenet", [(256, 28, 28), (384, 14, 14), (512, 14, 14)]),
])
def test_stage_map_shapes(size, stem, expected):
    net = CDNet(genotype=load_genotype("cdnet_top2"), stem=stem).eval()
    with torch.no_grad():
        out = net(torch.zeros(1, 3, *size))
    assert [tuple(v.shape[1:]) for v in out.values()] == expected
    strides = [s.stride for s in net.output_shape().values()]
    assert [size[0] // st for st in strides] == [e[1] for e in expected]


def test_macs_match_reference(cdnet, cnet):
    from fvcore.nn import FlopCountAnalysis

    for model, ref in ((cdnet, 955.07e6), (cnet, 821.42e6)):
        flops = FlopCountAnalysis(model.eval(), torch.rand(1, 3, 256, 128))
        flops.unsupported_ops_warnings(False)
        macs = flops.by_operator()["conv"] + flops.by_operator().get("linear", 0)
        assert abs(macs - ref) / ref < 1e-3, macs


def test_outputs_for_losses_and_retrieval(cdnet):
    x = torch.randint(0, 256, (4, 3, 256, 128), dtype=torch.uint8)
    cdnet.eval()
    with torch.no_grad():
        assert cdnet(x).shape == (4, 768)
    cdnet.train()
    head_out = cdnet.head(cdnet.backbone(cdnet.preprocess_image(x)))
    assert [(tuple(l.shape), tuple(f.shape)) for l, f in head_out] == [((4, 751), (4, 512)), ((4, 751), (4, 256))]
    losses = cdnet({"images": x, "targets": torch.tensor([0, 0, 1, 1])})
    assert set(losses) == {"loss_cls", "loss_triplet"}  # CE + triplet, summed over both branches
    cdnet.eval()


def test_fbl_neck_classification_mode_sums_branches():
    neck = FBLNeck(local_channels=8, global_channels=16, num_classes=5, fc_dims=[4], dropout=0.0,
                   part_dim=2, classification=True).eval()
    feats = {"a": torch.randn(3, 8, 4, 2), "b": torch.randn(3, 16, 4, 2)}
    neck.train()
    (g, _), (l, _) = neck(feats)
    neck.eval()
    out = neck(feats)
    assert out.shape == (3, 5)
    assert nparams(neck) == 8 * 2 + (4 * 4 + 4 + 8) + (16 * 4 + 4 + 8) + 2 * (4 * 5 + 5)


def test_initialisation_follows_the_paper(cdnet):
    conv = cdnet.backbone.stem.conv[0].weight
    fan_in = conv[0].numel()
    assert conv.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.1)
    assert cdnet.head.global_classifier.weight.std().item() == pytest.approx(1e-3, rel=0.1)
    assert torch.all(cdnet.head.global_classifier.bias == 0)
    gate = cdnet.backbone.cells[0].blocks[0].gate.fc1
    assert torch.all(gate.bias == 0)


def test_inconsistent_settings_are_rejected():
    geno = load_genotype("cdnet_top2")
    with pytest.raises(GenotypeError, match="6 layers but the network has 8"):
        CDNet(genotype=geno, stages=[2, 2, 2, 2], planes=[64, 128, 256, 384, 512])
    with pytest.raises(ValueError, match="PLANES needs"):
        CDNet(genotype=geno, planes=[64, 256, 384])
    with pytest.raises(ValueError, match="needs a cdnet genotype, got a cnet one"):
        CDNet(genotype=load_genotype("cnet_top2"))
    with pytest.raises(GenotypeError, match=r"layers\[1\]: \[3, 11, 1\] is not a cdnet candidate"):
        Genotype("cdnet", [[3, 5, 1], [3, 11, 1]])
    with pytest.raises(ValueError, match="STEM"):
        CNet(genotype=load_genotype("cnet_top2"), stem="tiny")


def test_genotype_round_trips_and_argmax(tmp_path):
    for name, layers in (("cdnet_top2", [[3, 5, 1], [3, 7, 2], [5, 7, 2], [5, 9, 1], [5, 7, 2], [5, 7, 1]]),
                         ("cnet_top2", [[5, 7], [7, 9], [7, 9], [7, 9], [7, 9], [3, 5]])):
        g = load_genotype(name)
        assert [list(e) for e in g.layers] == layers
        assert Genotype.from_alphas(g.space, g.alphas).layers == g.layers  # argmax of every row
        save_genotype(g, tmp_path / "a.json", fmt="authors")
        text = (tmp_path / "a.json").read_text()
        assert text == json.dumps({"layers": layers, "alphas1": g.alphas}, indent=4)  # byte format
        back = load_genotype(str(tmp_path / "a.json"))
        assert back.layers == g.layers and back.alphas == g.alphas
        save_genotype(back, tmp_path / "b.json")
        save_genotype(load_genotype(str(tmp_path / "b.json")), tmp_path / "a2.json", fmt="authors")
        assert (tmp_path / "a2.json").read_text() == text


@pytest.mark.parametrize("content,match", [
    ("{not json", "invalid JSON"),
    ('{"alphas1": []}', "not a genotype"),
    ('{"layers": [[3, 5, 1], [3, 7]]}', "all"),
    ('{"layers": [[3, 5, 1]], "alphas1": [[0.1, 0.2]]}', "alphas must be 1×12"),
    ('{"format": "cdnet-reid-genotype", "version": 9, "space": "cdnet", "layers": [[3, 5, 1]]}', "newer"),
    ('{"format": "cdnet-reid-genotype", "version": 1, "space": "cdnet", "layers": [[3, 5, 1]], '
     '"ops": [4]}', "disagree"),
])
def test_malformed_genotypes_are_named(tmp_path, content, match):
    path = tmp_path / "g.json"
    path.write_text(content)
    with pytest.raises(GenotypeError, match=match):
        load_genotype(str(path))
    with pytest.raises(GenotypeError, match="not found"):
        load_genotype("no_such_genotype")


def test_genotype_resolves_relative_to_config_dir(tmp_path):
    save_genotype(load_genotype("cnet_top2"), tmp_path / "mine.json")
    assert load_genotype("mine.json", config_dir=str(tmp_path)).space == "cnet"


def test_authors_layout_checkpoint_gives_identical_embeddings(cdnet, tmp_path, caplog):
    torch.manual_seed(0)
    for p in cdnet.parameters():  # make BN stats/weights non-trivial so a wrong mapping shows
        p.data.add_(torch.randn_like(p) * 0.01)
    authors = ours_to_authors(cdnet.state_dict())
    assert "base.cells.6.ops.1.conv1.0.op.2.running_var" in authors
    assert "base.cells.2.conv1x1.op.1.weight" in authors and "neck.squeeze.weight" in authors
    assert "base.stem.conv1.op.0.weight" in authors and "base.cells.0.ops.0.adaption.fc1.bias" in authors
    torch.save({"module." + k: v for k, v in authors.items()}, tmp_path / "cdnet_top2_scratch.pth")
    fresh = build_model(model_cfg())
    caplog.set_level("INFO")
    Checkpointer(fresh).load(str(tmp_path / "cdnet_top2_scratch.pth"))
    assert "authors'" in caplog.text
    x = torch.rand(2, 3, 256, 128) * 255
    cdnet.eval()
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(cdnet(x), fresh(x))
    cnet_model = build_model(model_cfg("MODEL.BACKBONE.NAME", "CNet", "MODEL.BACKBONE.GENOTYPE", "cnet_top2"))
    assert "base.cells.0.squeeze.op.0.weight" in ours_to_authors(cnet_model.state_dict())
