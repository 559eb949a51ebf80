"""Config errors name the file that really holds the problem, the _BASE_ chain that included it,
and command-line options placed after the KEY VALUE overrides."""

import os
import re

import pytest

from cdnet_reid.config import CfgNode, ConfigError, get_cfg


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def _raises(fn, *args):
    with pytest.raises(ConfigError) as info:
        fn(*args)
    return str(info.value)


# ---------------------------------------------------------------------------------------------- #
# _BASE_ chains
# ---------------------------------------------------------------------------------------------- #
def test_unknown_key_in_base_is_blamed_on_the_base(tmp_path):
    base = _write(tmp_path / "Base-Reid.yml", "SOLVER:\n  FOO: 1\n")
    child = _write(tmp_path / "Market" / "cdnet.yml", "_BASE_: ../Base-Reid.yml\nSEED: 1\n")
    msg = _raises(get_cfg().merge_from_file, child)
    expected = f"in config file {base} (included by {child}): Non-existent config key: SOLVER.FOO"
    assert msg.startswith(expected), msg


def test_error_deep_in_chain_lists_every_includer(tmp_path):
    base = _write(tmp_path / "Base.yml", "MODEL:\n  HEADS:\n    NUM_PARTZ: 3\n")
    mid = _write(tmp_path / "Market" / "mid.yml", "_BASE_: ../Base.yml\n")
    top = _write(tmp_path / "Market" / "top.yml", "_BASE_: mid.yml\n")
    msg = _raises(get_cfg().merge_from_file, top)
    assert msg.startswith(f"in config file {base} (included by {mid}, included by {top}): "), msg
    assert "MODEL.HEADS.NUM_PARTZ" in msg


def test_wrong_type_in_base_is_blamed_on_the_base_even_if_overridden(tmp_path):
    base = _write(tmp_path / "base.yml", "SOLVER:\n  MAX_EPOCH: many\n")
    child = _write(tmp_path / "sub" / "child.yml", "_BASE_: ../base.yml\nSOLVER:\n  MAX_EPOCH: 3\n")
    msg = _raises(get_cfg().merge_from_file, child)
    assert msg.startswith(f"in config file {base} (included by {child}): Type mismatch"), msg
    assert "SOLVER.MAX_EPOCH" in msg


def test_error_in_child_is_blamed_on_the_child_alone(tmp_path):
    _write(tmp_path / "base.yml", "SEED: 2\n")
    child = _write(tmp_path / "child.yml", "_BASE_: base.yml\nTEST:\n  RERANK:\n    K3: 1\n")
    msg = _raises(get_cfg().merge_from_file, child)
    assert msg.startswith(f"in config file {child}: Non-existent config key: TEST.RERANK.K3"), msg


def test_second_of_several_bases_is_named(tmp_path):
    _write(tmp_path / "a.yml", "SEED: 1\n")
    b = _write(tmp_path / "b.yml", "INPUT:\n  CUTOUT:\n    SIZE: 8\n")
    child = _write(tmp_path / "child.yml", "_BASE_: [a.yml, b.yml]\n")
    msg = _raises(get_cfg().merge_from_file, child)
    assert msg.startswith(f"in config file {b} (included by {child}): "), msg
    assert "INPUT.CUTOUT.SIZE" in msg


def test_missing_base_names_the_missing_file_and_its_includer(tmp_path):
    child = _write(tmp_path / "configs" / "child.yml", "_BASE_: missing.yml\n")
    missing = str(tmp_path / "configs" / "missing.yml")
    msg = _raises(get_cfg().merge_from_file, child)
    assert msg == f"config file not found: {missing} (the _BASE_ of {child})", msg


def test_missing_base_deep_in_chain(tmp_path):
    mid = _write(tmp_path / "configs" / "Base-CDNet.yml", "_BASE_: ../gone/Base-Reid.yml\n")
    top = _write(tmp_path / "configs" / "Market" / "cdnet.yml", "_BASE_: ../Base-CDNet.yml\n")
    missing = str(tmp_path / "gone" / "Base-Reid.yml")
    msg = _raises(get_cfg().merge_from_file, top)
    assert msg == f"config file not found: {missing} (the _BASE_ of {mid}, included by {top})", msg


def test_missing_top_level_file(tmp_path):
    missing = str(tmp_path / "nope.yml")
    assert _raises(get_cfg().merge_from_file, missing) == f"config file not found: {missing}"


def test_invalid_yaml_in_base_is_blamed_on_the_base(tmp_path):
    base = _write(tmp_path / "base.yml", "SOLVER: [1, 2\n")
    child = _write(tmp_path / "child.yml", "_BASE_: base.yml\n")
    msg = _raises(get_cfg().merge_from_file, child)
    assert msg.startswith(f"in config file {base} (included by {child}): invalid YAML"), msg


def test_bad_base_value_is_reported(tmp_path):
    child = _write(tmp_path / "child.yml", "_BASE_: 3\n")
    msg = _raises(get_cfg().merge_from_file, child)
    assert msg.startswith(f"in config file {child}: _BASE_ must be a file name"), msg


