"""Random genotypes of a given cost: the baseline a search for a budget is compared with.

A searched network that fits a budget should be compared with random networks that fit the same
budget, not with random networks of any cost (those are mostly dearer and may simply be more
accurate for it). :func:`cost_matched_genotypes` draws genotypes uniformly from the space (the
rule of :func:`~cdnet_reid.modeling.space.genotype.random_genotype`, seeds ``start_seed``,
``start_seed + 1``, ...) and keeps the first ``count`` whose cost, as the cost table predicts it,
is within ``tolerance`` (relative) of ``cost``: uniform samples of the genotypes of that cost.
"""

from collections.abc import Collection
from typing import Any

from ..config import ConfigError
from ..modeling.space.genotype import Genotype, random_genotype
from .cost_table import cost_matrix

__all__ = ["cost_matched_genotypes"]


def cost_matched_genotypes(table: dict[str, Any], kind: str, cost: float, count: int, *, tolerance: float = 0.05,
                           exclude: Collection[tuple] = (), start_seed: int = 1,
                           max_draws: int = 1_000_000) -> list[Genotype]:
    """``count`` uniform random genotypes of ``table``'s space whose predicted ``kind`` cost is within
    ``tolerance`` of ``cost`` (``|c / cost - 1| <= tolerance``), skipping genotypes whose layers are
    in ``exclude`` (tuples of layer tuples) and repeats. Each genotype's ``meta`` records its seed,
    its predicted cost and the match. :class:`ConfigError` when ``max_draws`` draws find fewer."""
    if count < 0 or not 0 < tolerance < 1 or not cost > 0:
        raise ValueError(f"count must be >= 0, tolerance in (0, 1) and cost > 0; got {count}, {tolerance}, {cost}")
    fixed, costs = cost_matrix(table, kind)
    num_layers = len(costs)
    seen = {tuple(map(tuple, layers)) for layers in exclude}
    picks: list[Genotype] = []
    seed = start_seed
    while len(picks) < count:
        if seed - start_seed >= max_draws:
            raise ConfigError(f"only {len(picks)} of {count} random genotypes within {tolerance:.0%} of {kind} "
                              f"{cost:g} in {max_draws} draws: widen the tolerance or choose another budget")
        g = random_genotype(table["space"], seed, num_layers)
        c = fixed + sum(costs[l][j] for l, j in enumerate(g.ops))
        key = tuple(map(tuple, g.layers))
        if abs(c / cost - 1.0) <= tolerance and key not in seen:
            seen.add(key)
            g.meta.update({"predicted": c, "kind": kind, "matched_cost": cost, "tolerance": tolerance,
                           "rule": g.meta["rule"] + f"; kept the first draws (seeds from {start_seed}) whose "
                                                    f"predicted {kind} is within {tolerance:.0%} of {cost:g}"})
            picks.append(g)
        seed += 1
    return picks
