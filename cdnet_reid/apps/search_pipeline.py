"""Search, then train the searched genotype, the paper's and random ones with one recipe; one table.

    cdnet-reid search-pipeline                                   # -> logs/synthetic/pipeline/
    cdnet-reid search-pipeline --seed 1 --output-dir logs/synthetic/pipeline_seed1
    cdnet-reid search-pipeline --search-genotype logs/synthetic/search_cdnet/genotype_final.json
    cdnet-reid search-pipeline --resume                          # continue / reuse finished steps

Steps, each a ``cdnet-reid train`` subprocess with its own folder under ``--output-dir``:

1. ``search/``: the search of ``--search-config`` (default ``Synthetic/search_cdnet.yml``,
   the top-k search over the CDNet space on the embedded SyntheticReID data) with ``SEED --seed``;
   its ``genotype_final.json`` is the searched genotype (``--search-genotype`` skips the search).
2. ``genotypes/random_seed{N}.json``: genotypes drawn uniformly from the same space
   (``cdnet-reid random-genotype --seed N``, ``--random-seeds``, default 1 and 2).
3. ``train_<name>/``: every genotype -- searched, the paper's (``cdnet_top2``, or ``cnet_top2`` for a
   CNet search), random -- trained from scratch with one recipe: ``--train-config`` (default
   ``Synthetic/cdnet.yml``: full width, 128x64, the paper's SGD recipe) shortened to
   ``--epochs`` (default 10) with the LR step at ``--milestone`` (default epoch 8), evaluated once at
   the end, with the same ``SEED --seed`` (same initialisation stream, same data order).

Then it prints one table (genotype, parameters, MACs, mAP, Rank-1) and writes it to
``--output-dir/results.md`` and ``results.json``. The metrics are those of the final epoch on the
test split (no selection on the test set, no best-of); ``seconds`` in results.json are the wall
times of the steps in this invocation (a step read back by ``--resume`` takes seconds). Everything
is deterministic in ``--seed``
(``DETERMINISTIC True``), so a rerun prints the same table.

``--resume`` passes ``--resume`` to every step: finished steps are read back, interrupted ones
continue. ``--overwrite`` starts every step afresh (train_net moves the earlier files aside).
``--search-opts`` / ``--train-opts`` add ``KEY VALUE`` overrides to the search / the trainings.
On a loaded machine, ``OMP_NUM_THREADS=1`` often runs these small networks faster than 2 threads.
"""

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Sequence

from tabulate import tabulate

from ..config import ConfigError
from ..config.packaged import resolve_config_file
from .args import add_output_dir, tool_parser

#: A training step: ``cdnet-reid train`` in its own process (works from a clone or a wheel).
TRAIN = [sys.executable, "-m", "cdnet_reid.cli", "train"]


