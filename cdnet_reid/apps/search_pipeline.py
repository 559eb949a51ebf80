"""The search evaluation protocol: S searches, the searched, the paper's and R random genotypes,
each trained with T training seeds and one recipe; tables, a confidence interval, rank
correlations and one picture.

    cdnet-reid search-pipeline                                   # -> logs/synthetic/pipeline/
    cdnet-reid search-pipeline --search-seeds 0 1 --random-seeds 1 2 3 4 --train-seeds 0 1 2
    cdnet-reid search-pipeline --resume                          # finished steps read back
    cdnet-reid search-pipeline --quick --output-dir /tmp/p       # tiny, for the tests (< 1 min)

Steps, each a ``cdnet-reid train`` subprocess with its own folder under ``--output-dir``:

1. ``search_seed{S}/``, one per ``--search-seeds`` (default 0 1): the search of
   ``--search-config`` (default ``Synthetic/search_cdnet_full.yml``: the top-k search of
   ``search_cdnet.yml`` at the trainings' full width and 96x48, about 10 min per search on one core)
   with ``SEED S``; its ``genotype_final.json`` is the genotype ``searched_seed{S}``.
   ``--search-genotype FILE ...`` uses these files instead (no search; a file inside a search folder
   still gives that supernet's preferences).
2. ``genotypes/random_seed{N}.json``, one per ``--random-seeds`` (default 1 2 3 4): genotypes drawn
   uniformly from the same space (``cdnet-reid random-genotype --seed N``).
3. ``train_{genotype}/train_seed{T}/``: every genotype -- searched, the paper's (``--paper``,
   default ``cdnet_top2`` / ``cnet_top2``), random -- trained from scratch by ``--train-config``
   (default ``Synthetic/cdnet.yml``) shortened to ``--epochs`` (default 10, LR step at
   ``--milestone``, default 8), once per ``--train-seeds`` (default 0 1 2: ``SEED T``,
   ``DETERMINISTIC True``), evaluated once at the end on the test split (final-epoch metrics, no
   selection on the test set). The trainings run seed by seed (all genotypes with the first seed,
   then the next), so an interrupted protocol has complete comparisons for the seeds it finished.

With ``--budgets F ...`` (fractions of the paper genotype's latency, e.g. ``0.6 0.8``) the protocol
also asks whether a search for a budget beats random networks that fit the same budget:

0. ``latency_table/``: ``cdnet-reid latency-table`` of ``--search-config`` (torch, batch 1, every
   CPU, calibrated on whole networks), run alone before anything else; or ``--cost-table FILE``.
4. ``search_budget{100F}_seed{S}/``, one per budget and ``--budget-seeds`` (default: the first search
   seed): the search with ``SEARCH.COST.KIND latency``, that table, ``SEARCH.COST.REFERENCE`` the
   paper's genotype, ``SEARCH.COST.TARGET F`` and ``SEARCH.COST.MODE target``: a budget relative to
   the paper's network as the same table predicts it, so it survives the machine's speed drift.
   Its genotype is ``budget{100F}_seed{S}`` (group ``budget``).
5. ``genotypes/matched_<budget genotype>_seed{N}.json``: ``--matched-random`` (default 2) uniform
   random genotypes per budget genotype whose predicted latency is within ``--match-tolerance``
   (default 5 %) of its own (:mod:`cdnet_reid.search.matched`; group ``matched random``), trained
   like every other genotype.

The results then add, per budget, its genotype's latency predicted and measured relative to the
paper's, its mean mAP against that of its matched random genotypes, the interval of "budget minus
matched random" mean mAP, and a dotted line per budget in the picture. Run with ``--resume`` into
the folder of an earlier protocol, only the new steps run.

Then, without subprocesses: parameters and MACs of every genotype at the test size, its latency
(batch 1, torch, this CPU, every network timed round-robin in one process so that their ratios
hold while the machine's speed drifts; ``--no-latency`` skips it), and for every supernet (search) the two
scores of :mod:`cdnet_reid.search.subnet` per genotype: Σ log softmax(α) of its candidates and the
loss of its sub-network on the search's architecture split, with Kendall's τ-b against the trained
mean mAP (positive: the supernet ranks like training; the loss enters as -loss).

Output in ``--output-dir``: the per-group table (mean, sd over runs, sd between genotypes), the
per-genotype table (mean, sd, min–max over training seeds), the supernet table, the bootstrap
interval of "searched minus random" (and "paper minus random") mean mAP
(:func:`cdnet_reid.search.protocol.bootstrap_difference`: genotypes and, within them, training seeds
resampled with replacement, ``--resamples`` draws, RNG seed ``--ci-seed``, percentile interval at
``--ci-level``; ``--ci-level 0``: none), all in ``results.md`` and ``results.json``, and
``protocol.png``: mean trained mAP against MACs and latency, bars from the lowest to the highest
seed.

``--resume``: a step whose folder records it finished with the same command (``step.json``) is read
back without a subprocess; any other is run with ``cdnet-reid train --resume`` (an interrupted one
continues from its last checkpoint; a changed recipe is refused by train). ``--overwrite`` starts
every step afresh. Without either, a step whose folder already holds a run fails (as train does).
``--jobs`` steps (default 2) run at the same time, each with ``OMP_NUM_THREADS`` = CPUs / jobs unless
the environment sets it (on 2 cores: two one-thread steps, which keeps both cores busy and is much
faster than 2 threads per step when anything else runs); the results do not depend on it
(``DETERMINISTIC True``, one process per step). Each step prints ``[i/N]`` with the elapsed time and
an ETA (the mean time of the steps of each kind run so far). ``--search-opts`` / ``--train-opts``
add ``KEY VALUE`` overrides.
``--quick``: tiny defaults for the tests (one search of 1 epoch of 2 iterations, 2 random genotypes,
training seeds 0 1, 2 epochs of 2 iterations, quarter width, 32x16); flags given explicitly win.
"""

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from ..config import ConfigError
from ..config.packaged import resolve_config_file
from ..utils.file_io import atomic_write
from .args import add_output_dir, tool_parser

