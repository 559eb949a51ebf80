"""Configuration: the default tree, ``get_cfg()`` and a ``CfgNode`` with ``_BASE_`` inheritance.

The core tree (``defaults.py``) holds the keys of the engine and of the components every model
uses. A component with keys of its own (a dataset, the search, a project) defines them in an
``add_<name>_config(cfg)`` function next to it and registers that function with
:func:`register_config` when imported; :func:`get_cfg` applies every registered function, so a
config naming those keys loads once the component is imported (as its registry names resolve
then too).
"""

from collections.abc import Callable

from .config import CfgNode, ConfigError, config_file_keys, override_keys

_CONFIG_FUNCTIONS: list[Callable[[CfgNode], None]] = []


def register_config(fn: Callable[[CfgNode], None]) -> Callable[[CfgNode], None]:
    """Decorator: ``fn(cfg)`` adds a component's keys to every config :func:`get_cfg` returns.
    ``fn`` must leave keys that already exist alone (it may also be called directly)."""
    if fn not in _CONFIG_FUNCTIONS:
        _CONFIG_FUNCTIONS.append(fn)
    return fn


def get_cfg() -> CfgNode:
    """A fresh copy of the default config tree (see ``defaults.py``) with the keys of every
    component imported so far (:func:`register_config`)."""
    from .defaults import _C

    cfg = _C.clone()
    for fn in _CONFIG_FUNCTIONS:
        fn(cfg)
    return cfg


__all__ = ["CfgNode", "ConfigError", "config_file_keys", "get_cfg", "override_keys", "register_config"]
