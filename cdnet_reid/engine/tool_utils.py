"""Shared command-line plumbing of the tools (``tools/extract_features.py``,
``tools/visualize_ranks.py``, ``tools/export_onnx.py``, ``tools/complexity.py``,
``tools/benchmark.py``, ``tools/benchmark_data.py``).

Projects register their components when imported (``projects/README.md``), so these tools take
``--import-module`` (repeatable): a dotted module name, or a path to a package folder or a
``.py`` file (its parent folder is put on ``sys.path`` first), e.g.
``--import-module projects/MobileNetV2/mobilenetv2_reid``. Every ``add_*_config(cfg)`` function
that an imported module defines or re-exports is applied to the default config before the YAML
file is merged, just as the project's own ``train_net.py`` does.
"""

import argparse
import importlib
import logging
import os
import sys
from types import ModuleType
from typing import Callable, List, Sequence

from ..config import CfgNode, get_cfg
from ..utils.logger import setup_logger

__all__ = ["add_tool_arguments", "import_modules", "setup_tool_cfg"]


def add_tool_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``--config-file``, ``--import-module`` and the trailing ``KEY VALUE`` overrides."""
    parser.add_argument("--config-file", default="", metavar="FILE", help="path to the YAML config")
    parser.add_argument("--import-module", action="append", default=[], metavar="MODULE",
                        help="module registering a project's components, as a dotted name or a "
                             "path to a package folder / .py file (repeatable), e.g. "
                             "projects/MobileNetV2/mobilenetv2_reid")
    parser.add_argument("opts", default=None, nargs=argparse.REMAINDER,
                        help="config overrides as KEY VALUE pairs, e.g. MODEL.WEIGHTS model.pth")
    return parser


def import_modules(specs: Sequence[str]) -> List[ModuleType]:
    """Import every module of ``specs`` (dotted names or paths, see the module docstring)."""
    modules = []
    for spec in specs:
        path = os.path.abspath(spec)
        if os.path.exists(path) or spec.endswith(".py") or os.sep in spec or "/" in spec:
            if not os.path.exists(path):
                raise FileNotFoundError(f"--import-module {spec}: no such file or folder")
            path = path.rstrip(os.sep)
            parent, name = os.path.split(path)
            if name.endswith(".py"):
                name = name[:-3]
            if parent not in sys.path:
                sys.path.insert(0, parent)
            spec = name
        modules.append(importlib.import_module(spec))
    return modules


def config_hooks(modules: Sequence[ModuleType]) -> List[Callable[[CfgNode], None]]:
    """The ``add_*_config`` functions of ``modules`` (each once, in import order)."""
    hooks: List[Callable] = []
    for mod in modules:
        for name in sorted(dir(mod)):
            fn = getattr(mod, name)
            if name.startswith("add_") and name.endswith("_config") and callable(fn) \
                    and fn not in hooks:
                hooks.append(fn)
    return hooks


def setup_tool_cfg(args: argparse.Namespace, *, freeze: bool = True) -> CfgNode:
    """Console logging, ``--import-module``, then defaults <- project keys <- YAML <- overrides."""
    logger = setup_logger(name="cdnet_reid")
    logger.setLevel(logging.INFO)  # no DEBUG model printout in the tools' console
    modules = import_modules(getattr(args, "import_module", []) or [])
    cfg = get_cfg()
    for hook in config_hooks(modules):
        hook(cfg)
    if args.config_file:
        cfg.merge_from_file(args.config_file)
    cfg.merge_from_list([o for o in (args.opts or []) if o != "--"])  # "--" may separate options
    if modules:
        logger.info("Imported %s", ", ".join(m.__name__ for m in modules))
    if freeze:
        cfg.freeze()
    return cfg
