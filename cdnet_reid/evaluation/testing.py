"""Printing and flattening evaluation results."""

import logging
from collections.abc import Mapping

from tabulate import tabulate

logger = logging.getLogger(__name__)


def results_table(results: Mapping) -> str:
    """A pipe table with one row per dataset and one column per metric (inputs are not modified)."""
    metrics = []
    for res in results.values():
        metrics += [k for k in res if k not in metrics]
    rows = [[name] + [res.get(m, float("nan")) for m in metrics] for name, res in results.items()]
    return tabulate(rows, headers=["Dataset"] + metrics, tablefmt="pipe", floatfmt=".2f",
                    numalign="left")


def print_results(results: Mapping) -> None:
    """Log ``{dataset: {metric: value}}`` as a table."""
    if results:
        logger.info("Evaluation results:\n%s", results_table(results))


def flatten_results_dict(results: Mapping) -> dict[str, float]:
    """``{"a": {"b": 1.0}}`` -> ``{"a/b": 1.0}``."""
    out: dict[str, float] = {}
    for k, v in results.items():
        if isinstance(v, Mapping):
            out.update({f"{k}/{kk}": vv for kk, vv in flatten_results_dict(v).items()})
        else:
            out[k] = v
    return out
