"""The one argument helper of the ``cdnet-reid`` subcommands: every flag that several tools take is
defined here once, so it means the same thing everywhere.

==================  ==============================================================================
``--output FILE``   the file a tool writes (its suffix says the format)
``--output-dir D``  the folder a tool writes its files into
``--topk K``        how many gallery matches per query (deprecated alias: ``--k``)
``--size H W``      the model's input height and width
``--runtime R``     inference runtime: ``torch`` (the checkpoint), ``onnxruntime`` (an exported
                    ``.onnx``: ``--onnx FILE`` sets both) or ``openvino`` (``--onnx FILE``)
``--precision P``   ``auto``, ``fp32``, ``bf16`` or ``int8`` (a quantised file)
==================  ==============================================================================

Renamed flags keep their old spelling for one release as a deprecated alias: it still works and
logs a deprecation warning naming the new flag (:func:`add_flag`).
"""

import argparse
import logging
from collections.abc import Sequence

from ..engine.defaults import OneLineArgumentParser, add_config_arguments, add_runtime_arguments, setup_tool_cfg

logger = logging.getLogger("cdnet_reid")

__all__ = ["add_flag", "add_output", "add_output_dir", "add_runtime", "add_size", "add_topk",
           "tool_parser", "add_config_arguments", "setup_tool_cfg", "load_tool_model", "model_options"]


def tool_parser(prog: str | None, doc: str | None) -> argparse.ArgumentParser:
    """A subcommand's parser: its docstring as the help text, one-line usage errors."""
    return OneLineArgumentParser(prog=prog, description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)


class _DeprecatedAlias(argparse.Action):
    """Stores like the flag it aliases and logs that the old spelling is deprecated."""

    def __init__(self, option_strings, dest, new: str = "", store=None, **kwargs):
        self.new, self.store = new, store
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        logger.warning("%s is deprecated and will be removed in the next release: use %s", option_string,
                       self.new)
        setattr(namespace, self.dest, self.store if self.nargs == 0 else values)


def add_flag(parser, name: str, *, deprecated: Sequence[str] = (), **kwargs) -> argparse.Action:
    """``parser.add_argument(name, **kwargs)`` plus each ``deprecated`` spelling as a hidden alias
    that stores into the same destination and logs a deprecation warning when used."""
    action = parser.add_argument(name, **kwargs)
    for old in deprecated:
        extra = {"nargs": 0, "store": kwargs.get("const", True)} if kwargs.get("action") in (
            "store_true", "store_const") else {k: v for k, v in kwargs.items() if k in ("type", "nargs",
                                                                                        "choices", "metavar")}
        parser.add_argument(old, dest=action.dest, action=_DeprecatedAlias, new=name, help=argparse.SUPPRESS,
                            default=argparse.SUPPRESS, **extra)
    return action


def add_output(parser, help: str, *, required: bool = True, default: str = ""):
    """``--output FILE``: the file the tool writes."""
    return parser.add_argument("--output", required=required, default=default, metavar="FILE", help=help)


def add_output_dir(parser, help: str, *, required: bool = True, default: str = "", deprecated=()):
    """``--output-dir DIR``: the folder the tool writes into."""
    return add_flag(parser, "--output-dir", deprecated=deprecated, required=required, default=default,
                    metavar="DIR", help=help)


def add_topk(parser, default: int = 10, help: str = "gallery matches per query"):
    """``--topk K`` (old spelling ``--k``)."""
    return add_flag(parser, "--topk", deprecated=("--k",), type=int, default=default, metavar="K",
                    help=f"{help} (default {default})")


def add_size(parser, help: str = "input height and width (default: INPUT.SIZE_TEST)"):
    """``--size H W``: the model's input size (nothing else)."""
    return parser.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"), help=help)


def add_runtime(parser):
    """``--runtime``, ``--precision`` and ``--onnx`` / ``--model-file``
    (:func:`~cdnet_reid.engine.defaults.add_runtime_arguments`)."""
    add_runtime_arguments(parser)


def model_options(args) -> dict:
    """The keyword arguments of :func:`~cdnet_reid.engine.runtimes.create_predictor` given by the
    command line: the runtime, the model file, and the config rule (the checkpoint / exported
    file defines the model and its input; the keys the ``--config-file`` sets must agree with it;
    keys set as ``KEY VALUE`` overrides are used as given)."""
    from ..config import ConfigError, config_file_keys, override_keys

    runtime = getattr(args, "runtime", None) or ("onnxruntime" if getattr(args, "onnx", "") else "torch")
    if runtime != "torch" and not getattr(args, "onnx", ""):
        raise ConfigError(f"--runtime {runtime} needs --onnx FILE (an exported model)")
    if runtime == "torch" and getattr(args, "onnx", ""):
        raise ConfigError(f"--onnx {args.onnx} runs in onnxruntime or openvino: leave out --runtime torch")
    return dict(runtime=runtime, precision=getattr(args, "precision", "auto"), model_file=getattr(args, "onnx", ""),
                config_keys=config_file_keys(args.config_file), explicit=override_keys(args.opts))



def load_tool_model(cfg, args, *, device: str | None = None):
    """``(model, cfg)`` of a tool: the checkpoint ``MODEL.WEIGHTS`` rebuilt by
    :func:`~cdnet_reid.modeling.load_model` under the command line's config rule
    (:func:`model_options`), in eval mode; without ``MODEL.WEIGHTS`` the config's model with
    random weights (a warning says so)."""
    from ..modeling import build_model, load_model

    if cfg.MODEL.WEIGHTS:
        opts = model_options(args)
        return load_model(cfg, config_keys=opts["config_keys"], explicit=opts["explicit"],
                          device=device)
    logger.warning("MODEL.WEIGHTS is empty: the model is randomly initialised")
    if device is not None:
        cfg = cfg.clone()
        cfg.defrost()
        cfg.MODEL.DEVICE = device
        cfg.freeze()
    return build_model(cfg).eval(), cfg
