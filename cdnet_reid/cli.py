"""``cdnet-reid <command> [options] [KEY VALUE ...]``: the console entry point of an installed
package, the same code as ``tools/*.py``.

    cdnet-reid train --config-file configs/Market/cdnet.yml
    cdnet-reid eval --config-file configs/Market/cdnet.yml MODEL.WEIGHTS model.pth
    cdnet-reid complexity --config-file configs/Market/cdnet.yml
    cdnet-reid benchmark --config-file configs/Market/cdnet.yml --compare
    cdnet-reid extract --input crops/ --output feats.npy MODEL.WEIGHTS model.pth
    cdnet-reid export --output model.onnx MODEL.WEIGHTS model.pth
    cdnet-reid search-gallery --query q/ --gallery g/ --output results.csv MODEL.WEIGHTS model.pth
"""

import importlib
import sys
import warnings
from typing import Optional, Sequence

#: command -> (module, function, summary); every function takes ``(argv, prog)``.
COMMANDS = {
    "train": ("cdnet_reid.cli", "train", "train (or search, per TRAINER.NAME) from a config"),
    "eval": ("cdnet_reid.cli", "evaluate", "evaluate MODEL.WEIGHTS on DATASETS.TESTS (train --eval-only)"),
    "complexity": ("cdnet_reid.apps.complexity", "main", "parameters and MACs of a config's model"),
    "benchmark": ("cdnet_reid.apps.benchmark", "main",
                  "inference / training images/s of a config's model (--compare: fast paths, ONNX)"),
    "extract": ("cdnet_reid.apps.extract", "main",
                "embed a folder or list of crops into .npy / .npz / .csv features"),
    "export": ("cdnet_reid.apps.export", "main",
               "export the model to ONNX (fp32, --int8) and check it in onnxruntime"),
    "latency-table": ("cdnet_reid.apps.latency_table", "main", "latency, MACs, params of every candidate block"),
    "search-gallery": ("cdnet_reid.apps.search_gallery", "main",
                       "rank a gallery folder for every query crop (CSV/JSON, pictures, FAISS)"),
}


def train(argv: Sequence[str], prog: str):
    import cdnet_reid.search  # noqa: F401  (registers SearchTrainer)
    from cdnet_reid.engine import main

    return main(list(argv), prog=prog)


def evaluate(argv: Sequence[str], prog: str):
    return train(["--eval-only", *argv], prog)


def _usage() -> str:
    lines = [__doc__.strip(), "", "commands:"]
    lines += [f"  {name:<15} {summary}" for name, (_, _, summary) in COMMANDS.items()]
    return "\n".join(lines + ["", "cdnet-reid <command> --help shows the options of a command."])


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] not in COMMANDS:
        print(f"cdnet-reid: unknown command {argv[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit deprecation noise from fvcore
    module, function, _ = COMMANDS[argv[0]]
    getattr(importlib.import_module(module), function)(argv[1:], f"cdnet-reid {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