#: A step: a ``cdnet-reid`` command in its own process (works from a clone or a wheel).
CLI = [sys.executable, "-m", "cdnet_reid.cli"]
TRAIN = [*CLI, "train"]

DEFAULTS = {"search_seeds": [0, 1], "random_seeds": [1, 2, 3, 4], "train_seeds": [0, 1, 2], "epochs": 10,
            "milestone": 8}
QUICK = {"search_seeds": [0], "random_seeds": [1, 2], "train_seeds": [0, 1], "epochs": 2, "milestone": 2}
_TINY = ["MODEL.DEVICE", "cpu", "INPUT.SIZE_TRAIN", "[32,16]", "INPUT.SIZE_TEST", "[32,16]",
         "INPUT.PADDING.SIZE", "2", "MODEL.BACKBONE.WIDTH_MULT", "0.25", "SOLVER.IMS_PER_BATCH", "16",
         "SOLVER.ITERS_PER_EPOCH", "2", "DATALOADER.NUM_WORKERS", "0", "TEST.IMS_PER_BATCH", "64"]
QUICK_SEARCH_OPTS = [*_TINY, "SOLVER.MAX_EPOCH", "1"]
QUICK_TRAIN_OPTS = [*_TINY, "SOLVER.WARMUP_ITERS", "0"]
QUICK_TABLE_ARGS = ["--warmup", "0", "--runs", "1", "--iters", "1", "--calibrate", "2"]
STEP_FILE = "step.json"


def _child_env(jobs: int) -> dict:
    """The environment of a step: this package importable whether installed or run from a clone;
    ``OMP_NUM_THREADS`` (when not set) the CPUs shared out between ``jobs`` parallel steps (a step
    that runs alone, ``jobs`` 1, gets them all)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.environ.get("PYTHONPATH", "")
    env = {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
    return env


class StepFailed(RuntimeError):
    """A step's process exited with an error: the message, and the last lines of its log."""

    def __init__(self, message: str, tail: str):
        super().__init__(message)
        self.tail = tail


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


@dataclass
class Step:
    """One ``cdnet-reid train`` run: ``kind`` (for the ETA), ``name``, command, its folder."""

    kind: str
    name: str
    cmd: list[str]
    folder: str


