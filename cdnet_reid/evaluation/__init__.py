"""Evaluation: re-ID ranking metrics (CMC, mAP, mINP) and evaluators."""

from .build import EVALUATOR_REGISTRY, build_evaluator
from .cls_evaluator import ClassificationEvaluator
from .evaluator import DatasetEvaluator, embed, evaluate_datasets, inference_context, inference_on_dataset
from .rank import (
                   evaluate_rank,
                   evaluate_rank_chunks,
                   evaluate_rank_features,
                   junk_mask,
                   pairwise_distance_chunks,
                   pairwise_distances,
)
from .rank_lists import pair_distances, ranked_gallery
from .reid_evaluator import ReidEvaluator
from .testing import flatten_results_dict, print_results, results_table

__all__ = ["ClassificationEvaluator", "DatasetEvaluator", "EVALUATOR_REGISTRY", "ReidEvaluator", "evaluate_datasets",
           "build_evaluator", "embed", "evaluate_rank", "evaluate_rank_chunks",
           "evaluate_rank_features", "flatten_results_dict", "inference_context",
           "inference_on_dataset", "junk_mask", "pair_distances", "pairwise_distance_chunks",
           "pairwise_distances", "print_results", "ranked_gallery", "results_table"]
