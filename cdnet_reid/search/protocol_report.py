"""Tables and the picture of a search-evaluation protocol (``cdnet-reid search-pipeline``).

Input: ``genotypes``, a list of dicts with ``name``, ``group`` (``searched`` / ``paper`` /
``random`` / ``budget`` / ``matched random``), ``layers``, ``params``, ``macs``, ``latency_ms`` (or
None), optionally ``predicted_ms`` (a latency table's prediction), and ``runs``: one dict per
training seed with ``seed``, ``mAP``, ``Rank-1`` (percent). ``budgets``: the pipeline's
per-budget summaries (:func:`budget_table`).

matplotlib is imported lazily and drawn through its Agg canvas (no pyplot), as in ``search.plot``.
"""

import textwrap
from collections.abc import Sequence

from tabulate import tabulate

from ..utils.file_io import atomic_write
from .protocol import GroupStats, group_summary, summary

__all__ = ["GROUPS", "budget_table", "genotype_table", "group_stats", "group_table", "plot_protocol",
           "preference_table"]

#: The groups, in table order, with their colours in the picture.
GROUPS = {"searched": "tab:red", "paper": "tab:blue", "random": "tab:gray", "budget": "tab:orange",
          "matched random": "tab:green"}
METRICS = ("mAP", "Rank-1")


def _sd(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _layers(layers) -> str:
    return " ".join("".join(str(k) for k in e) for e in layers)


def group_stats(genotypes: Sequence[dict], metric: str) -> dict[str, GroupStats]:
    """:class:`GroupStats` of ``metric`` per group present."""
    out = {}
    for group in GROUPS:
        values = [[r[metric] for r in g["runs"]] for g in genotypes if g["group"] == group]
        if values:
            out[group] = group_summary(values)
    return out


def group_table(genotypes: Sequence[dict]) -> str:
    """One row per group: genotypes, runs, mean / sd over runs / sd between genotypes of mAP and Rank-1."""
    stats = {m: group_stats(genotypes, m) for m in METRICS}
    rows = []
    for group, s in stats["mAP"].items():
        r = stats["Rank-1"][group]
        rows.append([group, s.genotypes, s.runs, f"{s.mean:.1f}", _sd(s.sd_runs), _sd(s.sd_genotypes),
                     f"{r.mean:.1f}", _sd(r.sd_runs), _sd(r.sd_genotypes)])
    headers = ["group", "genotypes", "runs", "mAP mean", "sd (runs)", "sd (genotypes)",
               "Rank-1 mean", "sd (runs)", "sd (genotypes)"]
    return tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True)


def _relative(g: dict, paper: dict | None, key: str) -> str:
    if paper is None or g.get(key) is None or paper.get(key) is None:
        return "–"
    return f"{g[key] / paper[key]:.0%}"


def genotype_table(genotypes: Sequence[dict]) -> str:
    """One row per genotype: layers, cost (latency also relative to the paper's genotype, measured
    and, with a latency table, predicted), mAP / Rank-1 mean ± sd and min–max over its training seeds."""
    paper = next((g for g in genotypes if g["group"] == "paper"), None)
    predicted = any(g.get("predicted_ms") is not None for g in genotypes)
    rows = []
    for g in genotypes:
        cells = [g["name"], g["group"], _layers(g["layers"]), f"{g['params']:,}", f"{g['macs'] / 1e6:.1f}",
                 "–" if g.get("latency_ms") is None else f"{g['latency_ms']:.2f}", _relative(g, paper, "latency_ms")]
        if predicted:
            cells.append(_relative(g, paper, "predicted_ms"))
        cells.append(str(len(g["runs"])))
        for m in METRICS:
            values = [r[m] for r in g["runs"]]
            mean, sd = summary(values)
            cells += [f"{mean:.1f}", _sd(sd), f"{min(values):.1f}–{max(values):.1f}"]
        rows.append(cells)
    headers = ["genotype", "group", "layers (k1 k2 r)", "params", "MMACs", "latency (ms)", "latency / paper's",
               *(["predicted / paper's"] if predicted else []), "seeds",
               "mAP mean", "sd", "min–max", "Rank-1 mean", "sd", "min–max"]
    return tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True)


