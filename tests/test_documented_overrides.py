"""Nothing the user sets is silently ignored: every ``KEY VALUE`` override that a subcommand's
``--help`` shows as an example is applied by that command's config setup (the key exists, the
value parses and differs from the default); a learning rate the schedule would ignore is refused."""

import argparse
import contextlib
import io
import re
import shlex

import pytest
from torch import nn

from cdnet_reid import cli
from cdnet_reid.config import ConfigError, get_cfg
from cdnet_reid.engine.defaults import setup_cfg
from cdnet_reid.solver import build_lr_scheduler, build_optimizer, check_lr_schedule

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
    assert ("train", "SOLVER.IMS_PER_BATCH", "128") in OVERRIDES


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


def test_the_learning_rate_set_is_the_learning_rate_used_or_refused():
    """SOLVER.BASE_LR alone used to be ignored while SOLVER.LR_LIST (the default schedule) was set:
    now it is refused in one line naming both keys, and with a matching LR_LIST it is what trains."""
    args = argparse.Namespace(config_file="", opts=["SOLVER.BASE_LR", "0.01"], import_module=[])
    with pytest.raises(ConfigError, match=r"SOLVER.BASE_LR is 0.01 but SOLVER.LR_LIST .* SOLVER.LR_LIST too"):
        check_lr_schedule(setup_cfg(args))
    args.opts += ["SOLVER.LR_LIST", "[0.01,0.001,0.0001,0.00001]"]
    cfg = setup_cfg(args)
    check_lr_schedule(cfg)
    optimizer = build_optimizer(cfg, nn.Linear(2, 2))
    scheduler = build_lr_scheduler(cfg, optimizer, iters_per_epoch=10)
    for _ in range(cfg.SOLVER.WARMUP_ITERS):
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