def _child_env() -> dict:
    """The environment of a step: this package importable whether installed or run from a clone."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}


def run_step(name: str, cmd, log_path: str) -> float:
    """Run ``cmd`` with its output into ``log_path``; stop the pipeline if it fails."""
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {' '.join(cmd)}", flush=True)
    print(f"    (output: {log_path})", flush=True)
    t0 = time.perf_counter()
    with open(log_path, "a", encoding="utf-8") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=_child_env())
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            tail = "".join(f.readlines()[-20:])
        raise RuntimeError(f"{name} failed (exit status {proc.returncode}); last lines of {log_path}:\n{tail}")
    print(f"    done in {elapsed:.0f} s", flush=True)
    return elapsed


def final_metrics(output_dir: str, dataset: str) -> dict:
    """The last ``<dataset>/<metric>`` values in ``output_dir/metrics.json`` (the final evaluation)."""
    from ..utils.visualizer import read_metrics

    series = read_metrics(os.path.join(output_dir, "metrics.json"))
    out = {}
    for metric in ("mAP", "Rank-1", "Rank-5", "mINP"):
        key = f"{dataset}/{metric}"
        if key not in series:
            raise RuntimeError(f"{output_dir}/metrics.json has no {key}: did the run evaluate?")
        out[metric] = float(series[key][1][-1])
    return out


def complexity(output_dir: str) -> dict:
    """Parameters (total, backbone, used at inference) and conv + linear MACs at the test size of
    the model that ``output_dir/model_final.pth`` holds (rebuilt from its stored genotype)."""
    import torch

    from ..config import get_cfg
    from ..modeling import load_model
    from ..utils.complexity import conv_linear_macs, count_parameters, inference_parameters, mac_analysis

    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(output_dir, "config.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = os.path.join(output_dir, "model_final.pth")
    cfg.freeze()
    model = load_model(cfg)[0]
    h, w = cfg.INPUT.SIZE_TEST
    x = torch.rand(1, 3, h, w) * 255
    return {"params": count_parameters(model), "backbone_params": count_parameters(model.backbone),
            "inference_params": inference_parameters(model, x),
            "macs": conv_linear_macs(mac_analysis(model, x)),
            "layers": [list(e) for e in model.backbone.genotype.layers]}


def main(argv: Sequence[str] | None = None, prog: str | None = None):
    parser = tool_parser(prog, __doc__)
    parser.add_argument("--search-config", default="Synthetic/search_cdnet.yml",
                        help="a config path or a shipped config name (default Synthetic/search_cdnet.yml)")
    parser.add_argument("--train-config", default="Synthetic/cdnet.yml",
                        help="a config path or a shipped config name (default Synthetic/cdnet.yml)")
    add_output_dir(parser, "folder of every step (default logs/synthetic/pipeline)", required=False,
                   default="logs/synthetic/pipeline")
    parser.add_argument("--seed", type=int, default=0, help="SEED of the search and of every training")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs of every genotype")
    parser.add_argument("--milestone", type=int, default=8,
                        help="1-based epoch of the trainings' LR step (LR_LIST[0] -> LR_LIST[1]); 0: no step")
    parser.add_argument("--random-seeds", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--paper", default="", help="the paper's genotype (default: cdnet_top2 / cnet_top2)")
    parser.add_argument("--search-genotype", default="", help="use this genotype file instead of searching")
    parser.add_argument("--search-opts", nargs="*", default=[], metavar="KEY VALUE")
    parser.add_argument("--train-opts", nargs="*", default=[], metavar="KEY VALUE")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue every step (finished ones are read back)")
    mode.add_argument("--overwrite", action="store_true", help="start every step afresh")
    args = parser.parse_args(argv)
    if len(args.search_opts) % 2 or len(args.train_opts) % 2:
        parser.error("--search-opts / --train-opts take KEY VALUE pairs")
    if args.milestone and not 2 <= args.milestone <= args.epochs:
        parser.error(f"--milestone must be 0 (no LR step) or an epoch in [2, --epochs={args.epochs}]")

    from ..config import get_cfg
    from ..modeling.space.genotype import load_genotype, save_genotype
    from .random_genotype import random_genotype

    args.search_config = resolve_config_file(args.search_config)
    args.train_config = resolve_config_file(args.train_config)
    for flag_name, path in (("--search-config", args.search_config), ("--train-config", args.train_config)):
        if not os.path.isfile(path):  # before any step starts
            raise ConfigError(f"{flag_name} {path}: config file not found "
                              "(`cdnet-reid configs` lists the shipped ones)")
    if args.search_genotype and not os.path.isfile(args.search_genotype):
        raise ConfigError(f"--search-genotype {args.search_genotype}: no such file")

    out = os.path.abspath(args.output_dir)
    os.makedirs(os.path.join(out, "genotypes"), exist_ok=True)
    flag = ["--resume"] if args.resume else ["--overwrite"] if args.overwrite else []
    seconds = {}

    # 1. the search
    if args.search_genotype:
        searched = os.path.abspath(args.search_genotype)
        print(f"searched genotype: {searched} (no search run)")
    else:
        search_dir = os.path.join(out, "search")
        seconds["search"] = run_step("search", [*TRAIN, "--config-file", args.search_config, *flag,
                                                "OUTPUT_DIR", search_dir, "SEED", str(args.seed), *args.search_opts],
                                     os.path.join(out, "search.log"))
        searched = os.path.join(search_dir, "genotype_final.json")
    geno = load_genotype(searched)
    space = geno.space
    print(f"searched ({space}): {[list(e) for e in geno.layers]}")

    # 2. the genotypes to train
    genotypes = [("searched", searched), ("paper", args.paper or f"{space}_top2")]
    for s in args.random_seeds:
        path = os.path.join(out, "genotypes", f"random_seed{s}.json")
        save_genotype(random_genotype(space, s, len(geno.layers)), path)
        genotypes.append((f"random_seed{s}", path))

    # 3. one recipe for all
    train_cfg = get_cfg()
    train_cfg.merge_from_file(args.train_config)
    dataset = train_cfg.DATASETS.TESTS[0]
    # the LR: LR_LIST[0] until --milestone, then LR_LIST[1] (or BASE_LR x GAMMA without LR_LIST)
    lrs = list(train_cfg.SOLVER.LR_LIST)
    if args.milestone and len(lrs) == 1:
        raise ConfigError(f"--milestone needs two SOLVER.LR_LIST values in {args.train_config}, got {lrs}")
    schedule = ["SOLVER.MILESTONES", f"[{args.milestone}]" if args.milestone else "[]"]
    if lrs:
        schedule += ["SOLVER.LR_LIST", str(lrs[:2] if args.milestone else lrs[:1]).replace(" ", "")]
    recipe = ["SOLVER.MAX_EPOCH", str(args.epochs), *schedule,
              "SOLVER.CHECKPOINT_PERIOD", str(args.epochs), "TEST.EVAL_PERIOD", "0", "TEST.EVAL_AT_START", "False",
              "SEED", str(args.seed), "DETERMINISTIC", "True"]
    if space == "cnet":
        recipe += ["MODEL.BACKBONE.NAME", "CNet"]
    rows, results = [], []
    for name, genotype in genotypes:
        run_dir = os.path.join(out, f"train_{name}")
        seconds[name] = run_step(f"train {name}", [*TRAIN, "--config-file", args.train_config, *flag,
                                                   "MODEL.BACKBONE.GENOTYPE", genotype, "OUTPUT_DIR", run_dir,
                                                   *recipe, *args.train_opts],
                                 os.path.join(out, f"train_{name}.log"))
        metrics = final_metrics(run_dir, dataset)
        comp = complexity(run_dir)
        results.append({"name": name, "genotype": genotype, **comp, **metrics, "seconds": round(seconds[name], 1)})
        rows.append([name, " ".join("".join(str(k) for k in e) for e in comp["layers"]), f"{comp['params']:,}",
                     f"{comp['inference_params']:,}", f"{comp['macs'] / 1e6:.1f}", f"{metrics['mAP']:.1f}",
                     f"{metrics['Rank-1']:.1f}"])
    # 4. the table
    random_maps = [r["mAP"] for r in results if r["name"].startswith("random")]
    headers = ["genotype", "layers (k1 k2 r)", "params", "params at inference", "MMACs", "mAP (%)", "Rank-1 (%)"]
    table = tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True)
    step = (f"LR step at epoch {args.milestone}" + (f": {lrs[0]} -> {lrs[1]}" if lrs else "")) if args.milestone \
        else "no LR step"
    note = (f"{args.train_config}, {args.epochs} epochs ({step}), SEED {args.seed}, "
            f"final-epoch metrics on {dataset}; search: "
            + (args.search_genotype or f"{args.search_config} SEED {args.seed}"))
    print()
    print(note)
    print(table)
    if random_maps:
        mean = sum(random_maps) / len(random_maps)
        spread = math.sqrt(sum((m - mean) ** 2 for m in random_maps) / len(random_maps))
        print(f"random genotypes: mAP {mean:.1f} ± {spread:.1f} (mean ± std over {len(random_maps)})")
    with open(os.path.join(out, "results.md"), "w", encoding="utf-8") as f:
        f.write(note + "\n\n" + table + "\n")
    with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as f:
        json.dump({"note": note, "seconds": {k: round(v, 1) for k, v in seconds.items()}, "results": results}, f,
                  indent=2)
    return results


if __name__ == "__main__":
    main()
