"""Rank-list pictures and a ranking summary of a trained model on its configured test sets.

    cdnet-reid visualize --output-dir vis/ MODEL.WEIGHTS logs/run/model_final.pth   # 8 worst queries by AP
    cdnet-reid visualize ... --query-indices 0,5,17 --topk 8       # chosen query indices
    cdnet-reid visualize ... TEST.RERANK.ENABLED True              # after re-ranking (or AQE)

The model and its input come from the checkpoint; without ``--config-file`` the test sets are
``DATASETS.TESTS`` as set on the command line (e.g. ``DATASETS.TESTS "('Market1501',)"``).

For every test set (``DATASETS.TESTS``, or ``--dataset``) it runs the evaluation exactly as
``cdnet-reid eval`` (same loader, evaluator, flip/AQE/re-ranking options; the metrics
table is printed), then writes to ``<output-dir>/<dataset>/``:

* ``rank_q<index>.png`` for each chosen query: the query (blue frame) and its top-k gallery
  matches in rank order, green frame = same identity, red = another identity, with the
  distance and the camera id. Junk gallery items (same identity *and* camera as the query) are
  left out, as in the metrics; the title gives the query's AP and the rank of its first match;
* ``summary.png``: the CMC curve and the distributions of the query-gallery distances of
  matching and non-matching pairs.

Query indices count the dataset's query list (0-based). Projects' backbones: add
``--import-module projects/<Name>/<package>``.
"""

import argparse
import os
from collections.abc import Sequence

import numpy as np

from ..config import ConfigError
from ..engine import DefaultTrainer
from ..evaluation import (
    ReidEvaluator,
    evaluate_rank,
    inference_on_dataset,
    junk_mask,
    pair_distances,
    print_results,
    ranked_gallery,
)
from ..utils.visualizer import plot_rank_list, plot_rank_summary
from .args import add_config_arguments, add_flag, add_output_dir, add_topk, model_options, setup_tool_cfg, tool_parser


def visualize_dataset(cfg, model, name: str, out_dir: str, *, queries=None, worst: int = 8,
                      topk: int = 10, trainer_cls=DefaultTrainer):
    """Evaluate ``model`` on ``name`` and write the pictures; returns the written paths."""
    loader, meta = trainer_cls.build_test_loader(cfg, name)
    evaluator = trainer_cls.build_evaluator(cfg, name, meta)
    if not isinstance(evaluator, ReidEvaluator):
        print(f"{name}: not a re-ID test set, skipped")
        return []
    bad = [q for q in queries or [] if not 0 <= q < evaluator.num_query]
    if bad:  # checked before the (long) inference
        raise ConfigError(f"{name}: query indices {bad} out of range (0..{evaluator.num_query - 1})")
    results = inference_on_dataset(model, loader, evaluator, flip_test=cfg.TEST.FLIP.ENABLED)
    print_results({name: results})
    data = evaluator.query_gallery(with_paths=True)
    dist = evaluator.distance_matrix(data).numpy()
    qp, gp, qc, gc = data["q_pids"], data["g_pids"], data["q_camids"], data["g_camids"]
    cmc, all_ap, _ = evaluate_rank(dist, qp, gp, qc, gc, max_rank=cfg.TEST.MAX_RANK)
    relevant = (qp[:, None] == gp[None, :]) & ~junk_mask(qp[:, None], qc[:, None], gp, gc)
    valid = relevant.any(1)
    ap = np.full(len(qp), np.nan)
    ap[valid] = all_ap

    if queries:
        chosen = list(queries)
    else:
        order = np.argsort(np.where(valid, ap, np.inf), kind="stable")
        chosen = [int(i) for i in order[:min(worst, int(valid.sum()))]]

    folder = os.path.join(out_dir, name)
    written = []
    how = " + ".join(x for x, on in (("AQE", cfg.TEST.AQE.ENABLED),
                                     ("re-ranking", cfg.TEST.RERANK.ENABLED)) if on)
    for i in chosen:
        ranked = ranked_gallery(dist[i], qp[i], qc[i], gp, gc)
        hits = np.flatnonzero(gp[ranked] == qp[i])
        first = f"first match at rank {hits[0] + 1}" if len(hits) else "no valid match"
        top = ranked[:topk]
        title = (f"{name} query {i}: AP {100 * ap[i]:.1f} %, {first}" if valid[i]
                 else f"{name} query {i}: no valid match in the gallery")
        written.append(plot_rank_list(
            data["q_paths"][i], int(qp[i]), int(qc[i]), [data["g_paths"][j] for j in top],
            gp[top].tolist(), gc[top].tolist(), dist[i, top].tolist(),
            os.path.join(folder, f"rank_q{i:05d}.png"), title=title + (f" ({how})" if how else "")))
    pos, neg = pair_distances(dist, qp, gp, qc, gc)
    title = (f"{name}: Rank-1 {results.get('Rank-1', 100 * cmc[0]):.1f} %, mAP "
             f"{results.get('mAP', 100 * np.mean(all_ap)):.1f} %" + (f" ({how})" if how else ""))
    written.append(plot_rank_summary(cmc, pos, neg, os.path.join(folder, "summary.png"),
                                     title=title))
    return written


def _indices(text: str):
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def main(argv: Sequence[str] | None = None, prog: str | None = None):
    parser = tool_parser(prog, __doc__)
    add_output_dir(parser, "folder of the PNG files")
    parser.add_argument("--dataset", action="append", default=[],
                        help="test set(s) to draw (default: DATASETS.TESTS)")
    add_flag(parser, "--query-indices", deprecated=("--queries",), type=_indices, default=None,
             metavar="I,J,...", help="comma-separated query indices to draw (default: the --worst queries by AP)")
    parser.add_argument("--worst", type=int, default=8, help="number of worst queries (default 8)")
    add_topk(parser, help="gallery matches per row")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    cfg = setup_tool_cfg(args)
    opts = model_options(args)
    model, cfg = DefaultTrainer.load_model_for_eval(cfg, config_keys=opts["config_keys"],
                                                    explicit=opts["explicit"])
    written = []
    for name in args.dataset or cfg.DATASETS.TESTS:
        written += visualize_dataset(cfg, model, name, args.output_dir, queries=args.query_indices,
                                     worst=args.worst, topk=args.topk)
    print("wrote:\n" + "\n".join(written))

