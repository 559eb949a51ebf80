#!/usr/bin/env python
"""Rank-list pictures and a ranking summary of a trained model on its configured test sets.

    python tools/visualize_ranks.py --config-file logs/run/config.yaml --output-dir vis/ \\
        MODEL.WEIGHTS logs/run/model_final.pth                      # the 8 worst queries by AP
    python tools/visualize_ranks.py ... --queries 0,5,17 --topk 8   # chosen query indices
    python tools/visualize_ranks.py ... TEST.RERANK.ENABLED True    # after re-ranking (or AQE)

For every test set (``DATASETS.TESTS``, or ``--dataset``) it runs the evaluation exactly as
``train_net.py --eval-only`` (same loader, evaluator, flip/AQE/re-ranking options; the metrics
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
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

import numpy as np  # noqa: E402

import cdnet_reid.search  # noqa: E402,F401  (the SEARCH keys: a run's config.yaml loads)
from cdnet_reid.engine import DefaultTrainer  # noqa: E402
from cdnet_reid.engine.defaults import add_config_arguments, setup_tool_cfg  # noqa: E402
from cdnet_reid.evaluation import (ReidEvaluator, evaluate_rank, inference_on_dataset,  # noqa: E402
                                  junk_mask, pair_distances, print_results, ranked_gallery)
from cdnet_reid.utils.visualizer import plot_rank_list, plot_rank_summary  # noqa: E402


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
        raise SystemExit(f"{name}: query indices {bad} out of range (0..{evaluator.num_query - 1})")
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", required=True, help="folder of the PNG files")
    parser.add_argument("--dataset", action="append", default=[],
                        help="test set(s) to draw (default: DATASETS.TESTS)")
    parser.add_argument("--queries", type=_indices, default=None, metavar="I,J,...",
                        help="comma-separated query indices to draw (default: the --worst "
                             "queries by AP)")
    parser.add_argument("--worst", type=int, default=8, help="number of worst queries (default 8)")
    parser.add_argument("--topk", type=int, default=10, help="gallery matches per row (default 10)")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    cfg = setup_tool_cfg(args)
    model = DefaultTrainer.build_model_for_eval(cfg)
    written = []
    for name in args.dataset or cfg.DATASETS.TESTS:
        written += visualize_dataset(cfg, model, name, args.output_dir, queries=args.queries,
                                     worst=args.worst, topk=args.topk)
    print("wrote:\n" + "\n".join(written))


if __name__ == "__main__":
    main()
