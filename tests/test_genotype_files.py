"""Genotype files are checked completely when they are read: every bad key or value is a
GenotypeError (a ConfigError, so the command line reports it in one line with exit status 2) that
names the file, the key path and the value, before anything is built or trained."""

import json

import pytest
from tiny import tiny_opts

from cdnet_reid.config import ConfigError
from cdnet_reid.engine import main
from cdnet_reid.modeling.space import Genotype, GenotypeError, load_genotype, save_genotype

OURS = {"format": "cdnet-reid-genotype", "version": 1, "space": "cdnet",
        "layers": [[3, 5, 1], [3, 7, 2], [5, 7, 2], [5, 9, 1], [5, 7, 2], [5, 7, 1]],
        "ops": [0, 4, 5, 7, 5, 2], "alphas": None, "meta": {"source": "test"}}


def _ours(**changes) -> str:
    return json.dumps({**OURS, **changes})


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


# (file content, what the message must name after the file's path)
BAD_FILES = [
    pytest.param(_ours(meta=[1, 2]), r"meta: \[1, 2\] is not a mapping", id="meta-list"),
    pytest.param(_ours(meta="x"), r"meta: 'x' is not a mapping", id="meta-string"),
    pytest.param(_ours(layers=[[3.9, 5, 1]] + OURS["layers"][1:]), r"layers\[0\]\[0\]: 3\.9 is not an integer",
                 id="float-layer"),
    pytest.param(_ours(layers=[[3, 5, 1.0]] + OURS["layers"][1:]), r"layers\[0\]\[2\]: 1\.0 is not an integer",
                 id="integral-float-layer"),
    pytest.param(_ours(layers=[["3", 5, 1]] + OURS["layers"][1:]), r"layers\[0\]\[0\]: '3' is not an integer",
                 id="string-layer"),
    pytest.param(_ours(layers=[[True, 5, 1]]), r"layers\[0\]\[0\]: True is not an integer", id="bool-layer"),
    pytest.param(_ours(layers="3,5,1"), r"layers: '3,5,1' is not a list", id="layers-string"),
    pytest.param(_ours(layers=[]), r"layers: the list is empty", id="layers-empty"),
    pytest.param(_ours(layers=[[3, 5, 10 ** 30]]), r"layers\[0\]: \[3, 5, 1000000000000000000000000000000\] "
                 r"is not a cdnet candidate", id="huge-int"),
    pytest.param(_ours().replace('"alphas": null', '"alphas": [[NaN' + ', 0' * 11 + ']]').replace(
        '"layers": [[3, 5, 1], [3, 7, 2], [5, 7, 2], [5, 9, 1], [5, 7, 2], [5, 7, 1]]', '"layers": [[3, 5, 1]]')
        .replace('"ops": [0, 4, 5, 7, 5, 2]', '"ops": [0]'),
        r"alphas\[0\]\[0\]: nan is not a finite number", id="nan"),
    pytest.param(_ours(layers=[[3, 5, 1]], ops=[0]).replace('"alphas": null', '"alphas": [[0, Infinity'
                                                           + ', 0' * 10 + ']]'),
                 r"alphas\[0\]\[1\]: inf is not a finite number", id="infinity"),
    pytest.param(_ours(layers=[[3, 5, 1]], ops=[0]).replace('"alphas": null', '"alphas": [[0, 1e999'
                                                           + ', 0' * 10 + ']]'),
                 r"alphas\[0\]\[1\]: inf is not a finite number", id="overflowing-float"),
    pytest.param(_ours(meta={"loss": 1}).replace('"loss": 1', '"loss": -Infinity'),
                 r"meta\.loss: -inf is not a finite number", id="meta-infinity"),
    pytest.param(_ours(alphas=[["a"] * 12] * 6), r"alphas\[0\]\[0\]: 'a' is not a number", id="alphas-string"),
    pytest.param('{"format": "cdnet-reid-genotype", "version": 1, "space": "cdnet", "layers": [[3, 5, 1]], '
                 '"meta": {"a": ' + _deep(60) + "}}", r"meta\.a(\[0\])+: nested deeper than 32", id="deep-meta"),
    pytest.param('{"layers": ' + _deep(100_000) + "}", r"nested too deeply", id="deep-json"),
    pytest.param('{"layers": [[3, 5, 1' + "0" * 5000 + "]]}", r"a number too large to read", id="huge-literal"),
    pytest.param(_ours(version="1"), r"version: '1' is not an integer", id="version-string"),
    pytest.param(_ours(version=2), r"version: genotype format version 2 is newer", id="version-newer"),
    pytest.param('{"format": "cdnet-reid-genotype", "space": "cdnet", "layers": [[3, 5, 1]]}',
                 r"version: missing \(our format has the keys", id="version-missing"),
    pytest.param(_ours(space=5), r"space: 5 is not a search space", id="space-number"),
    pytest.param(_ours(format="other"), r"format: 'other' is not 'cdnet-reid-genotype'", id="format"),
    pytest.param(_ours(ops=["0"] * 6), r"ops\[0\]: '0' is not an integer", id="ops-string"),
    pytest.param(_ours(ops=[4] * 6), r"ops: \[4, 4, 4, 4, 4, 4\] disagree", id="ops-disagree"),
    pytest.param(_ours(extra=1), r"unknown key 'extra'; our format has the keys", id="unknown-key"),
    pytest.param('{"layers": [[3, 5, 1]], "space": "cdnet"}', r"unknown key 'space'; the authors' format",
                 id="authors-unknown-key"),
    pytest.param('{"layers": [[3, 5, 1], 7]}', r"layers: entries must all be", id="authors-not-lists"),
    pytest.param('{"layers": [[3, 5.5, 1]]}', r"layers\[0\]\[1\]: 5\.5 is not an integer", id="authors-float"),
    pytest.param('{"layers": [[3, 5, 1]], "alphas1": [[0, 0]]}', r"alphas must be 1×12", id="authors-alphas"),
    pytest.param("[1, 2]", r"not a genotype", id="top-level-list"),
    pytest.param("{not json", r"invalid JSON", id="invalid-json"),
]


