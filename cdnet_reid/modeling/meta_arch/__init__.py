"""Meta-architectures: whole models built from a config."""

from .baseline import Baseline

__all__ = ["Baseline"]
