"""Looking names up in fvcore registries with errors a user can act on."""

from fvcore.common.registry import Registry

__all__ = ["Registry", "lookup"]


def lookup(registry: Registry, name: str, key: str):
    """``registry.get(name)``; an unknown name raises a ``KeyError`` naming the config ``key``, the
    value and every registered name."""
    try:
        return registry.get(name)
    except KeyError:
        names = sorted(k for k, _ in registry)
        raise KeyError(f"{key}={name!r} is not registered; available: {names}. (Components of a "
                       "project must be imported first, e.g. with --import-module.)") from None
