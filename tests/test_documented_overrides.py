"""Nothing the user sets is silently ignored: every ``KEY VALUE`` override that a subcommand's
``--help`` shows as an example is applied by that command's config setup (the key exists, the
value parses and differs from the default); the learning rate's example changes the LR used."""

import argparse
import contextlib
import io
import re
import shlex

import pytest
import torch
from torch import nn

from cdnet_reid import cli
from cdnet_reid.config import get_cfg
from cdnet_reid.engine.defaults import setup_cfg
from cdnet_reid.solver import build_lr_scheduler, build_optimizer

KEY = re.compile(r"^[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)+$")


def _help(command: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main([command, "--help"]) == 0
    return out.getvalue()


def _split(line: str):
    try:
        return shlex.split(line)
    except ValueError:  # an unbalanced quote in prose
        return line.split()


def documented_overrides():
    """``(command, key, value)`` of every example override in the commands' help texts: the
    ``KEY VALUE`` pairs of the example command lines and the "e.g. KEY VALUE" of the options."""
    found = []
    for command in cli.COMMANDS:
        text = _help(command)
        lines, continued = [], False
        for line in text.splitlines():
            if line.strip().startswith(("cdnet-reid ", "python tools/")) or continued:
                lines.append(re.split(r"\s{2,}[#(]", line.strip())[0])  # without the trailing comment
            continued = bool(lines) and line.rstrip().endswith("\\")
        tokens = [t for line in lines for t in _split(line.rstrip(" \\"))]
        pairs = [(k, v) for k, v in zip(tokens, tokens[1:]) if KEY.match(k) and not v.startswith("-")]
        pairs += re.findall(r"e\.g\. ([A-Z][A-Z0-9_]*(?:\.[A-Z0-9_]+)+) (\S+)", " ".join(text.split()))
        found += [(command, k, v) for k, v in pairs]
    return sorted(set(found))


OVERRIDES = documented_overrides()


def test_the_help_texts_document_overrides():
    commands = {c for c, _, _ in OVERRIDES}
    assert {"train", "eval", "extract", "export", "search-gallery", "visualize", "complexity"} <= commands
    assert ("train", "SOLVER.BASE_LR", "0.01") in OVERRIDES


@pytest.mark.parametrize("command,key,value", OVERRIDES)
def test_each_documented_override_is_applied(command, key, value):
    args = argparse.Namespace(config_file="", opts=[key, value], import_module=[])
    cfg = setup_cfg(args)
    default = get_cfg()
    got = cfg
    want = get_cfg()
    want.merge_from_list([key, value])
    for part in key.split("."):
        got, want, default = got[part], want[part], default[part]
    assert got == want and got != default, f"{command}: {key} {value} leaves {key} at {default!r}"


@pytest.mark.xfail(strict=True, reason="SOLVER.BASE_LR is ignored while SOLVER.LR_LIST is set (issue 18: "
                   "the config-validation helper gives BASE_LR and LR_LIST one meaning; remove this mark then)")
def test_the_documented_learning_rate_is_the_learning_rate_used():
    args = argparse.Namespace(config_file="", opts=["SOLVER.BASE_LR", "0.01"], import_module=[])
    cfg = setup_cfg(args)
    optimizer = build_optimizer(cfg, nn.Linear(2, 2))
    build_lr_scheduler(cfg, optimizer, iters_per_epoch=10)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
    assert torch.is_tensor(optimizer.param_groups[0]["params"][0])
