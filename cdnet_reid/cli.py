"""``cdnet-reid <command> [options] [KEY VALUE ...]``: the one command line of the package (the
console entry point of an installed package; ``tools/*.py`` are thin wrappers around it).

    cdnet-reid train --config-file Market/cdnet.yml          (a shipped config; a path works too)
    cdnet-reid eval MODEL.WEIGHTS model.pth DATASETS.TESTS "('Market1501',)"
    cdnet-reid extract --input crops/ --output feats.npy MODEL.WEIGHTS model.pth
    cdnet-reid search-gallery --query q/ --gallery g/ --output results.csv MODEL.WEIGHTS model.pth
    cdnet-reid export --output model.onnx MODEL.WEIGHTS model.pth
    cdnet-reid complexity --config-file Market/cdnet.yml
    cdnet-reid configs                                       (the shipped configs)

A checkpoint written by this package records its model and input (architecture, genotype, input
size, normalisation, flip, feature norm, metric): tools that load MODEL.WEIGHTS need no
--config-file. A --config-file that contradicts the checkpoint on one of these is an error,
unless the key is also given as a KEY VALUE override (then that value is used, and logged).

Exit status: 0 done; 2 a user error (one line starting with "error:" naming the file, key or
value); 75 a training interrupted by SIGTERM/SIGINT (resume it with --resume); 1 an internal error
(with its traceback).
"""

import importlib
import sys
import warnings
from collections.abc import Sequence

from . import __version__

#: command -> (module, function, summary); every function takes ``(argv, prog)``.
COMMANDS = {
    "train": ("cdnet_reid.cli", "train", "train (or search, per TRAINER.NAME) from a config"),
    "eval": ("cdnet_reid.cli", "evaluate", "evaluate MODEL.WEIGHTS on DATASETS.TESTS"),
    "extract": ("cdnet_reid.apps.extract", "main",
                "embed a folder or list of crops into .npy / .npz / .csv features"),
    "search-gallery": ("cdnet_reid.apps.search_gallery", "main",
                       "rank a gallery folder for every query crop (CSV/JSON, pictures, FAISS)"),
    "export": ("cdnet_reid.apps.export", "main",
               "export the model to ONNX (fp32, --int8) and check it in onnxruntime"),
    "visualize": ("cdnet_reid.apps.visualize", "main",
                  "rank-list pictures and a ranking summary on the test sets"),
    "complexity": ("cdnet_reid.apps.complexity", "main", "parameters and MACs of a config's model"),
    "benchmark": ("cdnet_reid.apps.benchmark", "main",
                  "inference / training images/s of a config's model (--compare: fast paths, ONNX)"),
    "latency-table": ("cdnet_reid.apps.latency_table", "main",
                      "latency, MACs and parameters of every candidate block of a search space"),
    "plot-metrics": ("cdnet_reid.apps.plot_metrics", "main", "training curves of a run as one PNG"),
    "plot-search": ("cdnet_reid.apps.plot_search", "main", "the picture of an architecture search"),
    "random-genotype": ("cdnet_reid.apps.random_genotype", "main",
                        "a genotype drawn uniformly from a search space"),
    "search-pipeline": ("cdnet_reid.apps.search_pipeline", "main",
                        "search, then train the searched, the paper's and random genotypes; one table"),
    "configs": ("cdnet_reid.apps.configs", "main", "list the configs shipped with the package"),
}

EVAL_EPILOG = """Examples:
  cdnet-reid eval MODEL.WEIGHTS logs/run/model_final.pth DATASETS.TESTS "('Market1501',)"
  cdnet-reid eval --config-file logs/run/config.yaml MODEL.WEIGHTS logs/run/model_final.pth
  cdnet-reid eval --resume OUTPUT_DIR logs/run          (the run's last checkpoint)

The model and its input (size, normalisation, flip, feature norm) come from the checkpoint;
DATASETS.TESTS and the test options from the config file and the overrides."""

TRAIN_EPILOG = """Examples:
  cdnet-reid train --config-file Market/cdnet.yml
  cdnet-reid train --config-file Market/cdnet.yml --resume
  cdnet-reid train --config-file Market/cdnet.yml --num-gpus 2 SOLVER.IMS_PER_BATCH 128
  cdnet-reid train --config-file Search/cdnet_topk.yml       (an architecture search)"""


def train(argv: Sequence[str], prog: str):
    import cdnet_reid.search  # noqa: F401  (registers SearchTrainer)
    from cdnet_reid.engine import main

    return main(list(argv), prog=prog, epilog=TRAIN_EPILOG,
                description="Train (or search, per TRAINER.NAME) from a config.")


def evaluate(argv: Sequence[str], prog: str):
    import cdnet_reid.search  # noqa: F401  (registers SearchTrainer)
    from cdnet_reid.engine import main

    if any(a in ("-h", "--help") for a in argv):
        argv = ["--help"]
    return main(["--eval-only", *argv], prog=prog, epilog=EVAL_EPILOG,
                description="Evaluate a trained model (MODEL.WEIGHTS, or --resume: the last "
                            "checkpoint of OUTPUT_DIR) on DATASETS.TESTS.")


def _usage() -> str:
    lines = [__doc__.strip(), "", "commands:"]
    lines += [f"  {name:<16} {summary}" for name, (_, _, summary) in COMMANDS.items()]
    return "\n".join(lines + ["", "cdnet-reid <command> --help shows the options of a command; "
                                  "cdnet-reid --version the version."])


def run_command(command: str, argv: Sequence[str], prog: str | None = None) -> int:
    """Run one command with the error policy of the command line: a user error (a bad file, key,
    value or flag) is one ``error:`` line on stderr and exit status 2; an internal error keeps
    its traceback."""
    from .engine.defaults import USER_ERRORS

    module, function, _ = COMMANDS[command]
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit deprecation noise from fvcore
    try:
        getattr(importlib.import_module(module), function)(list(argv), prog or f"cdnet-reid {command}")
    except USER_ERRORS as e:
        print("error: " + " ".join(str(e).split()), file=sys.stderr)
        return 2
    except SystemExit as e:  # --help (0), a usage error already printed (2), an interrupted run (75)
        if isinstance(e.code, str):
            print("error: " + " ".join(e.code.split()), file=sys.stderr)
            return 2
        return e.code or 0
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        print(f"cdnet-reid {__version__}")
        return 0
    if argv[0] not in COMMANDS:
        print(f"error: unknown command {argv[0]!r}; commands: {', '.join(COMMANDS)} "
              "(cdnet-reid --help describes them)", file=sys.stderr)
        return 2
    return run_command(argv[0], argv[1:])


if __name__ == "__main__":
    sys.exit(main())
