"""The project's ``CfgNode``: fvcore's (``_BASE_`` inheritance, iopath paths) with errors that name
the offending key **and** where it came from (a YAML file, the chain of ``_BASE_`` files that
included it, or the command line)."""

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import yaml
from fvcore.common.config import BASE_KEY
from fvcore.common.config import CfgNode as _FvcoreCfgNode

logger = logging.getLogger(__name__)

# Exceptions yacs/fvcore raise for a key or value that cannot be merged.
_MERGE_ERRORS = (KeyError, AssertionError, ValueError, TypeError)


class ConfigError(ValueError):
    """A config file or override that cannot be applied (unknown key, wrong type, bad value)."""


class CfgNode(_FvcoreCfgNode):
    """fvcore ``CfgNode`` whose merge errors name the key and the file that really holds it.

    yacs raises ``KeyError``/``AssertionError``/``ValueError`` without saying which file was being
    merged, and fvcore merges a whole ``_BASE_`` chain into one dict before checking it, so a bad
    key in a base file used to be blamed on the file that includes it. Here every file of the chain
    is checked against the default tree as it is read, and errors are :class:`ConfigError` naming
    the file and the files that included it (or "command-line overrides").
    """

    # ----------------------------------------------------------------------------------------- #
    # Files
    # ----------------------------------------------------------------------------------------- #
    @classmethod
    def load_yaml_with_base(cls, filename: str, allow_unsafe: bool = False) -> dict[str, Any]:
        """fvcore's ``load_yaml_with_base`` (same result), with errors that name the file and the
        chain of files that included it. Keys are not checked against any tree here."""
        return cls._load_yaml_chain(filename, filename, (), allow_unsafe, None, ())

    def merge_from_file(self, cfg_filename: str, allow_unsafe: bool = False) -> None:
        """Merge a YAML file and its ``_BASE_`` files, each checked against this tree on its own."""

        def check(own: dict[str, Any], where: str) -> None:
            # Merge this file's own keys into a scratch copy of the tree: unknown keys and wrong
            # types are reported here, with the file they are in.
            scratch = self.clone()
            scratch.defrost()
            try:
                scratch.merge_from_other_cfg(type(self)(own))
            except _MERGE_ERRORS as e:
                raise ConfigError(f"in config file {where}: {_message(e)}") from e

        loaded = self._load_yaml_chain(cfg_filename, cfg_filename, (), allow_unsafe, check, ())
        try:
            self.merge_from_other_cfg(type(self)(loaded))
        except _MERGE_ERRORS as e:
            raise ConfigError(f"in config file {cfg_filename}: {_message(e)}") from e

    @classmethod
    def _load_yaml_chain(cls, filename: str, shown: str, includers: Sequence[str], allow_unsafe: bool,
                         check: Callable[[dict[str, Any], str], None] | None,
                         chain: Sequence[str]) -> dict[str, Any]:
        """The dict of ``filename`` with its ``_BASE_`` files merged underneath (fvcore semantics).

        ``shown`` is how the file is named in messages; ``includers`` the files that include it,
        nearest first. ``check(own_keys, where)``, if given, validates the keys written in each
        file (without those of its bases) as soon as the file is read. ``chain``: the real paths
        of the including files, outermost first (a file that includes itself is a cycle).
        """
        where = shown + _included_by(includers)
        real = filename if "://" in filename else os.path.realpath(filename)
        if real in chain:
            cycle = [*reversed(includers), shown]
            raise ConfigError(f"{BASE_KEY} cycle in config file {includers[0]}: {' -> '.join(cycle)}")
        cfg = cls._read_yaml(filename, shown, includers, allow_unsafe)
        if cfg is None:  # an empty file sets nothing
            cfg = {}
        if not isinstance(cfg, dict):
            raise ConfigError(f"in config file {where}: expected a mapping of config keys at the top "
                              f"level, got a {type(cfg).__name__}")
        bases = cfg.pop(BASE_KEY, None)
        if check is not None:
            check(cfg, where)
        if bases is None:
            return cfg
        if isinstance(bases, str):
            bases = [bases]
        if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
            raise ConfigError(f"in config file {where}: {BASE_KEY} must be a file name or a list of "
                              f"file names, got {bases!r}")
        merged: dict[str, Any] = {}
        for base in bases:
            path = _base_path(base, filename)
            base_shown = _display_path(path)
            base_cfg = cls._load_yaml_chain(path, base_shown, (shown, *includers), allow_unsafe, check,
                                            (*chain, real))
            _merge_dicts(base_cfg, merged, base_shown + _included_by((shown, *includers)), [])
        _merge_dicts(cfg, merged, where, [])
        return merged

    @classmethod
    def _read_yaml(cls, filename: str, shown: str, includers: Sequence[str], allow_unsafe: bool) -> Any:
        where = shown + _included_by(includers)
        try:
            with cls._open_cfg(filename) as f:
                text = f.read()
        except FileNotFoundError as e:
            if includers:
                chain = f" (the {BASE_KEY} of {includers[0]}{_included_by(includers[1:], bare=True)})"
            else:
                chain = ""
            raise ConfigError(f"config file not found: {shown}{chain}") from e
        except OSError as e:
            raise ConfigError(f"cannot read config file {where}: {e}") from e
        except UnicodeDecodeError as e:
            raise ConfigError(f"cannot read config file {where}: not UTF-8 text (byte 0x{e.object[e.start]:02x} "
                              f"at offset {e.start})") from None
        try:
            return yaml.safe_load(text)
        except yaml.constructor.ConstructorError as e:
            if not allow_unsafe:
                raise ConfigError(f"in config file {where}: {e} (Python tags load only with "
                                  "allow_unsafe=True)") from e
            logger.warning("Loading config %s with yaml.unsafe_load. Your machine may be at risk if "
                           "the file contains malicious content.", shown)
            try:
                return yaml.unsafe_load(text)
            except yaml.YAMLError as e2:
                raise ConfigError(f"in config file {where}: invalid YAML: {e2}") from e2
        except yaml.YAMLError as e:
            raise ConfigError(f"in config file {where}: invalid YAML: {e}") from e

    # ----------------------------------------------------------------------------------------- #
    # Command line
    # ----------------------------------------------------------------------------------------- #
    def merge_from_list(self, cfg_list: list) -> "CfgNode":
        items = [x for x in cfg_list if x != "--"]  # a lone "--" separates options (tools use it)
        options = [x for x in items if isinstance(x, str) and x.startswith("--")]
        if options:
            names = ", ".join(options)
            raise ConfigError(
                f"command-line option{'s' if len(options) > 1 else ''} {names} must come before the "
                f"KEY VALUE overrides (e.g. `--resume SOLVER.MAX_EPOCH 10`, not "
                f"`SOLVER.MAX_EPOCH 10 --resume`); got: {' '.join(map(str, cfg_list))}")
        if len(items) % 2 != 0:
            raise ConfigError(
                f"command-line overrides must be KEY VALUE pairs, got an odd number of items: {items}")
        try:
            return super().merge_from_list(items)
        except _MERGE_ERRORS as e:
            raise ConfigError(f"in command-line overrides: {_message(e)}") from e


