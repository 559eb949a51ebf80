"""The picture of a search: softmax(α) of every layer over the epochs, and the entropy curve.

Read from a search's ``OUTPUT_DIR``: the genotype files the :class:`~.hooks.GenotypeHook` writes
(``genotype_epochXXXX.json``, which hold the logits and the per-layer probabilities of their
epoch) and, when present, ``metrics.json`` (``alpha_entropy/*``, published after every epoch, so
the entropy curve is complete even when genotype files are written only every few epochs).

Epoch 0 is the initialisation: every logit starts at the same value (``SEARCH.ALPHA_INIT``), so
softmax(α) is uniform and every layer's entropy is ln N (N candidates).

matplotlib is imported lazily and drawn through its Agg canvas (no pyplot, no global backend).
"""

import glob
import json
import math
import os
import re
from dataclasses import dataclass

import numpy as np

from ..modeling.space.genotype import CANDIDATES, Genotype, load_genotype
from ..utils.file_io import atomic_write

__all__ = ["SearchHistory", "read_search_history", "entropy", "plot_search", "PICTURE"]

#: File name of the picture in the search's OUTPUT_DIR.
PICTURE = "search_alphas.png"

_EPOCH_FILE = re.compile(r"genotype_epoch(\d+)\.json$")


@dataclass
class SearchHistory:
    """softmax(α) of a search over its epochs.

    ``epochs`` (E,) are 1-based epochs with a genotype file, ``probs`` (E, L, N) their
    probabilities, ``final`` the genotype of the last file (``genotype_final.json`` when it
    exists: the result of the search), ``entropy_epochs`` / ``entropy`` (E', L) the per-layer
    entropy after every epoch (from ``metrics.json`` when it has it, else from ``probs``)."""

    space: str
    epochs: np.ndarray
    probs: np.ndarray
    final: Genotype
    entropy_epochs: np.ndarray
    entropy: np.ndarray

    @property
    def num_candidates(self) -> int:
        return self.probs.shape[2]

    @property
    def start_entropy(self) -> float:
        """Mean per-layer entropy at initialisation (uniform softmax): ln N."""
        return math.log(self.num_candidates)

    @property
    def mean_entropy(self) -> np.ndarray:
        return self.entropy.mean(axis=1)


