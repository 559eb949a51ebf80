"""Evaluators by task: ``EVALUATOR_REGISTRY`` and ``build_evaluator``.

Every evaluator class is registered under the dataset task it serves (a dataset's ``task``
attribute, see ``cdnet_reid.data.dataset_task``) and builds from the config with a classmethod
``from_config(cfg, **meta) -> dict`` of constructor arguments, ``meta`` being what the task's test
loader reports (e.g. ``num_query`` for re-ID). A project adds a task with::

    @EVALUATOR_REGISTRY.register("my_task")
    class MyEvaluator(DatasetEvaluator):
        @classmethod
        def from_config(cls, cfg, **meta):
            return {...}
"""

from fvcore.common.registry import Registry

from .cls_evaluator import ClassificationEvaluator
from .evaluator import DatasetEvaluator
from .reid_evaluator import ReidEvaluator

__all__ = ["EVALUATOR_REGISTRY", "build_evaluator"]


class _TaskRegistry(Registry):
    """An fvcore ``Registry`` whose ``register`` also takes the name to register under:
    ``register("task")(cls)`` or ``@register("task")``; ``register(cls)`` uses ``cls.__name__``."""

    def register(self, obj=None):
        if isinstance(obj, str):
            name = obj

            def deco(cls):
                self._do_register(name, cls)
                return cls

            return deco
        return super().register(obj)


EVALUATOR_REGISTRY = _TaskRegistry("EVALUATOR")
EVALUATOR_REGISTRY.__doc__ = "Evaluator classes by dataset task; built with ``from_config``."
EVALUATOR_REGISTRY.register("reid")(ReidEvaluator)
EVALUATOR_REGISTRY.register("classification")(ClassificationEvaluator)


def build_evaluator(cfg, task: str, **meta) -> DatasetEvaluator:
    """The evaluator registered for ``task``: ``cls(**cls.from_config(cfg, **meta))``."""
    if task not in EVALUATOR_REGISTRY:
        names = sorted(name for name, _ in EVALUATOR_REGISTRY)
        raise KeyError(f"no evaluator is registered for the task {task!r}; available tasks: "
                       f"{names} (register one with @EVALUATOR_REGISTRY.register({task!r}))")
    cls = EVALUATOR_REGISTRY.get(task)
    return cls(**cls.from_config(cfg, **meta))