class Steps:
    """Runs the steps, ``jobs`` at a time, and prints ``[i/N] ... elapsed, ETA`` (the mean time of
    the steps of each kind run so far, times the steps left, over ``jobs``)."""

    def __init__(self, kinds: Sequence[str], flag: list[str], resume: bool, jobs: int = 1):
        self.left = Counter(kinds)  # steps not finished, per kind
        self.total, self.index = len(kinds), 0
        self.flag, self.resume, self.jobs = flag, resume, jobs
        self.start = time.perf_counter()
        self.durations: dict[str, list[float]] = {}
        self.seconds: dict[str, float] = {}
        self.lock = threading.Lock()

    def eta(self) -> str:
        means = {k: sum(v) / len(v) for k, v in self.durations.items()}
        left = {k: n for k, n in self.left.items() if n}
        if any(k not in means for k in left):
            return "ETA unknown"
        return "ETA " + _clock(sum(means[k] * n for k, n in left.items()) / self.jobs)

    def _say(self, head: str, text: str) -> None:
        print(f"{head}: {text} | elapsed {_clock(time.perf_counter() - self.start)}, {self.eta()}", flush=True)

    def run_all(self, steps: Sequence[Step]) -> None:
        """Run ``steps`` (``jobs`` at a time); the first failure cancels the steps not started and is raised."""
        numbered = []
        for step in steps:
            self.index += 1
            numbered.append((f"[{self.index}/{self.total}] {step.name}", step))
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            futures = [pool.submit(self.run, step, head) for head, step in numbered]
            try:
                for f in as_completed(futures):
                    f.result()
            except BaseException:
                for f in futures:
                    f.cancel()
                raise

    def _read_back(self, step: Step, record: dict) -> bool:
        path = os.path.join(step.folder, STEP_FILE)
        if not (self.resume and os.path.isfile(path)):
            return False
        with open(path, encoding="utf-8") as f:
            stored = json.load(f)
        if stored.get("cmd") != record["cmd"] or stored.get("command") != record.get("command"):
            return False
        self.seconds[step.name] = stored.get("seconds", 0.0)
        return True

    def run(self, step: Step, head: str) -> bool:
        """Run ``step`` (its log next to its folder); False when it finished earlier (read back)."""
        record = {"cmd": step.cmd[len(TRAIN):]}  # after "cdnet-reid train" (or another command, named)
        if step.cmd[len(CLI)] != TRAIN[-1]:
            record["command"] = step.cmd[len(CLI)]
        if self._read_back(step, record):
            with self.lock:
                self.left[step.kind] -= 1
                self._say(head, f"finished earlier, read back ({step.folder})")
            return False
        log_path = step.folder + ".log"
        with self.lock:
            print(f"{head}: running, output in {log_path}", flush=True)
        t0 = time.perf_counter()
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        with open(log_path, "a", encoding="utf-8") as log:
            # train's --resume / --overwrite go before its KEY VALUE overrides, right after "train"
            cmd = step.cmd if step.kind == "table" else [*step.cmd[:len(TRAIN)], *self.flag, *step.cmd[len(TRAIN):]]
            log.write(f"$ cdnet-reid {' '.join(cmd[len(CLI):])}\n")
            log.flush()
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT,
                                  env=_child_env(1 if step.kind == "table" else self.jobs))
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            with open(log_path, encoding="utf-8", errors="replace") as f:
                tail = "".join(f.readlines()[-20:])
            raise StepFailed(f"{step.name} failed (exit status {proc.returncode}); its output is in {log_path}", tail)
        with atomic_write(os.path.join(step.folder, STEP_FILE)) as f:
            json.dump({**record, "seconds": round(elapsed, 1)}, f)
        with self.lock:
            self.durations.setdefault(step.kind, []).append(elapsed)
            self.seconds[step.name] = elapsed
            self.left[step.kind] -= 1
            self._say(head, f"done in {elapsed:.0f} s")
        return True


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


