"""Pictures: training curves from ``metrics.json``, rank lists and a ranking summary (PNG).

Drawing only: the rank lists and pair distances to draw come from
``cdnet_reid.evaluation.rank_lists`` (this module stays below ``evaluation``).

matplotlib is imported lazily and drawn through its Agg canvas directly (``Figure`` +
``FigureCanvasAgg``; pyplot and the global backend are never touched), so importing this module
is cheap and safe in training processes and headless machines.
"""

import json
import logging
import os
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from .image import to_rgb

logger = logging.getLogger(__name__)

__all__ = ["read_metrics", "plot_training_curves", "plot_rank_list", "plot_rank_summary"]

GREEN, RED, BLUE, GREY = (40, 170, 60), (220, 40, 40), (40, 90, 220), (150, 150, 150)


def _figure(width: float, height: float, dpi: int = 100):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str) -> str:
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    fig.savefig(path, format="png", dpi=fig.dpi)
    return path


# ---------------------------------------------------------------------------------------------
# training curves
# ---------------------------------------------------------------------------------------------
def read_metrics(path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``metrics.json`` (JSON lines, see ``utils.events.JSONWriter``) -> ``{name: (iters, values)}``
    sorted by iteration. Several lines may hold the same iteration (evaluation metrics are
    written after the training scalars of their iteration); a resumed run rewrites iterations it
    had already logged, and the later line wins. Unparsable lines (e.g. a truncated last line
    after a kill) are skipped."""
    series: dict[str, dict[int, float]] = defaultdict(dict)
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
                it = int(row["iteration"])
            except (ValueError, KeyError, TypeError):
                continue
            for k, v in row.items():
                if k != "iteration" and isinstance(v, (int, float)) and not isinstance(v, bool):
                    series[k][it] = float(v)
    out = {}
    for k, d in series.items():
        its = np.array(sorted(d), dtype=np.int64)
        out[k] = (its, np.array([d[i] for i in its], dtype=np.float64))
    return out


def _natural_order(name: str):
    """Sort key that orders the numbers inside names by value: Rank-1, Rank-5, Rank-10, mAP, mINP."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name)]


def curve_panels(names, panels: Mapping[str, str] | None = None) -> dict[str, list[str]]:
    """The scalars of a run grouped into panels of one kind and one unit each: ``losses``,
    ``learning rate``, ``evaluation`` (``<dataset>/<metric>``, in %) and the caller's ``panels``
    (``{title: key prefix}``, taken before the evaluation rule, e.g. a component's own
    ``<name>/*`` scalars). Timings (``time``, ``data_time``, seconds) are left out: the console
    and ``metrics.json`` show them. Empty panels are dropped."""
    timing = {k for k in names if k.rsplit("/", 1)[-1] in ("time", "data_time")}
    losses = sorted((k for k in names if "loss" in k and k not in timing),
                    key=lambda k: (k != "total_loss", k))
    lrs = sorted(k for k in names if k not in timing and (k == "lr" or k.startswith("lr") or k.endswith("/lr")
                                                            or k.endswith("_lr")))
    taken = timing | set(losses) | set(lrs)
    own = {}
    for title, prefix in (panels or {}).items():
        own[title] = sorted(k for k in names if k.startswith(prefix) and k not in taken)
        taken |= set(own[title])
    evals = sorted((k for k in names if "/" in k and k not in taken), key=_natural_order)
    out = {"losses": losses, "learning rate": lrs, "evaluation (%)": evals, **own}
    return {title: keys for title, keys in out.items() if keys}


def plot_training_curves(metrics_path: str, out_path: str, *, title: str | None = None,
                         panels: Mapping[str, str] | None = None) -> str:
    """A PNG over the iterations of a run with one panel per kind of scalar (:func:`curve_panels`
    with the caller's ``panels``), legends below the panels. Returns ``out_path``."""
    series = read_metrics(metrics_path)
    if not series:
        raise ValueError(f"{metrics_path} holds no metrics")
    panels = curve_panels(series, panels) or {"(nothing to draw)": []}
    fig = _figure(4.2 * len(panels), 4.4)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (name, keys) in zip(axes, panels.items()):
        evaluation = name.startswith("evaluation")
        for k in keys:
            its, vals = series[k]
            # evaluations are separate measurements: markers only, no line suggesting a trend between them
            ax.plot(its, vals, label=k, lw=1.6 if k == "total_loss" else 1.0,
                    ls="none" if evaluation else "-", marker="o" if evaluation else None, ms=4)
        values = [series[k][1] for k in keys]
        if name in ("losses", "learning rate") and values and all(v.min() > 0 for v in values):
            lo, hi = min(v.min() for v in values), max(v.max() for v in values)
            if name == "losses" or hi / lo > 20:
                ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        if keys:
            ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.16),
                      ncol=2 if len(keys) > 3 else 1, frameon=False)
    fig.suptitle(title or os.path.dirname(metrics_path) or metrics_path, fontsize=9)
    fig.tight_layout()
    return _save(fig, out_path)


# ---------------------------------------------------------------------------------------------
# rank lists
# ---------------------------------------------------------------------------------------------
def _load_rgb(path: str, size: tuple[int, int]) -> np.ndarray:
    """Image file -> ``size`` (H, W) RGB uint8 array (a grey placeholder if unreadable)."""
    from PIL import Image

    h, w = size
    try:
        with Image.open(path) as img:
            return np.asarray(to_rgb(img).resize((w, h), Image.BILINEAR))
    except (OSError, ValueError):
        return np.full((h, w, 3), 200, dtype=np.uint8)


