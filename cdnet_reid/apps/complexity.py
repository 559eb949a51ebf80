"""Parameters and MACs of the model of a config, at its true test input size.

    cdnet-reid complexity --config-file Market/cdnet.yml
    cdnet-reid complexity --config-file Market/cdnet.yml --max-depth 3 MODEL.HEADS.NUM_CLASSES 751
    cdnet-reid complexity MODEL.WEIGHTS logs/run/model_final.pth     (the model a checkpoint holds)

One MAC is one multiply-add (fvcore counts it as one "flop"; the paper's "FLOPs" are MACs of
convolutions and linear layers). The model runs in eval mode, so a re-ID model is measured
computing its embedding (classifiers not run). NUM_CLASSES 0 is replaced by --num-classes.
"""

from collections.abc import Sequence

import torch
from fvcore.nn import flop_count_table
from tabulate import tabulate

from ..modeling import build_model
from ..utils.complexity import conv_linear_macs, count_parameters, inference_parameters, mac_analysis
from .args import add_config_arguments, load_tool_model, setup_tool_cfg, tool_parser


def main(argv: Sequence[str] | None = None, prog: str | None = None):
    p = tool_parser(prog, __doc__)
    p.add_argument("--num-classes", type=int, default=751,
                   help="classifier size when the config's MODEL.HEADS.NUM_CLASSES is 0 (Market: 751)")
    p.add_argument("--max-depth", type=int, default=2, help="depth of the per-module table")
    add_config_arguments(p)
    args = p.parse_args(argv)

    cfg = setup_tool_cfg(args, freeze=False)
    cfg.MODEL.DEVICE = "cpu"
    if cfg.MODEL.WEIGHTS:  # the checkpoint's model (number of classes included)
        cfg.freeze()
        model, cfg = load_tool_model(cfg, args, device="cpu")
    else:
        if cfg.MODEL.HEADS.NUM_CLASSES == 0:
            cfg.MODEL.HEADS.NUM_CLASSES = args.num_classes
        model = build_model(cfg).eval()
    h, w = cfg.INPUT.SIZE_TEST
    x = torch.rand(1, 3, h, w) * 255

    analysis = mac_analysis(model, x)
    rows = [["total", f"{count_parameters(model):,}"],
            ["backbone", f"{count_parameters(model.backbone):,}"],
            ["head / neck", f"{count_parameters(model.head):,}"],
            ["inference-only (modules run by eval forward)", f"{inference_parameters(model, x):,}"]]
    print(f"{cfg.MODEL.BACKBONE.NAME} + {cfg.MODEL.HEADS.NAME}, {cfg.MODEL.HEADS.NUM_CLASSES} classes, "
          f"input 1x3x{h}x{w}")
    print(tabulate(rows, headers=["parameters", "count"], tablefmt="pipe"))
    print()
    print(tabulate([["conv + linear (the paper's \"FLOPs\")", f"{conv_linear_macs(analysis) / 1e6:.2f}"],
                    ["all counted ops (incl. BN, pooling)", f"{analysis.total() / 1e6:.2f}"]],
                   headers=["MACs (millions; 1 MAC = 1 multiply-add)", "M"], tablefmt="pipe"))
    budget = getattr(getattr(model.backbone, "genotype", None), "cost", None)
    if budget:  # a genotype searched for a budget: its target, predicted and measured cost
        print()
        print(budget_line(budget, model, x, analysis))
    print()
    print(flop_count_table(analysis, max_depth=args.max_depth, show_param_shapes=False))


def budget_line(budget: dict, model, x, analysis) -> str:
    """Target, predicted and measured cost of a genotype searched for a budget (its ``cost``
    record); a latency is measured with torch at batch 1 and this process's threads."""
    from ..search.cost_table import measure_latency_ms

    measured = {"macs": lambda: conv_linear_macs(analysis), "params": lambda: inference_parameters(model, x),
                "latency": lambda: measure_latency_ms(model, x)}[budget["kind"]]()
    of = f" ({budget['fraction']:g} x {budget['reference']}'s)" if budget.get("reference") else ""
    return (f"genotype searched for a budget: {budget['kind']} target {budget['target']:.6g} "
            f"{budget.get('unit', '')}{of}, "
            f"predicted {budget['predicted']:.6g} (table {budget.get('table') or 'of the search network'}), "
            f"measured {measured:.6g} here ({measured / budget['target']:.1%} of the target)")