def load_trained(output_dir: str):
    """``(model, image)``: the network in ``output_dir/model_final.pth`` (eval, CPU) and a random image
    of its test size."""
    import torch

    from ..config import get_cfg
    from ..modeling import load_model

    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(output_dir, "config.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = os.path.join(output_dir, "model_final.pth")
    cfg.freeze()
    model = load_model(cfg)[0].eval()
    h, w = cfg.INPUT.SIZE_TEST
    return model, torch.rand(1, 3, h, w) * 255


def complexity(model, x) -> dict:
    """Parameters (total, backbone, used at inference) and conv + linear MACs of ``model`` on ``x``."""
    from ..utils.complexity import conv_linear_macs, count_parameters, inference_parameters, mac_analysis

    return {"params": count_parameters(model), "backbone_params": count_parameters(model.backbone),
            "inference_params": inference_parameters(model, x),
            "macs": conv_linear_macs(mac_analysis(model, x)),
            "layers": [list(e) for e in model.backbone.genotype.layers]}


def measure_latencies(models: Sequence[tuple], rounds: int = 30) -> list[float]:
    """Milliseconds per image (torch, batch 1, this process's threads) of every ``(model, image)``,
    timed round-robin in one process (run r of every network, then run r + 1) so that a drift of
    the machine's speed affects them alike and their ratios hold."""
    import torch

    from ..search.cost_table import make_timer, time_round_robin

    timers = [make_timer("torch", m, (x,), "", torch.get_num_threads()) for m, x in models]
    # 30 rounds: with 9, one network of the same run measured 79 % of the paper's latency once and
    # 88 % the next time on this 2-core VM; with 40, two repeats agree within 3 points.
    return [s * 1000.0 for s in time_round_robin(timers, warmup=5 if rounds > 3 else 1, runs=rounds, iters=10)]


def _parse(argv, prog):
    parser = tool_parser(prog, __doc__)
    parser.add_argument("--search-config", default="Synthetic/search_cdnet_full.yml",
                        help="a config path or a shipped config name (default Synthetic/search_cdnet_full.yml)")
    parser.add_argument("--train-config", default="Synthetic/cdnet.yml",
                        help="a config path or a shipped config name (default Synthetic/cdnet.yml)")
    add_output_dir(parser, "folder of every step (default logs/synthetic/pipeline)", required=False,
                   default="logs/synthetic/pipeline")
    parser.add_argument("--search-seeds", type=int, nargs="*", help="SEED of each search (default 0 1)")
    parser.add_argument("--random-seeds", type=int, nargs="*", help="random genotypes' seeds (default 1 2 3 4)")
    parser.add_argument("--train-seeds", type=int, nargs="*", help="SEED of each training (default 0 1 2)")
    parser.add_argument("--seed", type=int, help="shorthand for --search-seeds N --train-seeds N")
    parser.add_argument("--epochs", type=int, help="training epochs of every genotype (default 10)")
    parser.add_argument("--milestone", type=int,
                        help="1-based epoch of the trainings' LR step (LR_LIST[0] -> LR_LIST[1]); 0: no step "
                             "(default 8)")
    parser.add_argument("--paper", default="", help="the paper's genotype (default: cdnet_top2 / cnet_top2)")
    parser.add_argument("--search-genotype", nargs="*", default=[], metavar="FILE",
                        help="use these genotype files instead of searching")
    parser.add_argument("--budgets", type=float, nargs="*", default=[], metavar="F",
                        help="also search for these latency budgets, fractions of the paper genotype's latency "
                             "(e.g. 0.6 0.8), and train each searched network beside random ones of its cost")
    parser.add_argument("--budget-seeds", type=int, nargs="*",
                        help="SEED of each budget search (default: the first --search-seeds, else 0)")
    parser.add_argument("--cost-table", default="", metavar="FILE",
                        help="the latency table of the budget searches (default: measured first, "
                             "cdnet-reid latency-table on the search config, into latency_table/)")
    parser.add_argument("--matched-random", type=int, default=2, metavar="K",
                        help="random genotypes per budget-searched one, of its predicted latency (default 2)")
    parser.add_argument("--match-tolerance", type=float, default=0.05,
                        help="how close a matched random genotype's predicted latency is (relative, default 0.05)")
    parser.add_argument("--ci-level", type=float, default=0.95, help="bootstrap interval level; 0: none")
    parser.add_argument("--resamples", type=int, default=10000, help="bootstrap resamples")
    parser.add_argument("--ci-seed", type=int, default=0, help="RNG seed of the bootstrap")
    parser.add_argument("--jobs", type=int, default=2,
                        help="steps run at the same time (default 2; each gets OMP_NUM_THREADS = CPUs / jobs "
                             "unless set)")
    parser.add_argument("--no-latency", action="store_true", help="do not time the trained networks")
    parser.add_argument("--quick", action="store_true", help="tiny defaults, for tests")
    parser.add_argument("--search-opts", nargs="*", default=[], metavar="KEY VALUE")
    parser.add_argument("--train-opts", nargs="*", default=[], metavar="KEY VALUE")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue every step (finished ones are read back)")
    mode.add_argument("--overwrite", action="store_true", help="start every step afresh")
    args = parser.parse_args(argv)
    if len(args.search_opts) % 2 or len(args.train_opts) % 2:
        parser.error("--search-opts / --train-opts take KEY VALUE pairs")
    if args.seed is not None:
        if args.search_seeds is not None or args.train_seeds is not None:
            parser.error("--seed is a shorthand for --search-seeds N --train-seeds N: give one or the other")
        args.search_seeds = args.train_seeds = [args.seed]
    for key, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.budget_seeds is None:
        args.budget_seeds = args.search_seeds[:1] or [0]
    if args.quick:
        args.search_opts = QUICK_SEARCH_OPTS + args.search_opts
        args.train_opts = QUICK_TRAIN_OPTS + args.train_opts
    return args


def check_args(args) -> str:
    """Every user error knowable before a step runs (:class:`ConfigError`); returns the search space."""
    from ..config import get_cfg
    from ..modeling.registry import BACKBONE_REGISTRY
    from ..modeling.space.genotype import load_genotype

    if args.milestone and not 2 <= args.milestone <= args.epochs:
        raise ConfigError(f"--milestone must be 0 (no LR step) or an epoch in [2, --epochs={args.epochs}]")
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {args.jobs}")
    if not args.train_seeds:
        raise ConfigError("--train-seeds: at least one training seed is needed (T >= 1)")
    for flag, seeds in (("--search-seeds", args.search_seeds), ("--random-seeds", args.random_seeds),
                        ("--train-seeds", args.train_seeds)):
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"{flag} {seeds}: a seed given twice")
    if not args.search_seeds and not args.search_genotype and not args.budgets:
        raise ConfigError("no searched genotype: give --search-seeds, --search-genotype or --budgets")
    if args.ci_level and not 0 < args.ci_level < 1:
        raise ConfigError(f"--ci-level must be in (0, 1) or 0 (no interval), got {args.ci_level}")
    if args.ci_level and not (args.random_seeds or args.budgets and args.matched_random):
        raise ConfigError("the interval 'searched minus random' needs random genotypes: give --random-seeds "
                          "or --ci-level 0")
    if len(set(args.budgets)) != len(args.budgets) or any(not f > 0 for f in args.budgets):
        raise ConfigError(f"--budgets {args.budgets}: fractions > 0 of the paper's latency, each once")
    if args.budgets and (not args.budget_seeds or len(set(args.budget_seeds)) != len(args.budget_seeds)):
        raise ConfigError(f"--budget-seeds {args.budget_seeds}: at least one, each once")
    if args.matched_random < 0 or not 0 < args.match_tolerance < 1:
        raise ConfigError(f"--matched-random must be >= 0 and --match-tolerance in (0, 1), got "
                          f"{args.matched_random} and {args.match_tolerance}")
    if args.cost_table and not os.path.isfile(args.cost_table):
        raise ConfigError(f"--cost-table {args.cost_table}: no such file")
    if args.resamples < 1:
        raise ConfigError(f"--resamples must be >= 1, got {args.resamples}")
    for flag_name in ("search_config", "train_config"):
        setattr(args, flag_name, resolve_config_file(getattr(args, flag_name)))
        if not os.path.isfile(getattr(args, flag_name)):
            raise ConfigError(f"--{flag_name.replace('_', '-')} {getattr(args, flag_name)}: config file not found "
                              "(`cdnet-reid configs` lists the shipped ones)")
    for path in args.search_genotype:
        if not os.path.isfile(path):
            raise ConfigError(f"--search-genotype {path}: no such file")
    cfg = get_cfg()
    cfg.merge_from_file(args.search_config)
    space = getattr(BACKBONE_REGISTRY.get(cfg.MODEL.BACKBONE.NAME), "space", "")
    if not space:
        raise ConfigError(f"--search-config {args.search_config}: MODEL.BACKBONE.NAME {cfg.MODEL.BACKBONE.NAME} "
                          "is not a supernet (CDNetSupernet / CNetSupernet)")
    args.paper = args.paper or f"{space}_top2"
    paper = load_genotype(args.paper)  # GenotypeError (a ConfigError) for an unknown name or a bad file
    if paper.space != space:
        raise ConfigError(f"--paper {args.paper} is a {paper.space} genotype; the search is over {space}")
    if args.budgets and args.cost_table:
        check_table(args.cost_table, paper, args.budgets)
    return space


