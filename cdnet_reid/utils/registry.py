"""One registry type and one construction protocol for every component.

* :class:`Registry`: fvcore's registry whose ``register`` takes optional names:
  ``@REG.register()`` (the class name), ``@REG.register("name")`` or
  ``@REG.register("name", "other name")`` (several names, one class).
* :func:`build`: the one builder. A registered class defines
  ``from_config(cls, cfg, **context) -> dict`` (a classmethod returning constructor arguments;
  ``context`` is what the caller knows besides the config, e.g. a head's ``input_shape``); the
  builder looks the name up (:func:`lookup`) and returns ``cls(**cls.from_config(cfg, **context))``.
"""

from fvcore.common.registry import Registry as _FvcoreRegistry

__all__ = ["Registry", "build", "lookup"]


class Registry(_FvcoreRegistry):
    """fvcore's ``Registry`` whose ``register`` takes the names to register under (none: the
    object's ``__name__``); ``register(obj)`` registers ``obj`` directly, as in fvcore."""

    def register(self, *names):
        if len(names) == 1 and not isinstance(names[0], str):  # register(obj)
            return super().register(names[0])

        def deco(obj):
            for name in names or (obj.__name__,):
                self._do_register(name, obj)
            return obj

        return deco


def lookup(registry: Registry, name: str, key: str):
    """``registry.get(name)``; an unknown name raises a ``KeyError`` naming the config ``key``, the
    value and every registered name."""
    try:
        return registry.get(name)
    except KeyError:
        names = sorted(k for k, _ in registry)
        raise KeyError(f"{key}={name!r} is not registered; available: {names}. (Components of a "
                       "project must be imported first, e.g. with --import-module.)") from None


def build(registry: Registry, name: str, key: str, cfg, **context):
    """The component ``name`` of ``registry`` built from ``cfg``:
    ``cls(**cls.from_config(cfg, **context))`` (``key``: the config key that named it, for errors)."""
    cls = lookup(registry, name, key)
    return cls(**cls.from_config(cfg, **context))