def entropy(probs: np.ndarray) -> np.ndarray:
    """Entropy (nats) along the last axis of probability rows."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)
    return -(np.asarray(probs, dtype=np.float64) * np.log(p)).sum(axis=-1)


def _probabilities(geno: Genotype) -> np.ndarray:
    probs = geno.meta.get("probabilities")
    if probs is not None:
        return np.asarray(probs, dtype=np.float64)
    if geno.alphas is None:
        raise ValueError("the genotype file holds neither probabilities nor alphas")
    a = np.asarray(geno.alphas, dtype=np.float64)
    e = np.exp(a - a.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _entropy_from_metrics(path: str, num_layers: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``(epochs, entropy (E, L))`` from ``metrics.json``: the hook publishes
    ``alpha_entropy/layer{i}`` once per epoch, so the k-th logged iteration is epoch k (a resumed
    run rewrites iterations; the later line wins). None when the file has no complete record."""
    rows: dict[int, dict[int, float]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
                it = int(row["iteration"])
            except (ValueError, KeyError, TypeError):
                continue
            vals = {int(k[len("alpha_entropy/layer"):]): float(v) for k, v in row.items()
                    if k.startswith("alpha_entropy/layer")}
            if vals:
                rows.setdefault(it, {}).update(vals)
    its = sorted(it for it, v in rows.items() if len(v) == num_layers)
    if not its:
        return None
    return (np.arange(1, len(its) + 1),
            np.array([[rows[it][layer] for layer in range(num_layers)] for it in its]))


def read_search_history(output_dir: str) -> SearchHistory:
    """The :class:`SearchHistory` of the search that wrote ``output_dir``."""
    files = {}
    for path in glob.glob(os.path.join(output_dir, "genotype_epoch*.json")):
        m = _EPOCH_FILE.search(os.path.basename(path))
        if m:
            files[int(m.group(1))] = path
    if not files:
        raise FileNotFoundError(f"no genotype_epochXXXX.json files in {output_dir}: not the "
                                "OUTPUT_DIR of a search (TRAINER.NAME SearchTrainer)?")
    epochs = sorted(files)
    genos = [load_genotype(files[e]) for e in epochs]
    spaces = {g.space for g in genos}
    if len(spaces) != 1:
        raise ValueError(f"{output_dir}: genotype files of several spaces {sorted(spaces)}")
    space = spaces.pop()
    probs = np.stack([_probabilities(g) for g in genos])
    final_path = os.path.join(output_dir, "genotype_final.json")
    final = load_genotype(final_path) if os.path.isfile(final_path) else genos[-1]
    metrics = os.path.join(output_dir, "metrics.json")
    from_metrics = _entropy_from_metrics(metrics, probs.shape[1]) if os.path.isfile(metrics) else None
    if from_metrics is not None and len(from_metrics[0]) >= epochs[-1]:
        ent_epochs, ent = from_metrics
    else:
        ent_epochs, ent = np.asarray(epochs), entropy(probs)
    return SearchHistory(space, np.asarray(epochs), probs, final, ent_epochs, ent)


def _label(entry) -> str:
    return "[" + ", ".join(str(k) for k in entry) + "]"


def plot_search(output_dir: str, out_path: str | None = None, *, title: str | None = None) -> str:
    """Draw the search of ``output_dir`` into ``out_path`` (default ``output_dir/search_alphas.png``):
    a heatmap of softmax(α) per layer (candidates ``[k1, k2(, r)]`` × epochs, epoch 0 = the uniform
    initialisation) with the chosen candidate of the final genotype framed and its label in red,
    and the mean (and per-layer) entropy over the epochs. Returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import MaxNLocator

    h = read_search_history(output_dir)
    out_path = out_path or os.path.join(output_dir, PICTURE)
    table = CANDIDATES[h.space]
    num_layers, n = h.probs.shape[1], h.probs.shape[2]
    cols = min(3, num_layers)
    rows = math.ceil(num_layers / cols)
    fig = Figure(figsize=(4.6 * cols, 3.3 * rows + 3.4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(rows + 1, cols, height_ratios=[3.3] * rows + [2.6])
    epochs = np.concatenate([[0], h.epochs])
    chosen = h.final.ops
    image = None
    for layer in range(num_layers):
        ax = fig.add_subplot(grid[layer // cols, layer % cols])
        data = np.concatenate([np.full((1, n), 1.0 / n), h.probs[:, layer, :]]).T  # N × (E + 1)
        image = ax.imshow(data, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_yticks(range(n))
        ax.set_yticklabels([_label(e) for e in table], fontsize=7)
        for j, tick in enumerate(ax.get_yticklabels()):
            if j == chosen[layer]:
                tick.set_color("red")
                tick.set_fontweight("bold")
        step = max(1, math.ceil(len(epochs) / 10))
        ax.set_xticks(range(0, len(epochs), step))
        ax.set_xticklabels([str(e) for e in epochs[::step]], fontsize=7)
        ax.set_xlabel("epoch", fontsize=8)
        ax.add_patch(Rectangle((len(epochs) - 1.5, chosen[layer] - 0.5), 1, 1, fill=False,
                               edgecolor="red", linewidth=2.0))
        p_final = h.probs[-1, layer, chosen[layer]]
        ax.set_title(f"layer {layer}: {_label(table[chosen[layer]])}  p={p_final:.2f}  "
                     f"H={h.entropy[-1, layer]:.2f}", fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=list(fig.axes), shrink=0.8, pad=0.01, label="softmax(α)")
    ax = fig.add_subplot(grid[rows, :])
    ent_x = np.concatenate([[0], h.entropy_epochs])
    for layer in range(num_layers):
        ax.plot(ent_x, np.concatenate([[h.start_entropy], h.entropy[:, layer]]), lw=0.8, alpha=0.6,
                label=f"layer {layer}")
    mean = np.concatenate([[h.start_entropy], h.mean_entropy])
    ax.plot(ent_x, mean, color="black", lw=2.2, marker="o", ms=3, label="mean")
    ax.axhline(h.start_entropy, color="grey", ls=":", lw=1)
    ax.axhline(h.start_entropy / 2, color="grey", ls="--", lw=1, label="half of ln N")
    ax.set_xlim(0, ent_x[-1])
    ax.set_ylim(0, h.start_entropy * 1.05)
    ax.set_xlabel("epoch")
    ax.set_ylabel("entropy of softmax(α) (nats)")
    ax.set_title(f"mean entropy ln {n} = {h.start_entropy:.3f} → epoch 1: {h.mean_entropy[0]:.3f} → "
                 f"epoch {int(h.entropy_epochs[-1])}: {h.mean_entropy[-1]:.3f}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=7, ncol=num_layers + 2, loc="lower left", frameon=False)
    geno = " ".join(_label(e) for e in h.final.layers)
    fig.suptitle(title or f"{output_dir}: {h.space} search, chosen genotype {geno}", fontsize=10)
    with atomic_write(out_path, "wb") as f:
        fig.savefig(f, format="png", dpi=fig.dpi)
    return out_path
