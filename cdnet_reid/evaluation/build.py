"""Evaluators by task: ``EVALUATOR_REGISTRY`` and ``build_evaluator``.

Every evaluator class is registered under its name; a dataset task names the evaluator it uses
(``cdnet_reid.data.register_task``). It builds from the config with a classmethod
``from_config(cfg, **meta) -> dict`` of constructor arguments (the one protocol of
``utils.registry.build``), ``meta`` being what the task's test
loader reports (e.g. ``num_query`` for re-ID). A project adds one with::

    @EVALUATOR_REGISTRY.register()
    class MyEvaluator(DatasetEvaluator):
        @classmethod
        def from_config(cls, cfg, **meta):
            return {...}
"""

from ..utils.registry import Registry, build
from .cls_evaluator import ClassificationEvaluator
from .evaluator import DatasetEvaluator
from .reid_evaluator import ReidEvaluator

__all__ = ["EVALUATOR_REGISTRY", "build_evaluator"]

EVALUATOR_REGISTRY = Registry("EVALUATOR")
EVALUATOR_REGISTRY.__doc__ = "Evaluator classes by dataset task; built with ``from_config``."
EVALUATOR_REGISTRY.register()(ReidEvaluator)
EVALUATOR_REGISTRY.register()(ClassificationEvaluator)


def build_evaluator(cfg, name: str, **meta) -> DatasetEvaluator:
    """The evaluator class registered as ``name``: ``cls(**cls.from_config(cfg, **meta))``, ``meta``
    being what the task's test loader reports (``data.TestLoader.meta``)."""
    return build(EVALUATOR_REGISTRY, name, "the evaluator of the dataset task", cfg, **meta)