def check_table(path: str, paper, budgets: Sequence[float]) -> dict:
    """The latency table at ``path``, checked against the paper's genotype (space, layers) and the
    budgets (none below the cheapest network of the space); :class:`ConfigError` names the problem."""
    from ..search.cost_table import cost_range, genotype_cost, load_cost_table

    table = load_cost_table(path, "latency")  # CostTableError (a ConfigError) names the file and key
    if table["space"] != paper.space or len(table["layers"]) != len(paper.layers):
        raise ConfigError(f"--cost-table {path}: a table of {len(table['layers'])} {table['space']} layers; the search "
                          f"is over {len(paper.layers)} {paper.space} layers")
    floor = cost_range(table, "latency")[0] / genotype_cost(table, paper, "latency")
    low = [f for f in budgets if f < floor]
    if low:
        raise ConfigError(f"--budgets {low[0]:g}: below the cheapest network of the space ({floor:.3f} of the paper's "
                          f"latency by {path})")
    return table


def train_recipe(args) -> tuple[list[str], str, str]:
    """``(overrides, dataset, description)`` of the one training recipe (SEED added per run)."""
    from ..config import get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(args.train_config)
    lrs = list(cfg.SOLVER.LR_LIST)
    if args.milestone and len(lrs) == 1:
        raise ConfigError(f"--milestone needs two SOLVER.LR_LIST values in {args.train_config}, got {lrs}")
    schedule = ["SOLVER.MILESTONES", f"[{args.milestone}]" if args.milestone else "[]"]
    if lrs:
        schedule += ["SOLVER.LR_LIST", str(lrs[:2] if args.milestone else lrs[:1]).replace(" ", "")]
    recipe = ["SOLVER.MAX_EPOCH", str(args.epochs), *schedule, "SOLVER.CHECKPOINT_PERIOD", str(args.epochs),
              "TEST.EVAL_PERIOD", "0", "TEST.EVAL_AT_START", "False", "DETERMINISTIC", "True"]
    step = (f"LR step at epoch {args.milestone}" + (f": {lrs[0]} -> {lrs[1]}" if lrs else "")) if args.milestone \
        else "no LR step"
    text = f"{describe(args.train_config, args.train_opts)}, {args.epochs} epochs ({step})"
    return recipe, cfg.DATASETS.TESTS[0], text


