"""The project's ``CfgNode``: fvcore's (``_BASE_`` inheritance, iopath paths) with errors that name
the offending key **and** where it came from (a YAML file or the command line)."""

import logging

from fvcore.common.config import CfgNode as _FvcoreCfgNode

logger = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A config file or override that cannot be applied (unknown key, wrong type, bad value)."""


class CfgNode(_FvcoreCfgNode):
    """fvcore ``CfgNode`` whose merge errors name the key and the source file.

    yacs raises ``KeyError``/``AssertionError``/``ValueError`` without saying which file was being
    merged; with ``_BASE_`` chains that is often the hard part to find. We re-raise them as
    :class:`ConfigError` with the file (or "command line") prepended.
    """

    def merge_from_file(self, cfg_filename: str, allow_unsafe: bool = False) -> None:
        try:
            super().merge_from_file(cfg_filename, allow_unsafe=allow_unsafe)
        except ConfigError:
            raise
        except FileNotFoundError as e:
            raise ConfigError(f"config file not found: {cfg_filename} ({e})") from e
        except (KeyError, AssertionError, ValueError, TypeError) as e:
            raise ConfigError(f"in config file {cfg_filename}: {_message(e)}") from e

    def merge_from_list(self, cfg_list: list) -> "CfgNode":
        if len(cfg_list) % 2 != 0:
            raise ConfigError(
                f"command-line overrides must be KEY VALUE pairs, got an odd number of items: {cfg_list}")
        try:
            return super().merge_from_list(cfg_list)
        except (KeyError, AssertionError, ValueError, TypeError) as e:
            raise ConfigError(f"in command-line overrides: {_message(e)}") from e


def _message(e: Exception) -> str:
    msg = e.args[0] if len(e.args) == 1 and isinstance(e.args[0], str) else str(e)
    if "Non-existent" in msg:
        msg += " (unknown key: check the spelling, or add it with an add_<project>_config(cfg) function)"
    return msg