def test_project_keys_in_a_base_are_checked_against_the_extended_tree(tmp_path):
    base = _write(tmp_path / "base.yml", "MODEL:\n  EXTRA:\n    DEPTH: 5\n    WIDTH: 3.0\n")
    child = _write(tmp_path / "child.yml", "_BASE_: base.yml\nMODEL:\n  HEADS:\n    NUM_PARTS: 4\n")
    msg = _raises(get_cfg().merge_from_file, child)  # without the project's keys
    expected = f"in config file {base} (included by {child}): Non-existent config key: MODEL.EXTRA"
    assert msg.startswith(expected), msg

    cfg = get_cfg()
    cfg.MODEL.EXTRA = CfgNode()
    cfg.MODEL.EXTRA.DEPTH = 1
    cfg.MODEL.EXTRA.WIDTH = 1.0
    cfg.merge_from_file(child)
    assert (cfg.MODEL.EXTRA.DEPTH, cfg.MODEL.EXTRA.WIDTH, cfg.MODEL.HEADS.NUM_PARTS) == (5, 3.0, 4)


def test_inheritance_semantics_are_fvcores(tmp_path):
    _write(tmp_path / "a.yml", "SEED: 1\nSOLVER:\n  BASE_LR: 0.5\n  MAX_EPOCH: 7\n")
    _write(tmp_path / "b.yml", "SEED: 2\nSOLVER:\n  MAX_EPOCH: 8\n")
    _write(tmp_path / "empty.yml", "")
    child = _write(tmp_path / "sub" / "child.yml",
                   "_BASE_: [../a.yml, ../b.yml, ../empty.yml]\nSOLVER:\n  GAMMA: 0.5\n")
    cfg = get_cfg()
    cfg.merge_from_file(child)
    assert (cfg.SEED, cfg.SOLVER.BASE_LR, cfg.SOLVER.MAX_EPOCH, cfg.SOLVER.GAMMA) == (2, 0.5, 8, 0.5)
    # The classmethod gives the merged dict, _BASE_ removed.
    loaded = CfgNode.load_yaml_with_base(child)
    assert loaded == {"SEED": 2, "SOLVER": {"BASE_LR": 0.5, "MAX_EPOCH": 8, "GAMMA": 0.5}}


def test_mapping_over_a_base_value_is_reported(tmp_path):
    _write(tmp_path / "base.yml", "SOLVER: 3\n")
    child = _write(tmp_path / "child.yml", "_BASE_: base.yml\nSOLVER:\n  GAMMA: 0.5\n")
    with pytest.raises(ConfigError, match=re.escape(os.path.basename(child))):
        CfgNode.load_yaml_with_base(child)


# ---------------------------------------------------------------------------------------------- #
# Command-line options after the overrides
# ---------------------------------------------------------------------------------------------- #
def test_option_after_overrides_is_named():
    msg = _raises(get_cfg().merge_from_list, ["SOLVER.MAX_EPOCH", "3", "--resume"])
    assert re.search(r"option --resume must come before the KEY VALUE overrides", msg), msg


def test_several_options_after_overrides_are_named():
    msg = _raises(get_cfg().merge_from_list, ["SOLVER.MAX_EPOCH", "3", "--resume", "--eval-only"])
    assert re.search(r"options --resume, --eval-only must come before the KEY VALUE overrides", msg), msg


def test_lone_double_dash_separator_is_dropped():
    cfg = get_cfg()
    cfg.merge_from_list(["--", "SOLVER.MAX_EPOCH", "3", "SEED", "-1"])
    assert (cfg.SOLVER.MAX_EPOCH, cfg.SEED) == (3, -1)
    with pytest.raises(ConfigError, match="odd number"):
        get_cfg().merge_from_list(["--", "SOLVER.MAX_EPOCH"])


# ---------------------------------------------------------------------------------------------- #
# Cycles and unreadable files
# ---------------------------------------------------------------------------------------------- #
def test_base_cycle_names_the_chain(tmp_path):
    a = _write(tmp_path / "a.yml", "_BASE_: sub/b.yml\nSEED: 1\n")
    b = _write(tmp_path / "sub" / "b.yml", "_BASE_: ../a.yml\n")
    msg = _raises(get_cfg().merge_from_file, a)
    assert msg == f"_BASE_ cycle in config file {b}: {a} -> {b} -> {a}"
    self_ref = _write(tmp_path / "self.yml", "_BASE_: self.yml\n")
    assert _raises(CfgNode.load_yaml_with_base, self_ref) == (
        f"_BASE_ cycle in config file {self_ref}: {self_ref} -> {self_ref}")


def test_a_shared_base_is_not_a_cycle(tmp_path):
    _write(tmp_path / "d.yml", "SEED: 4\n")
    _write(tmp_path / "b.yml", "_BASE_: d.yml\n")
    _write(tmp_path / "c.yml", "_BASE_: d.yml\n")
    top = _write(tmp_path / "a.yml", "_BASE_: [b.yml, c.yml]\n")
    cfg = get_cfg()
    cfg.merge_from_file(top)
    assert cfg.SEED == 4


def test_non_utf8_config_is_named(tmp_path):
    path = tmp_path / "latin1.yml"
    path.write_bytes("SEED: 3\nOUTPUT_DIR: café\n".encode("latin-1"))
    child = _write(tmp_path / "child.yml", "_BASE_: latin1.yml\n")
    assert _raises(get_cfg().merge_from_file, child) == (
        f"cannot read config file {path} (included by {child}): not UTF-8 text (byte 0xe9 at offset 23)")