def describe(config: str, opts: Sequence[str]) -> str:
    """``<config> at HxW, width W``: the input size and width the runs of ``config`` + ``opts`` use."""
    from ..config import get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(config)
    cfg.merge_from_list(list(opts))
    h, w = cfg.INPUT.SIZE_TRAIN
    return f"{os.path.basename(config)} at {h}x{w}, width {cfg.MODEL.BACKBONE.WIDTH_MULT:g}"


def budget_name(fraction: float) -> str:
    """``budget60`` for 0.6: the genotype name of a search for a fraction of the paper's latency."""
    return f"budget{fraction * 100:g}"


def run_protocol(args, space: str) -> dict:
    """All the steps and the analysis; returns what results.json holds."""
    import torch

    from ..modeling.space.genotype import load_genotype, save_genotype
    from .random_genotype import random_genotype

    out = os.path.abspath(args.output_dir)
    os.makedirs(os.path.join(out, "genotypes"), exist_ok=True)
    flag = ["--resume"] if args.resume else ["--overwrite"] if args.overwrite else []
    recipe, dataset, recipe_text = train_recipe(args)
    searches = [] if args.search_genotype else list(args.search_seeds)
    budget_searches = [(f, s) for f in args.budgets for s in args.budget_seeds]
    n_searched = len(args.search_genotype) or len(searches)
    n_genotypes = n_searched + 1 + len(args.random_seeds) + len(budget_searches) * (1 + args.matched_random)
    table_steps = 1 if args.budgets and not args.cost_table else 0
    steps = Steps(["table"] * table_steps + ["search"] * (len(searches) + len(budget_searches))
                  + ["train"] * n_genotypes * len(args.train_seeds), flag, args.resume, args.jobs)

    table_path = os.path.abspath(args.cost_table) if args.cost_table else os.path.join(out, "latency_table",
                                                                                      "table.json")
    if table_steps:  # alone, with every CPU: the budgets are fractions of what it measures
        folder = os.path.dirname(table_path)
        steps.run_all([Step("table", "latency table", [*CLI, "latency-table", "--config-file", args.search_config,
                                                       "--output", table_path, "--genotype", args.paper,
                                                       "--threads", str(torch.get_num_threads()),
                                                       *(QUICK_TABLE_ARGS if args.quick else []), *args.search_opts],
                            folder)])
    table = check_table(table_path, load_genotype(args.paper), args.budgets) if args.budgets else None

    genotypes, supernet_dirs, todo = [], [], []  # (name, group, path); (name, search folder); steps
    for s in searches:
        folder = os.path.join(out, f"search_seed{s}")
        todo.append(Step("search", f"search seed {s}", [*TRAIN, "--config-file", args.search_config, "OUTPUT_DIR",
                                                        folder, "SEED", str(s), *args.search_opts], folder))
        genotypes.append((f"searched_seed{s}", "searched", os.path.join(folder, "genotype_final.json")))
        supernet_dirs.append((f"search_seed{s}", folder))
    for i, path in enumerate(args.search_genotype):
        genotypes.append((f"searched_{i}", "searched", os.path.abspath(path)))
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.isfile(os.path.join(folder, "model_final.pth")) and os.path.isfile(os.path.join(folder,
                                                                                                   "config.yaml")):
            supernet_dirs.append((f"searched_{i}", folder))
    budgeted = []  # (name, fraction, genotype path)
    for f, s in budget_searches:
        name = f"{budget_name(f)}_seed{s}"
        folder = os.path.join(out, f"search_{name}")
        todo.append(Step("search", f"search {name} ({f:g} x the paper's latency)",
                         [*TRAIN, "--config-file", args.search_config, "OUTPUT_DIR", folder, "SEED", str(s),
                          *args.search_opts, "SEARCH.COST.KIND", "latency", "SEARCH.COST.TABLE", table_path,
                          "SEARCH.COST.REFERENCE", args.paper, "SEARCH.COST.TARGET", f"{f:g}",
                          "SEARCH.COST.MODE", "target"], folder))
        budgeted.append((name, f, os.path.join(folder, "genotype_final.json")))
        supernet_dirs.append((f"search_{name}", folder))
    steps.run_all(todo)
    for g in genotypes:
        if load_genotype(g[2]).space != space:
            raise ConfigError(f"{g[2]}: not a {space} genotype")
    genotypes.append(("paper", "paper", args.paper))
    num_layers = len(load_genotype(args.paper).layers)
    for s in args.random_seeds:
        path = os.path.join(out, "genotypes", f"random_seed{s}.json")
        save_genotype(random_genotype(space, s, num_layers), path)
        genotypes.append((f"random_seed{s}", "random", path))
    genotypes += [(name, "budget", path) for name, _, path in budgeted]
    genotypes += matched_genotypes(budgeted, genotypes, table, args, out)

    extra = ["MODEL.BACKBONE.NAME", "CNet"] if space == "cnet" else []
    todo = [Step("train", f"train {name} seed {t}",
                 [*TRAIN, "--config-file", args.train_config, "MODEL.BACKBONE.GENOTYPE", path, "OUTPUT_DIR",
                  os.path.join(out, f"train_{name}", f"train_seed{t}"), *recipe, *extra, "SEED", str(t),
                  *args.train_opts], os.path.join(out, f"train_{name}", f"train_seed{t}"))
            for t in args.train_seeds for name, _, path in genotypes]
    steps.run_all(todo)
    runs = {name: [] for name, _, _ in genotypes}
    for t in args.train_seeds:
        for name, _, _ in genotypes:
            folder = os.path.join(out, f"train_{name}", f"train_seed{t}")
            runs[name].append({"seed": t, "dir": folder, **final_metrics(folder, dataset),
                               "seconds": round(steps.seconds[f"train {name} seed {t}"], 1)})
    from ..search.cost_table import genotype_cost

    table_rows, models = [], []
    for name, group, path in genotypes:
        model, x = load_trained(runs[name][0]["dir"])
        models.append((model, x))
        row = {"name": name, "group": group, "genotype": path, **complexity(model, x), "latency_ms": None,
               "runs": runs[name]}
        if table is not None:
            row["predicted_ms"] = genotype_cost(table, load_genotype(path), "latency")
        table_rows.append(row)
    if not args.no_latency:
        for row, ms in zip(table_rows, measure_latencies(models, rounds=3 if args.quick else 30)):
            row["latency_ms"] = ms
    return {"recipe": recipe_text, "dataset": dataset, "search": describe(args.search_config, args.search_opts),
            "search_opts": args.search_opts, "train_opts": args.train_opts,
            "genotypes": table_rows, "supernets": supernet_scores(supernet_dirs, table_rows),
            "budgets": budget_summary(budgeted, table_rows, table, table_path),
            "intervals": intervals(table_rows, args),
            "seconds": {k: round(v, 1) for k, v in steps.seconds.items()},
            "wall_seconds": round(time.perf_counter() - steps.start, 1), "jobs": args.jobs,
            "latency_threads": torch.get_num_threads()}