def budget_table(budgets: Sequence[dict]) -> str:
    """One row per budget search: the budget, its genotype's latency as the table predicts it and as
    measured (both relative to the paper's genotype), how far the measured one is from the budget,
    its mean mAP and the mean mAP of the random genotypes of its predicted latency."""
    rows = []
    for b in budgets:
        m = b["measured_vs_paper"]
        matched = [f"{x:.0%}" for x in b["matched_measured_vs_paper"] if x is not None]
        rows.append([b["name"], f"{b['fraction']:.0%}", f"{b['predicted_vs_paper']:.1%}",
                     "–" if m is None else f"{m:.1%}", "–" if m is None else f"{m / b['fraction'] - 1:+.1%}",
                     f"{b['mAP']:.1f}", f"{len(b['matched'])} ({', '.join(matched) or '–'})",
                     "–" if b["matched_mAP"] is None else f"{b['matched_mAP']:.1f}",
                     "–" if b["matched_mAP"] is None else f"{b['mAP'] - b['matched_mAP']:+.1f}"])
    headers = ["budget search", "budget (x paper)", "predicted", "measured", "measured vs budget", "mAP mean",
               "matched random (measured)", "their mAP mean", "difference"]
    return tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True)


def preference_table(supernets: Sequence[dict]) -> str:
    """Per supernet and genotype: the α score, the sub-network loss; last rows: Kendall τ."""
    rows = []
    for s in supernets:
        for name, p in s["scores"].items():
            rows.append([s["name"], name, f"{p['alpha_score']:.3f}", f"{p['val_loss']:.4f}", f"{p['mAP']:.1f}"])
        rows.append([s["name"], "Kendall τ with mAP", f"{s['tau_alpha']:+.3f}", f"{s['tau_loss']:+.3f}", ""])
    headers = ["supernet", "genotype", "Σ log softmax(α)", "sub-network loss (arch split)", "trained mAP mean"]
    return tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True)


def _point_label(g: dict) -> str:
    """A genotype's label in the picture: its name, but a matched random genotype (many, close to
    their budget network) by its draw seed only, ``s<N>``; the tables give the full names."""
    if g["group"] == "matched random" and "_seed" in g["name"]:
        return "s" + g["name"].rsplit("_seed", 1)[1]
    return g["name"]


def _panel(ax, genotypes: Sequence[dict], key: str, scale: float, xlabel: str, budgets: Sequence[dict] = ()) -> None:
    for group, colour in GROUPS.items():
        members = [g for g in genotypes if g["group"] == group and g.get(key) is not None]
        if not members:
            continue
        xs = [g[key] / scale for g in members]
        maps = [[r["mAP"] for r in g["runs"]] for g in members]
        means = [sum(m) / len(m) for m in maps]
        err = [[mu - min(m) for mu, m in zip(means, maps)], [max(m) - mu for mu, m in zip(means, maps)]]
        ax.errorbar(xs, means, yerr=err, fmt="o", color=colour, ecolor=colour, capsize=3, label=group)
        for x, y, g in zip(xs, means, members):
            ax.annotate(_point_label(g), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7, color=colour)
    paper = next((g for g in genotypes if g["group"] == "paper"), None)
    if key == "latency_ms" and paper is not None:  # each budget: that fraction of the paper's measured latency
        for b in budgets:
            x = b["fraction"] * paper[key] / scale
            ax.axvline(x, color=GROUPS["budget"], linestyle=":", linewidth=1)
            ax.annotate(f"budget {b['fraction']:.0%}", (x, 0), xycoords=("data", "axes fraction"), rotation=90,
                        xytext=(2, 4), textcoords="offset points", fontsize=7, color=GROUPS["budget"])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("trained mAP (%), mean; bars: min–max over seeds")
    if any(g["group"] == "matched random" for g in genotypes):
        ax.text(0.99, 0.01, "matched random: labelled by draw seed", transform=ax.transAxes, ha="right",
                va="bottom", fontsize=7, color=GROUPS["matched random"])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def plot_protocol(genotypes: Sequence[dict], out_path: str, *, title: str, budgets: Sequence[dict] = ()) -> str:
    """Trained mAP of every genotype (mean over its training seeds as the point, min–max as the bar)
    against its MACs and, when measured, its latency (with a dotted line at every budget of
    ``budgets``: its fraction of the paper genotype's measured latency); the groups coloured.
    Returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [("macs", 1e6, "conv + linear MACs per image (millions)")]
    if all(g.get("latency_ms") is not None for g in genotypes):
        panels.append(("latency_ms", 1.0, "measured latency (ms per image, batch 1, torch CPU)"))
    fig = Figure(figsize=(6.4 * len(panels), 4.8), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    for i, (key, scale, xlabel) in enumerate(panels):
        _panel(fig.add_subplot(1, len(panels), i + 1), genotypes, key, scale, xlabel, budgets)
    fig.suptitle("\n".join(textwrap.wrap(title, 70 * len(panels))), fontsize=9)
    with atomic_write(out_path, "wb") as f:
        fig.savefig(f, format="png", dpi=fig.dpi)
    return out_path
