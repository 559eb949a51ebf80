"""The command line and the run setup shared by ``tools/``, ``projects/`` and the console entry
points: one argument parser, one config setup (:func:`setup_cfg`), one ``main``.

Projects register their components when imported (``projects/README.md``); every entry point takes
``--import-module`` (repeatable): a dotted module name, or a path to a package folder or a ``.py``
file (its parent folder is put on ``sys.path`` first), e.g.
``--import-module projects/MobileNetV2/mobilenetv2_reid``. Every ``add_*_config(cfg)`` function that
an imported module defines or re-exports is applied to the default config before the YAML file is
merged, as a project's own ``train_net.py`` does with ``extra_config``.
"""

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

import torch

from ..config import CfgNode, ConfigError, config_file_keys, get_cfg, override_keys
from ..config.packaged import resolve_config_file
from ..data.datasets.layout import DatasetLayoutError
from ..utils import comm
from ..utils.checkpoint import CheckpointError
from ..utils.env import collect_env_info, resolve_device, seed_all_rng, setup_cpu_allocator
from ..utils.file_io import InputFileError, PathManager, remove_stale_temp_files
from ..utils.logger import setup_logger
from ..utils.registry import lookup
from . import hooks
from .launch import DEFAULT_TIMEOUT, SilentProcessError, launch
from .run_record import (
    RunFolderError,
    RunFolderGuard,
    claim_output_dir,
    ensure_output_dir,
    resolve_seed,
    write_config,
    write_env,
)
from .runtimes import PRECISIONS, RUNTIMES
from .train_loop import EXIT_INTERRUPTED, TrainingInterrupted
from .trainer import TRAINER_REGISTRY, ResumeMismatchError

#: Errors caused by the command line, the config or the files it names (reported in one line).
#: (ConfigError covers the model's: a genotype file, a config contradicting a checkpoint.)
USER_ERRORS = (ConfigError, CheckpointError, RunFolderError, ResumeMismatchError, InputFileError,
               DatasetLayoutError)

logger = logging.getLogger(__name__)

__all__ = ["OneLineArgumentParser", "USER_ERRORS",
           "add_config_arguments", "default_argument_parser", "default_setup", "import_modules",
           "main", "run_main", "setup_cfg", "setup_tool_cfg"]


class OneLineArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors (unknown flag, missing or bad value) are one line
    starting with ``error:``, exit status 2 (the command line's error policy)."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def add_config_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``--config-file``, ``--import-module`` and the trailing ``KEY VALUE`` overrides: the
    arguments every entry point takes."""
    parser.add_argument("--config-file", default="", metavar="FILE",
                        help="the YAML config: a path, or the name of a shipped config (e.g. "
                             "Market/cdnet.yml; `cdnet-reid configs` lists them). Without it, a "
                             "tool that loads MODEL.WEIGHTS takes the model and its input from the "
                             "checkpoint")
    parser.add_argument("--import-module", action="append", default=[], metavar="MODULE",
                        help="module registering a project's components, as a dotted name or a "
                             "path to a package folder / .py file (repeatable), e.g. "
                             "projects/MobileNetV2/mobilenetv2_reid")
    parser.add_argument("opts", default=None, nargs=argparse.REMAINDER,
                        help="config overrides as KEY VALUE pairs, e.g. SOLVER.IMS_PER_BATCH 128 "
                             "(after every --option)")
    return parser


def add_runtime_arguments(parser, prefix: str = "") -> None:
    """``--runtime`` (torch: the checkpoint MODEL.WEIGHTS; onnxruntime, openvino: an exported
    file), ``--precision`` and ``--onnx FILE`` / ``--model-file FILE`` (the exported file; alone it
    implies ``--runtime onnxruntime``); ``prefix`` starts every help text."""
    parser.add_argument("--runtime", choices=RUNTIMES, default=None,
                        help=prefix + "inference runtime (default: torch, or onnxruntime with --onnx)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help=prefix + "inference precision (default auto: torch fp32, onnxruntime the file's, "
                             "openvino bf16 where the CPU has native bf16; int8 for a quantised file; logged)")
    parser.add_argument("--onnx", "--model-file", dest="onnx", default="", metavar="FILE",
                        help=prefix + "a file written by `cdnet-reid export` (.onnx fp32 or int8; for --runtime "
                             "openvino also an .xml IR or *_openvino_model folder; --model-file is the same flag)")


def default_argument_parser(description: str = "cdnet-reid training and evaluation",
                            prog: str | None = None, epilog: str | None = None) -> argparse.ArgumentParser:
    """The CLI of ``tools/train_net.py`` (and of every project's ``train_net.py``)."""
    p = OneLineArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=epilog or "Examples:\n"
               "  python tools/train_net.py --config-file configs/Market/cdnet.yml\n"
               "  python tools/train_net.py --config-file cfg.yml --resume\n"
               "  python tools/train_net.py --config-file cfg.yml --eval-only MODEL.WEIGHTS model.pth\n"
               "  python tools/train_net.py --config-file cfg.yml --num-gpus 2 SOLVER.IMS_PER_BATCH 128")
    p.add_argument("--resume", action="store_true",
                   help="continue from the last checkpoint in OUTPUT_DIR (else MODEL.WEIGHTS is loaded)")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in an OUTPUT_DIR that holds another run (its files are moved "
                        "into OUTPUT_DIR/overwritten-<time>/)")
    p.add_argument("--resume-changed", action="store_true",
                   help="with --resume: continue even though config keys that change the model or "
                        "the data stream differ from the checkpoint's")
    p.add_argument("--eval-only", action="store_true", help="evaluate MODEL.WEIGHTS and exit")
    add_runtime_arguments(p, prefix="evaluation only: ")
    p.add_argument("--num-gpus", type=int, default=1,
                   help="processes per machine (GPUs; gloo CPU processes when there is no GPU)")
    p.add_argument("--num-machines", type=int, default=1)
    p.add_argument("--machine-rank", type=int, default=0, help="rank of this machine (0-based)")
    # A port derived from the uid: an orphaned run shows up as "address in use".
    port = 2 ** 15 + 2 ** 14 + hash(os.getuid() if sys.platform != "win32" else 1) % 2 ** 14
    p.add_argument("--dist-url", default=f"tcp://127.0.0.1:{port}",
                   help="initialisation URL of torch.distributed ('auto' picks a free local port)")
    p.add_argument("--dist-timeout", type=_positive_seconds, metavar="SECONDS",
                   default=DEFAULT_TIMEOUT.total_seconds(),
                   help="with several processes: seconds a process may show no sign of life "
                        "(stopped, hung, its machine lost) before every process stops, naming it "
                        "(default: %(default)g)")
    return add_config_arguments(p)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def import_modules(specs: Sequence[str]) -> list[ModuleType]:
    """Import every module of ``specs`` (dotted names or paths, see the module docstring)."""
    modules = []
    for spec in specs:
        path = os.path.abspath(spec)
        if os.path.exists(path) or spec.endswith(".py") or os.sep in spec or "/" in spec:
            if not os.path.exists(path):
                raise InputFileError(f"--import-module {spec}: no such file or folder")
            parent, name = os.path.split(path.rstrip(os.sep))
            if name.endswith(".py"):
                name = name[:-3]
            if parent not in sys.path:
                sys.path.insert(0, parent)
            spec = name
        modules.append(importlib.import_module(spec))
    return modules


def _config_functions(modules: Sequence[ModuleType]) -> list[Callable[[CfgNode], None]]:
    """The ``add_*_config`` functions of ``modules`` (each once, in import order)."""
    fns: list[Callable] = []
    for mod in modules:
        for name in sorted(dir(mod)):
            fn = getattr(mod, name)
            if name.startswith("add_") and name.endswith("_config") and callable(fn) and fn not in fns:
                fns.append(fn)
    return fns


def _absolute_config_paths(cfg: CfgNode, config_dir: str, node: CfgNode | None = None) -> None:
    """A relative path in a YAML file that names a file next to that config file becomes absolute
    (e.g. ``MODEL.BACKBONE.GENOTYPE: my_genotype.json``), so a run does not depend on the working
    directory; every other value is left alone."""
    node = cfg if node is None else node
    for key, value in node.items():
        if isinstance(value, CfgNode):
            _absolute_config_paths(cfg, config_dir, value)
        elif isinstance(value, str) and value and not os.path.isabs(value):
            candidate = os.path.join(config_dir, value)
            if os.path.isfile(candidate):
                node[key] = candidate


def setup_cfg(args: argparse.Namespace, extra_config: Callable[[CfgNode], None] | None = None,
              *, freeze: bool = True) -> CfgNode:
    """The config of an entry point: defaults <- a project's keys (``extra_config`` and the
    ``add_*_config`` functions of ``--import-module``) <- YAML file <- ``KEY VALUE`` overrides."""
    modules = import_modules(getattr(args, "import_module", None) or [])
    cfg = get_cfg()
    for add_config in ([extra_config] if extra_config else []) + _config_functions(modules):
        add_config(cfg)
    if args.config_file:
        # a path on disk, else a config shipped with the package (e.g. Market/cdnet.yml)
        args.config_file = resolve_config_file(args.config_file)
        cfg.merge_from_file(args.config_file)
        _absolute_config_paths(cfg, os.path.dirname(os.path.abspath(args.config_file)))
    cfg.merge_from_list(list(args.opts or []))
    if modules:
        logger.info("Imported %s", ", ".join(m.__name__ for m in modules))
    if freeze:
        cfg.freeze()
    return cfg


def setup_tool_cfg(args: argparse.Namespace, *, freeze: bool = True) -> CfgNode:
    """:func:`setup_cfg` for the tools, which log to the console only (INFO) and keep no run
    record; also sets up the CPU allocator (:func:`~cdnet_reid.utils.env.setup_cpu_allocator`)."""
    setup_logger(name="cdnet_reid").setLevel(logging.INFO)
    setup_cpu_allocator()
    return setup_cfg(args, freeze=freeze)


def default_setup(cfg: CfgNode, args: argparse.Namespace) -> None:
    """Logging (console and ``OUTPUT_DIR/log.txt``), the CPU allocator
    (:func:`~cdnet_reid.utils.env.setup_cpu_allocator`, before anything big is allocated), the
    seed and the global torch flags of a run.

    The config must not be frozen yet: a drawn seed is written back into ``cfg.SEED``. The run
    record (config.yaml, env.txt) is written later, once the run has been built (:func:`run_main`).
    """
    output_dir = cfg.OUTPUT_DIR
    rank = comm.get_rank()
    if comm.is_main_process() and output_dir:
        PathManager.mkdirs(output_dir)
    comm.synchronize()
    for name in ("cdnet_reid", "fvcore"):
        setup_logger(output_dir, distributed_rank=rank, name=name)
    log = logging.getLogger("cdnet_reid")
    log.info("Rank of current process: %d. World size: %d", rank, comm.get_world_size())
    setup_cpu_allocator()
    log.info("Environment info:\n%s", collect_env_info())
    log.info("Command line arguments: %s", args)
    if getattr(args, "config_file", ""):
        with PathManager.open(args.config_file, "r") as f:
            log.info("Contents of args.config_file=%s:\n%s", args.config_file, f.read())
    cfg.SEED = resolve_seed(cfg, getattr(args, "resume", False))
    log.info("Running with full config:\n%s", cfg.dump())
    seed_all_rng(cfg.SEED + rank)
    select_device(cfg.MODEL.DEVICE)
    set_determinism(cfg)


def select_device(name: str) -> torch.device:
    """``MODEL.DEVICE`` resolved; a numbered GPU (``cuda:1``) becomes the current CUDA device, so
    that everything reading "the current device" (timing, memory, NCCL, DDP) reads that one.
    Several processes take their local rank's GPU (``launch``): a numbered GPU is then an error."""
    try:
        device = resolve_device(name)
    except RuntimeError as e:  # no CUDA, or not a device name
        raise ConfigError(str(e)) from None
    if device.type == "cuda" and device.index is not None:
        if comm.get_world_size() > 1:
            raise ConfigError(f"MODEL.DEVICE {name}: with {comm.get_world_size()} processes each takes its "
                              "local rank's GPU; use MODEL.DEVICE cuda (or auto)")
        torch.cuda.set_device(device)
    return device


def set_determinism(cfg: CfgNode) -> None:
    """``CUDNN_BENCHMARK`` and ``DETERMINISTIC``: with ``DETERMINISTIC`` every operation must have a
    deterministic implementation (an operation without one raises, it does not warn)."""
    torch.backends.cudnn.benchmark = cfg.CUDNN_BENCHMARK and not cfg.DETERMINISTIC
    if cfg.DETERMINISTIC:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True


def run_main(args: argparse.Namespace, trainer_cls: type | None = None,
             extra_config: Callable[[CfgNode], None] | None = None):
    """The body of every ``train_net.py``: set up, then evaluate (``--eval-only``) or train.

    The trainer is ``trainer_cls``, else the class registered in ``TRAINER_REGISTRY`` under
    ``TRAINER.NAME``. A training run owns its ``OUTPUT_DIR``: it refuses a folder holding another
    run's checkpoints (unless ``--resume`` or ``--overwrite``, which act only once the folder's
    lock is held), holds the lock while it runs and stops, with :class:`RunFolderError`, after the
    first iteration at whose end the folder is no longer its own (:class:`RunFolderGuard`); it
    writes the run record only once datasets and model have been built. Runs in each process
    of a distributed job (call it through :func:`launch`). Returns the evaluation results on the
    main process.
    """
    cfg = setup_cfg(args, extra_config, freeze=False)
    if trainer_cls is None:
        trainer_cls = lookup(TRAINER_REGISTRY, cfg.TRAINER.NAME, "TRAINER.NAME")
    if args.eval_only:
        comm.raise_if_any(_folder_error(cfg.OUTPUT_DIR))
        default_setup(cfg, args)
        cfg.freeze()
        if _evaluates_a_predictor(args):
            return _evaluate_predictor(cfg, args, trainer_cls)
        # the checkpoint defines the model and its input; a config file must agree with it
        model, cfg = trainer_cls.load_model_for_eval(
            cfg, resume=args.resume, config_keys=config_file_keys(args.config_file),
            explicit=override_keys(args.opts))
        # an evaluation must not overwrite the record of the training run in the same folder
        write_config(cfg, "config_eval.yaml")
        return trainer_cls.test(cfg, model)
    with claim_output_dir(cfg.OUTPUT_DIR, resume=args.resume,
                          overwrite=getattr(args, "overwrite", False)) as lock:
        if comm.is_main_process() and cfg.OUTPUT_DIR:
            for path in remove_stale_temp_files(cfg.OUTPUT_DIR):
                logger.info("Removed %s, left by an interrupted write", path)
        default_setup(cfg, args)
        cfg.freeze()
        trainer = trainer_cls(cfg)
        if cfg.OUTPUT_DIR:
            trainer.register_hooks([RunFolderGuard(lock)], before=hooks.PeriodicCheckpointer)
        trainer.resume_or_load(resume=args.resume,
                               allow_changed=getattr(args, "resume_changed", False))
        # written once the datasets and the model have been built: a command that fails at
        # start-up leaves the folder as it was
        write_config(trainer.cfg)
        write_env(cfg.OUTPUT_DIR, collect_env_info())
        return trainer.train()


def _evaluates_a_predictor(args) -> bool:
    """Whether ``--eval-only`` runs another runtime or precision than the trainer's fp32 model."""
    return bool(getattr(args, "onnx", "")) or getattr(args, "runtime", None) not in (None, "torch") or \
        getattr(args, "precision", "auto") not in ("auto", "fp32")


def _evaluate_predictor(cfg, args, trainer_cls):
    """Evaluate the predictor of ``--runtime`` / ``--precision`` / ``--onnx`` (see
    :func:`~cdnet_reid.engine.runtimes.create_predictor`) on ``DATASETS.TESTS``: the test loader
    feeds it the test transform's pixels; its embedding holds the flip average."""
    from .runtimes import PredictorModule, create_predictor

    runtime = args.runtime or ("onnxruntime" if args.onnx else "torch")
    if args.resume:
        raise ConfigError("--resume evaluates the trainer's fp32 model: give MODEL.WEIGHTS for --runtime / "
                          "--precision")
    if runtime == "torch" and args.onnx:
        raise ConfigError(f"--onnx {args.onnx} runs in onnxruntime or openvino: leave out --runtime torch")
    predictor = create_predictor(cfg, runtime=runtime, precision=args.precision, model_file=args.onnx,
                                 config_keys=config_file_keys(args.config_file), explicit=override_keys(args.opts))
    cfg = predictor.cfg.clone()
    write_config(cfg, "config_eval.yaml")
    cfg.defrost()
    cfg.TEST.FLIP.ENABLED = False  # the predictor's embedding already averages the mirror
    cfg.freeze()
    return trainer_cls.test(cfg, PredictorModule(predictor))


def _folder_error(output_dir: str):
    try:
        ensure_output_dir(output_dir)
    except RunFolderError as e:
        return e
    return None


def main(argv: Sequence[str] | None = None, *, trainer_cls: type | None = None,
         extra_config: Callable[[CfgNode], None] | None = None,
         description: str = "cdnet-reid training and evaluation", prog: str | None = None,
         epilog: str | None = None):
    """Parse ``argv`` (default: ``sys.argv[1:]``) and :func:`launch` :func:`run_main` in every
    process: the whole of a ``train_net.py``. ``trainer_cls`` and ``extra_config`` must be
    importable (module-level) objects, since the worker processes are spawned.

    Every run, of one process or several (spawned, torchrun, several machines), ends with the same
    status: 0 when done; 75 after SIGTERM/SIGINT, with the interrupted checkpoint written; 2 with
    one ``error:`` line for bad input met by any process; 1 with one line when a process fell
    silent (``--dist-timeout``); 1 with a traceback for an internal error."""
    parser = default_argument_parser(description, prog, epilog)
    args = parser.parse_args(argv)
    if not args.eval_only and _evaluates_a_predictor(args):
        parser.error("--runtime, --precision and --onnx choose what an evaluation runs: use them with "
                     "cdnet-reid eval (--eval-only)")
    try:
        return launch(run_main, args.num_gpus, num_machines=args.num_machines,
                      machine_rank=args.machine_rank, dist_url=args.dist_url,
                      args=(args, trainer_cls, extra_config), timeout=args.dist_timeout)
    except TrainingInterrupted as e:
        logger.warning("%s", e)
        raise SystemExit(EXIT_INTERRUPTED) from None
    except USER_ERRORS as e:  # bad input: one line, no traceback
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except SilentProcessError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