def config_file_keys(path: str) -> list[str]:
    """The dotted keys a config file sets, its ``_BASE_`` files included (none for ``""``)."""
    if not path:
        return []

    def leaves(node: Any, prefix: str):
        if isinstance(node, dict):
            for k, v in node.items():
                yield from leaves(v, f"{prefix}.{k}" if prefix else str(k))
        else:
            yield prefix

    return list(leaves(CfgNode.load_yaml_with_base(path), ""))


def override_keys(opts: Sequence[Any]) -> list[str]:
    """The keys of a ``KEY VALUE ...`` override list (what the user set explicitly)."""
    items = [x for x in opts or [] if x != "--"]
    return [str(k) for k in items[0::2]]


def _base_path(base: str, including_file: str) -> str:
    """Where a ``_BASE_`` entry points: fvcore's rule (relative to the including file)."""
    if base.startswith("~"):
        base = os.path.expanduser(base)
    if not any(map(base.startswith, ["/", "https://", "http://"])):
        base = os.path.join(os.path.dirname(including_file), base)
    return base


def _display_path(path: str) -> str:
    """``configs/Market/../Base-Reid.yml`` -> ``configs/Base-Reid.yml`` (local paths only)."""
    return path if "://" in path else os.path.normpath(path)


def _included_by(includers: Sequence[str], bare: bool = False) -> str:
    """`` (included by B, included by A)`` for includers (B, A), nearest first; "" if none."""
    if not includers:
        return ""
    chain = ", ".join(f"included by {name}" for name in includers)
    return f", {chain}" if bare else f" ({chain})"


def _merge_dicts(a: dict[str, Any], b: dict[str, Any], where: str, prefix: list[str]) -> None:
    """Merge dict ``a`` into ``b`` (values of ``a`` win), as fvcore does for ``_BASE_`` files."""
    for k, v in a.items():
        if isinstance(v, dict) and k in b:
            if not isinstance(b[k], dict):
                key = ".".join(prefix + [str(k)])
                raise ConfigError(f"in config file {where}: {key} is a mapping here but a single "
                                  f"value ({b[k]!r}) in its {BASE_KEY} file(s)")
            _merge_dicts(v, b[k], where, prefix + [str(k)])
        else:
            b[k] = v


def _message(e: Exception) -> str:
    msg = e.args[0] if len(e.args) == 1 and isinstance(e.args[0], str) else str(e)
    if "Non-existent" in msg:
        msg += " (unknown key: check the spelling, or add it with an add_<project>_config(cfg) function)"
    return msg
