"""Command line, run setup and the shared ``main`` used by ``tools/`` and ``projects/``."""

import argparse
import logging
import os
import sys
from typing import Callable, Optional, Type

import torch

from ..config import CfgNode, get_cfg
from ..utils import comm
from ..utils.env import collect_env_info, seed_all_rng
from ..utils.file_io import PathManager
from ..utils.logger import setup_logger

logger = logging.getLogger(__name__)


def default_argument_parser(description: str = "cdnet-reid training and evaluation") -> argparse.ArgumentParser:
    """The CLI of ``tools/train_net.py`` (and of every project's ``train_net.py``)."""
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Examples:\n"
                                       "  python tools/train_net.py --config-file configs/Market/cdnet.yml\n"
                                       "  python tools/train_net.py --config-file cfg.yml --eval-only MODEL.WEIGHTS model.pth\n"
                                       "  python tools/train_net.py --config-file cfg.yml --num-gpus 2 SOLVER.IMS_PER_BATCH 128")
    p.add_argument("--config-file", default="", metavar="FILE", help="path to the YAML config")
    p.add_argument("--resume", action="store_true",
                   help="continue from the last checkpoint in OUTPUT_DIR (else MODEL.WEIGHTS is loaded)")
    p.add_argument("--eval-only", action="store_true", help="evaluate MODEL.WEIGHTS and exit")
    p.add_argument("--num-gpus", type=int, default=1,
                   help="processes per machine (GPUs; gloo CPU processes when there is no GPU)")
    p.add_argument("--num-machines", type=int, default=1)
    p.add_argument("--machine-rank", type=int, default=0, help="rank of this machine (0-based)")
    # A port derived from the uid: an orphaned run shows up as "address in use".
    port = 2 ** 15 + 2 ** 14 + hash(os.getuid() if sys.platform != "win32" else 1) % 2 ** 14
    p.add_argument("--dist-url", default=f"tcp://127.0.0.1:{port}",
                   help="initialisation URL of torch.distributed ('auto' picks a free local port)")
    p.add_argument("opts", default=None, nargs=argparse.REMAINDER,
                   help="config overrides as KEY VALUE pairs, e.g. SOLVER.BASE_LR 0.01")
    return p


def _resolve_seed(cfg: CfgNode, resume: bool) -> int:
    """``cfg.SEED`` if >= 0; a resumed run reuses the seed of its first start; else a fresh one."""
    if cfg.SEED >= 0:
        return cfg.SEED
    previous = os.path.join(cfg.OUTPUT_DIR, "config.yaml")
    seed = -1
    if resume and PathManager.exists(previous):
        seed = CfgNode.load_yaml_with_base(previous).get("SEED", -1)
    if seed < 0:
        seed = int.from_bytes(os.urandom(4), "little") % 2 ** 31
    return int(comm.all_gather(seed)[0])  # every rank uses rank 0's seed


def default_setup(cfg: CfgNode, args: argparse.Namespace) -> None:
    """Logging, seeding and the run record in ``OUTPUT_DIR`` (config.yaml, env.txt, the log).

    The config must not be frozen yet: a drawn seed is written back into ``cfg.SEED``.
    """
    output_dir = cfg.OUTPUT_DIR
    rank = comm.get_rank()
    if comm.is_main_process() and output_dir:
        PathManager.mkdirs(output_dir)
    comm.synchronize()
    for name in ("cdnet_reid", "fvcore"):
        setup_logger(output_dir, distributed_rank=rank, name=name)
    log = setup_logger(output_dir, distributed_rank=rank, name="cdnet_reid")
    log.info("Rank of current process: %d. World size: %d", rank, comm.get_world_size())
    env = collect_env_info()
    log.info("Environment info:\n%s", env)
    log.info("Command line arguments: %s", args)
    if getattr(args, "config_file", ""):
        with PathManager.open(args.config_file, "r") as f:
            log.info("Contents of args.config_file=%s:\n%s", args.config_file, f.read())
    cfg.SEED = _resolve_seed(cfg, getattr(args, "resume", False))
    log.info("Running with full config:\n%s", cfg.dump())
    if comm.is_main_process() and output_dir:
        # an evaluation must not overwrite the record of the training run in the same folder
        write_config(cfg, "config_eval.yaml" if getattr(args, "eval_only", False) else "config.yaml")
        with PathManager.open(os.path.join(output_dir, "env.txt"), "w") as f:
            f.write(env + "\n")
    seed_all_rng(cfg.SEED + rank)
    torch.backends.cudnn.benchmark = cfg.CUDNN_BENCHMARK and not cfg.DETERMINISTIC
    if cfg.DETERMINISTIC:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True


def write_config(cfg: CfgNode, name: str = "config.yaml") -> str:
    """Write the merged config to ``OUTPUT_DIR/<name>`` (main process); return the path."""
    path = os.path.join(cfg.OUTPUT_DIR, name)
    if comm.is_main_process():
        PathManager.mkdirs(cfg.OUTPUT_DIR)
        with PathManager.open(path, "w") as f:
            f.write(cfg.dump())
    return path


def setup_cfg(args: argparse.Namespace, extra_config: Optional[Callable[[CfgNode], None]] = None) -> CfgNode:
    """Defaults (+ a project's keys) <- YAML file <- command-line overrides; then setup; frozen."""
    cfg = get_cfg()
    if extra_config is not None:
        extra_config(cfg)
    if args.config_file:
        cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts or [])
    _resolve_relative_paths(cfg, os.path.dirname(os.path.abspath(args.config_file)) if args.config_file else None)
    default_setup(cfg, args)
    cfg.freeze()
    return cfg


def _resolve_relative_paths(cfg: CfgNode, config_dir: Optional[str]) -> None:
    """A relative ``MODEL.BACKBONE.GENOTYPE`` file found next to the config file becomes absolute,
    so runs do not depend on the working directory (shipped names are left alone)."""
    geno = cfg.MODEL.BACKBONE.get("GENOTYPE", "")
    if config_dir and geno and not os.path.isabs(geno):
        candidate = os.path.join(config_dir, geno)
        if os.path.isfile(candidate):
            cfg.MODEL.BACKBONE.GENOTYPE = candidate


def run_main(args: argparse.Namespace, trainer_cls: Optional[Type] = None,
             extra_config: Optional[Callable[[CfgNode], None]] = None):
    """The body of every ``train_net.py``: set up, then evaluate (``--eval-only``) or train.

    Runs in each process of a distributed job (call it through :func:`launch`).
    Returns the evaluation results on the main process.
    """
    from .trainer import DefaultTrainer

    cfg = setup_cfg(args, extra_config)
    if trainer_cls is None:
        if cfg.SEARCH.ENABLED:
            from ..search import SearchTrainer
            trainer_cls = SearchTrainer
        else:
            trainer_cls = DefaultTrainer
    if args.eval_only:
        model = trainer_cls.build_model_for_eval(cfg, resume=args.resume)
        return trainer_cls.test(cfg, model)
    trainer = trainer_cls(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()
