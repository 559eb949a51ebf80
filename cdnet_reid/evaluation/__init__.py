"""Evaluation: re-ID ranking metrics (CMC, mAP, mINP) and evaluators."""

from .cls_evaluator import ClassificationEvaluator
from .evaluator import DatasetEvaluator, inference_context, inference_on_dataset
from .rank import evaluate_rank, evaluate_rank_features
from .reid_evaluator import ReidEvaluator
from .testing import flatten_results_dict, print_results, results_table

__all__ = ["ClassificationEvaluator", "DatasetEvaluator", "ReidEvaluator", "evaluate_rank", "evaluate_rank_features",
           "flatten_results_dict", "inference_context", "inference_on_dataset", "print_results",
           "results_table"]