def matched_genotypes(budgeted, genotypes, table, args, out) -> list[tuple[str, str, str]]:
    """``--matched-random`` random genotypes per budget-searched one, of its predicted latency
    (:func:`cdnet_reid.search.matched.cost_matched_genotypes`), saved in ``genotypes/``."""
    from ..modeling.space.genotype import load_genotype, save_genotype
    from ..search.cost_table import genotype_cost
    from ..search.matched import cost_matched_genotypes

    taken = [load_genotype(path).layers for _, _, path in genotypes]
    picks = []
    for name, _, path in budgeted:
        cost = genotype_cost(table, load_genotype(path), "latency")
        for g in cost_matched_genotypes(table, "latency", cost, args.matched_random,
                                        tolerance=args.match_tolerance, exclude=taken):
            g.meta["matched_to"] = name
            taken.append(g.layers)
            label = f"matched_{name}_seed{g.meta['seed']}"
            file = os.path.join(out, "genotypes", f"{label}.json")
            save_genotype(g, file)
            picks.append((label, "matched random", file))
    return picks


def budget_summary(budgeted, rows, table, table_path) -> list[dict]:
    """Per budget-searched genotype: the budget, the table's prediction, the latency measured beside
    the paper's network, the mean mAP and that of its cost-matched random genotypes."""
    from ..modeling.space.genotype import load_genotype
    from ..search.protocol import summary

    if not budgeted:
        return []
    by_name = {r["name"]: r for r in rows}
    paper = by_name["paper"]

    def mean_map(r):
        return summary([x["mAP"] for x in r["runs"]])[0]

    out = []
    for name, f, _ in budgeted:
        r = by_name[name]
        matched = [x for x in rows if x["group"] == "matched random"
                   and load_genotype(x["genotype"]).meta.get("matched_to") == name]  # as matched_genotypes wrote
        measured = None if r["latency_ms"] is None else r["latency_ms"] / paper["latency_ms"]
        out.append({"name": name, "fraction": f, "table": table_path,
                    "target_ms": f * paper["predicted_ms"], "predicted_ms": r["predicted_ms"],
                    "predicted_vs_paper": r["predicted_ms"] / paper["predicted_ms"], "measured_vs_paper": measured,
                    "mAP": mean_map(r), "matched": [x["name"] for x in matched],
                    "matched_mAP": (sum(mean_map(x) for x in matched) / len(matched)) if matched else None,
                    "matched_measured_vs_paper": [None if x["latency_ms"] is None
                                                  else x["latency_ms"] / paper["latency_ms"] for x in matched]})
    return out