@pytest.mark.parametrize("content,match", BAD_FILES)
def test_bad_genotype_files_are_named_with_key_and_value(tmp_path, content, match):
    path = tmp_path / "g.json"
    path.write_text(content)
    with pytest.raises(GenotypeError, match=match) as info:
        load_genotype(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message and len(message) < 400, message
    assert isinstance(info.value, ConfigError)  # reported by the command line in one line


def test_non_utf8_file_is_named(tmp_path):
    path = tmp_path / "g.json"
    path.write_bytes(b'{"layers": [[3, 5, 1]], "meta": "\xff\xfe"}')
    with pytest.raises(GenotypeError, match=rf"^{path}: not UTF-8 text \(byte 0xff at offset 33\)$"):
        load_genotype(str(path))


def test_checkpoint_genotypes_get_the_same_checks():
    with pytest.raises(GenotypeError, match=r"^the checkpoint: meta: \[1, 2\] is not a mapping"):
        Genotype.from_dict(json.loads(_ours(meta=[1, 2])), source="the checkpoint")
    with pytest.raises(GenotypeError, match=r"layers\[1\]\[0\]: 3\.9 is not an integer"):
        Genotype("cdnet", [[3, 5, 1], [3.9, 7, 2]])


def test_a_valid_file_round_trips_with_its_meta(tmp_path):
    path = tmp_path / "g.json"
    path.write_text(_ours(meta={"epoch": 3, "probabilities": [[0.5, 0.5]], "note": None}))
    geno = load_genotype(str(path))
    assert geno.ops == OURS["ops"] and geno.meta["epoch"] == 3
    save_genotype(geno, tmp_path / "back.json")
    assert load_genotype(str(tmp_path / "back.json")).to_dict() == geno.to_dict()


def test_train_refuses_a_bad_genotype_in_one_line_before_training(tmp_path, data_root, capsys):
    """``"meta": [1, 2]`` used to load, train an epoch and crash at the first checkpoint."""
    path = tmp_path / "g.json"
    path.write_text(_ours(meta=[1, 2]))
    out = tmp_path / "run"
    argv = tiny_opts(out, data_root) + ["MODEL.BACKBONE.NAME", "CDNet", "MODEL.BACKBONE.GENOTYPE", str(path),
                                        "MODEL.BACKBONE.WIDTH_MULT", "0.25"]
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {path}: meta: [1, 2] is not a mapping (a JSON object)"]
    assert not list(out.glob("*.pth")) and not (out / "metrics.json").exists()
