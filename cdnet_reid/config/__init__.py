"""Configuration: the default tree, ``get_cfg()`` and a ``CfgNode`` with ``_BASE_`` inheritance."""

from .config import CfgNode, ConfigError, config_file_keys, override_keys


def get_cfg() -> CfgNode:
    """A fresh copy of the default config tree (see ``defaults.py`` for every key)."""
    from .defaults import _C
    return _C.clone()


__all__ = ["CfgNode", "ConfigError", "config_file_keys", "get_cfg", "override_keys"]