def supernet_scores(supernet_dirs, table) -> list[dict]:
    """Per supernet: α score and sub-network loss of every genotype, Kendall τ-b of each with mean mAP."""
    from ..modeling.space.genotype import load_genotype
    from ..search.protocol import kendall_tau
    from ..search.subnet import alpha_score, load_supernet, subnet_losses

    out = []
    ops = [load_genotype(g["genotype"]).ops for g in table]
    maps = [sum(r["mAP"] for r in g["runs"]) / len(g["runs"]) for g in table]
    for name, folder in supernet_dirs:
        model, cfg = load_supernet(folder)
        alphas = model.backbone.alphas
        losses = subnet_losses(model, cfg, ops)
        scores = {g["name"]: {"alpha_score": alpha_score(alphas, o), "val_loss": v, "mAP": m}
                  for g, o, v, m in zip(table, ops, losses, maps)}
        out.append({"name": name, "dir": folder, "scores": scores,
                    "tau_alpha": kendall_tau([s["alpha_score"] for s in scores.values()], maps),
                    "tau_loss": kendall_tau([-s["val_loss"] for s in scores.values()], maps)})
    return out


#: The differences of group means the protocol gives an interval for (when both groups exist).
DIFFERENCES = (("searched", "random"), ("paper", "random"), ("budget", "matched random"))


def intervals(table, args) -> list[dict]:
    """Bootstrap intervals of "searched minus random", "paper minus random" and "budget minus
    matched random" mean mAP (each where both groups have genotypes)."""
    from ..search.protocol import bootstrap_difference

    if not args.ci_level:
        return []
    groups = {}
    for g in table:
        groups.setdefault(g["group"], []).append([r["mAP"] for r in g["runs"]])
    out = []
    for a, b in DIFFERENCES:
        if not (groups.get(a) and groups.get(b)):
            continue
        est, lo, hi = bootstrap_difference(groups[a], groups[b], n_resamples=args.resamples,
                                           level=args.ci_level, seed=args.ci_seed)
        out.append({"difference": f"{a} - {b}", "metric": "mAP", "estimate": est, "low": lo, "high": hi,
                    "level": args.ci_level, "resamples": args.resamples, "seed": args.ci_seed,
                    "method": "two-level percentile bootstrap: genotypes, then training seeds within them, "
                              "with replacement"})
    return out


def report(results: dict, out: str) -> str:
    """Print and write (results.md, results.json, protocol.png) the protocol's results."""
    from ..search.protocol_report import budget_table, genotype_table, group_table, plot_protocol, preference_table

    g = results["genotypes"]
    seeds = sorted({r["seed"] for x in g for r in x["runs"]})
    note = (f"{results['dataset']}: search {results['search']}, every genotype trained by {results['recipe']}, "
            f"training seeds {seeds}; final-epoch metrics on the test split")
    parts = [note, "", "Per group (sd (runs): over all runs; sd (genotypes): between genotype means)", "",
             group_table(g), "", "Per genotype (over its training seeds)", "", genotype_table(g)]
    for ci in results["intervals"]:
        parts += ["", f"{ci['difference']} (mean mAP): {ci['estimate']:+.1f} points, {ci['level']:.0%} interval "
                      f"[{ci['low']:+.1f}, {ci['high']:+.1f}] ({ci['method']}; {ci['resamples']} resamples, "
                      f"seed {ci['seed']})"]
    if results.get("budgets"):
        parts += ["", f"Searches for a latency budget (fractions of the paper genotype's latency; table "
                      f"{results['budgets'][0]['table']}; measured: timed beside the paper's network in this "
                      "process) and random genotypes of the same predicted latency", "",
                  budget_table(results["budgets"])]
    if results["supernets"]:
        parts += ["", "What each supernet prefers (Kendall τ-b with trained mean mAP; the loss enters as -loss)", "",
                  preference_table(results["supernets"])]
    text = "\n".join(parts)
    print("\n" + text)
    with atomic_write(os.path.join(out, "results.md")) as f:
        f.write(text + "\n")
    with atomic_write(os.path.join(out, "results.json")) as f:
        json.dump({"note": note, **results}, f, indent=2)
    plot_protocol(g, os.path.join(out, "protocol.png"), budgets=results.get("budgets") or (),
                  title=f"{results['dataset']}: trained mAP vs cost. Training: {results['recipe']}, seeds {seeds}. "
                        f"Search: {results['search']}")
    return text


def main(argv: Sequence[str] | None = None, prog: str | None = None):
    args = _parse(argv, prog)
    space = check_args(args)
    try:
        results = run_protocol(args, space)
    except StepFailed as e:  # the step's own last lines, then one error line; finished steps stay (--resume)
        print(e.tail.rstrip(), file=sys.stderr)
        print(f"error: {e} (rerun with --resume to continue: finished steps are read back)", file=sys.stderr)
        raise SystemExit(1) from None
    report(results, os.path.abspath(args.output_dir))
    return results


if __name__ == "__main__":
    main()