def _framed(img: np.ndarray, color: tuple[int, int, int], width: int) -> np.ndarray:
    out = np.empty((img.shape[0] + 2 * width, img.shape[1] + 2 * width, 3), dtype=np.uint8)
    out[...] = np.asarray(color, dtype=np.uint8)
    out[width:width + img.shape[0], width:width + img.shape[1]] = img
    return out


def plot_rank_list(query_path: str, query_pid: int, query_camid: int,
                   gallery_paths: Sequence[str], gallery_pids: Sequence[int],
                   gallery_camids: Sequence[int], distances: Sequence[float], out_path: str, *,
                   title: str = "", image_size: tuple[int, int] = (128, 64),
                   show_names: bool = False) -> str:
    """One row: the query (blue frame) then its ranked gallery matches, each with a green
    (same identity) or red (other identity) frame, its rank, distance and camera id. Without
    labels (``query_pid``/``gallery_pids`` None) the frames are grey and only distances shown.
    ``show_names``: each image's file name under it (shortened to 18 characters)."""
    k = len(gallery_paths)
    h, w = image_size
    bw = max(2, w // 16)
    dpi = 100
    panel_w = (w + 2 * bw) / dpi + 0.12  # inches: images drawn about 1:1
    top = 0.62 if title else 0.4  # room for the title and the two-line labels
    bottom = 0.2 if show_names else 0.05
    fig_h = (h + 2 * bw) / dpi + top + bottom
    fig = _figure(panel_w * (k + 1) + 0.1, fig_h, dpi=dpi)
    axes = fig.subplots(1, k + 1, squeeze=False)[0]
    axes[0].imshow(_framed(_load_rgb(query_path, image_size), BLUE, bw))
    labelled = query_pid is not None and gallery_pids is not None
    axes[0].set_title(f"query\nid {query_pid} cam {query_camid}" if labelled else "query\n",
                      fontsize=7, color="#2850dc")
    for j in range(k):
        img = _load_rgb(gallery_paths[j], image_size)
        if not labelled:
            axes[j + 1].imshow(_framed(img, GREY, bw))
            axes[j + 1].set_title(f"#{j + 1}\nd={distances[j]:.3f}", fontsize=6.5, color="#505050")
            continue
        ok = gallery_pids[j] == query_pid
        axes[j + 1].imshow(_framed(img, GREEN if ok else RED, bw))
        axes[j + 1].set_title(f"#{j + 1} d={distances[j]:.3f}\nid {gallery_pids[j]} cam "
                              f"{gallery_camids[j]}", fontsize=6.5,
                              color="#289c3c" if ok else "#dc2828")
    for ax, path in zip(axes, [query_path, *gallery_paths]):
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        if show_names:
            ax.set_xlabel(_short_name(path), fontsize=5.5, color="#303030")
    if title:
        fig.suptitle(title, fontsize=8, y=1 - 0.04 / fig_h)
    fig.subplots_adjust(left=0.05 / fig.get_figwidth(), right=1 - 0.05 / fig.get_figwidth(),
                        bottom=bottom / fig_h, top=1 - top / fig_h, wspace=0.12)
    return _save(fig, out_path)


def _short_name(path: str, limit: int = 18) -> str:
    """The file name of ``path``, its middle elided beyond ``limit`` characters."""
    name = os.path.basename(str(path))
    return name if len(name) <= limit else name[:limit // 2 - 1] + "…" + name[-(limit // 2):]


def plot_rank_summary(cmc: np.ndarray, pos_dists: np.ndarray, neg_dists: np.ndarray,
                      out_path: str, *, title: str = "") -> str:
    """Two panels: the CMC curve, and the distributions of query-gallery distances of matching
    (positive) and non-matching (negative) pairs."""
    fig = _figure(10, 3.6)
    ax_cmc, ax_hist = fig.subplots(1, 2)
    ranks = np.arange(1, len(cmc) + 1)
    ax_cmc.plot(ranks, 100 * np.asarray(cmc), marker="o", ms=2.5)
    ax_cmc.set_xlabel("rank")
    ax_cmc.set_ylabel("matching rate (%)")
    ax_cmc.set_title(f"CMC (Rank-1 {100 * cmc[0]:.1f} %)")
    ax_cmc.set_ylim(min(100 * cmc[0], 100) - 5, 101)
    if len(cmc) > 20:
        ax_cmc.set_xscale("log")
    ax_cmc.grid(alpha=0.3, which="both")
    pos, neg = np.asarray(pos_dists, float), np.asarray(neg_dists, float)
    both = np.concatenate([pos, neg])
    if both.size:
        lo, hi = float(np.min(both)), float(np.max(both))
        bins = np.linspace(lo, hi if hi > lo else lo + 1e-6, 60)
        ax_hist.hist(neg, bins=bins, density=True, alpha=0.55, color="#dc2828",
                     label=f"negative pairs ({neg.size:,})")
        ax_hist.hist(pos, bins=bins, density=True, alpha=0.55, color="#289c3c",
                     label=f"positive pairs ({pos.size:,})")
        ax_hist.legend(fontsize=8)
    ax_hist.set_xlabel("query-gallery distance")
    ax_hist.set_ylabel("density")
    ax_hist.set_title("distance distributions")
    ax_hist.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, out_path)
