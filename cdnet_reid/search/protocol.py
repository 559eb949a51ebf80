"""Statistics of the search-evaluation protocol (``cdnet-reid search-pipeline``): per-genotype and
per-group mean / standard deviation, a bootstrap confidence interval for a difference of group
means, and Kendall's rank correlation.

The data are *runs*: one trained network (a genotype trained with one training seed) gives one
value (mAP or Rank-1). A group (searched / paper / random) is a list of genotypes, each a list of
its runs' values.

* :func:`summary`: mean and sample standard deviation (``ddof=1``; ``None`` for one value).
* :func:`group_summary`: a group's mean over all its runs, the standard deviation over its runs
  and the standard deviation between its genotypes' means.
* :func:`bootstrap_difference`: the difference of two groups' means (the mean of each group's
  genotype means) with a two-level percentile bootstrap interval: each resample draws, per group,
  as many genotypes as the group has *with replacement*, then for every drawn genotype as many of
  its training seeds as it has *with replacement*, and takes the difference of the resampled group
  means. The interval is the (α/2, 1 - α/2) quantiles of ``n_resamples`` such differences, drawn
  from ``numpy.random.default_rng(seed)``: reproducible. Resampling the genotypes makes the
  interval reflect the spread between architectures (what "searched beats random" is about), not
  only the training noise; a group of one genotype contributes only its seed noise.
* :func:`kendall_tau`: Kendall's τ-b (ties corrected) of two equally long sequences.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["GroupStats", "bootstrap_difference", "group_summary", "kendall_tau", "summary"]


def summary(values: Sequence[float]) -> tuple[float, float | None]:
    """``(mean, sample standard deviation)``; the deviation is None for fewer than two values."""
    if not len(values):
        raise ValueError("summary of no values")
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), (float(v.std(ddof=1)) if len(v) > 1 else None)


@dataclass
class GroupStats:
    """A group's runs: ``mean`` over all runs, ``sd_runs`` over all runs, ``sd_genotypes`` between
    the genotypes' means (None where undefined), and the counts."""

    mean: float
    sd_runs: float | None
    sd_genotypes: float | None
    genotypes: int
    runs: int


def group_summary(group: Sequence[Sequence[float]]) -> GroupStats:
    """:class:`GroupStats` of ``group`` (a list of genotypes, each a list of its runs' values)."""
    if not group or any(not len(g) for g in group):
        raise ValueError("a group needs at least one genotype with at least one run")
    runs = [x for g in group for x in g]
    mean, sd_runs = summary(runs)
    _, sd_genotypes = summary([summary(g)[0] for g in group])
    return GroupStats(mean, sd_runs, sd_genotypes, len(group), len(runs))


def _group_mean(group: Sequence[np.ndarray]) -> float:
    return float(np.mean([g.mean() for g in group]))


def _resample(group: Sequence[np.ndarray], rng: np.random.Generator) -> float:
    picks = rng.integers(0, len(group), size=len(group))
    return float(np.mean([group[i][rng.integers(0, len(group[i]), size=len(group[i]))].mean() for i in picks]))


def bootstrap_difference(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]], *, n_resamples: int = 10000,
                         level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """``(estimate, low, high)``: mean(a) - mean(b) (each the mean of its genotypes' means) and its
    two-level percentile bootstrap interval at ``level`` (module docstring)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    ga = [np.asarray(g, dtype=np.float64) for g in a]
    gb = [np.asarray(g, dtype=np.float64) for g in b]
    if not ga or not gb or any(g.size == 0 for g in ga + gb):
        raise ValueError("both groups need at least one genotype with at least one run")
    rng = np.random.default_rng(seed)
    diffs = np.array([_resample(ga, rng) - _resample(gb, rng) for _ in range(n_resamples)])
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(diffs, [tail, 1.0 - tail])
    return _group_mean(ga) - _group_mean(gb), float(low), float(high)


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's τ-b of ``x`` and ``y``: (C - D) / sqrt((n0 - n1)(n0 - n2)) with C / D the
    concordant / discordant pairs, n0 = n(n-1)/2 and n1 / n2 the pairs tied in x / in y. NaN when
    either sequence is constant (or shorter than 2)."""
    if len(x) != len(y):
        raise ValueError(f"kendall_tau: sequences of different lengths {len(x)} and {len(y)}")
    n = len(x)
    concordant = discordant = ties_x = ties_y = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            ties_x += dx == 0
            ties_y += dy == 0
            if dx * dy > 0:
                concordant += 1
            elif dx * dy < 0:
                discordant += 1
    n0 = n * (n - 1) // 2
    denom = math.sqrt((n0 - ties_x) * (n0 - ties_y))
    return (concordant - discordant) / denom if denom else float("nan")
