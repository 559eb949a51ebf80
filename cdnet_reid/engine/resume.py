"""Resuming a run from its checkpoint: the config check, the states (through
:meth:`Checkpointer.load_checkpoint`), the RNG states and the hooks still due for the epoch the
checkpoint ended."""

import logging
from collections.abc import Sequence

import torch

from ..config import CfgNode
from ..utils import comm
from ..utils.checkpoint import Checkpointer, CheckpointError, find_last_checkpoint, read_checkpoint
from ..utils.pretrain import load_pretrained

logger = logging.getLogger(__name__)

__all__ = ["ResumeMismatchError", "ResumeState", "check_resume_config", "check_resume_epoch", "config_differences",
           "finish_checkpointed_epoch", "restore_rng_state", "resume_from", "resume_or_initialise", "rng_state"]


class ResumeMismatchError(RuntimeError):
    """``--resume`` with a config that changes the model or the data stream of the checkpoint."""


class ResumeState:
    """What a resume continues with: ``start_iter`` and ``written_by`` (the ``state_key`` of the
    hook that wrote the checkpoint during ``after_epoch``, or None)."""

    def __init__(self, start_iter: int = 0, written_by: str | None = None):
        self.start_iter, self.written_by = start_iter, written_by


def config_differences(old: CfgNode, new: CfgNode) -> list[tuple[str, object, object]]:
    """``(key, old value, new value)`` for every leaf that differs between two config trees."""
    def flat(node, prefix=""):
        out = {}
        for k, v in node.items():
            if isinstance(v, dict):
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[prefix + k] = list(v) if isinstance(v, tuple) else v
        return out

    a, b = flat(old), flat(new)
    return [(k, a.get(k, "<absent>"), b.get(k, "<absent>")) for k in sorted(set(a) | set(b))
            if a.get(k, "<absent>") != b.get(k, "<absent>")]


def check_resume_config(stored: CfgNode, cfg: CfgNode, path: str, allow_changed: bool, *,
                        critical: Sequence[str], harmless: Sequence[str] = ()) -> None:
    """Report the config keys that differ from checkpoint ``path``'s; raise
    :class:`ResumeMismatchError` on a ``critical`` one (prefixes; minus the ``harmless`` ones)
    unless ``allow_changed``."""
    diffs = [d for d in config_differences(stored, cfg) if d[0] != "OUTPUT_DIR"]
    if not diffs:
        return
    critical = [d for d in diffs if d[0].startswith(tuple(critical)) and not d[0].startswith(tuple(harmless))]
    lines = "\n".join(f"  {k}: {a!r} -> {b!r}" + ("  (changes what is trained)" if (k, a, b) in critical else "")
                      for k, a, b in diffs)
    if critical and not allow_changed:
        raise ResumeMismatchError(
            f"--resume: the config differs from the checkpoint's ({path}) in keys that change the "
            f"model or the data stream:\n{lines}\nRestore them, start a new run (another "
            "OUTPUT_DIR, or --overwrite), or continue anyway with --resume-changed.")
    logger.warning("--resume: the config differs from the checkpoint's (%s):\n%s", path, lines)


def rng_state() -> dict:
    """This process's torch RNG states (CPU, and one per visible GPU: dropout & co.), as plain
    tensors."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict, device: torch.device | None = None) -> None:
    """Restore what :func:`rng_state` returned; restoring it makes a resume exact. The CUDA
    states are restored for the GPUs visible now that the checkpoint has one for; only a missing
    state of ``device`` (the GPU this process trains on) is an error, since its draws would
    differ."""
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if not cuda or not torch.cuda.is_available():
        return
    for index in range(min(len(cuda), torch.cuda.device_count())):
        torch.cuda.set_rng_state(cuda[index], index)
    if device is not None and device.type == "cuda":
        index = torch.cuda.current_device() if device.index is None else device.index
        if index >= len(cuda):
            raise CheckpointError(f"the checkpoint holds the CUDA RNG states of {len(cuda)} GPUs; this "
                                  f"process trains on cuda:{index}, whose random draws cannot be resumed")


def _restore_rng_states(states: list[dict] | None, device: torch.device) -> None:
    """Restore this rank's entry of the per-rank ``states`` of a checkpoint."""
    if not states:
        return
    world, rank = comm.get_world_size(), comm.get_rank()
    if len(states) != world:
        logger.warning("The checkpoint holds the RNG states of %d processes, this run has %d: "
                       "random draws (dropout) will differ from an uninterrupted run", len(states), world)
    restore_rng_state(states[rank % len(states)], device)


def check_resume_epoch(stored: dict, path: str, iters_per_epoch: int, allow_changed: bool) -> None:
    """Stop when checkpoint ``path`` counted another number of iterations per epoch than this
    run (same config, another rule, e.g. written before the P x K sampler's epoch was used):
    the LR steps and evaluations would move."""
    iteration, epoch = stored.get("iteration"), stored.get("epoch")
    if iteration is None or epoch is None or iteration // iters_per_epoch == epoch:
        return
    before = f" (about {iteration // epoch})" if epoch else ""
    message = (f"--resume: {path} was written at iteration {iteration} as epoch {epoch}, with another "
               f"number of iterations per epoch{before} than this run's {iters_per_epoch}")
    if not allow_changed:
        raise ResumeMismatchError(f"{message}; set SOLVER.ITERS_PER_EPOCH to the run's value, or "
                                  "continue anyway with --resume-changed")
    logger.warning("%s; continuing with %d", message, iters_per_epoch)


def resume_from(path: str, checkpointer: Checkpointer, cfg: CfgNode, *, allow_changed: bool,
                critical: Sequence[str], harmless: Sequence[str], device: torch.device,
                iters_per_epoch: int) -> ResumeState:
    """Continue from checkpoint ``path``: check its config against ``cfg`` (see
    :func:`check_resume_config`) and its epoch length against ``iters_per_epoch``, load the
    weights and every checkpointable with ``checkpointer.load_checkpoint``, restore the RNG
    states; return where to continue."""
    stored = read_checkpoint(path)
    if stored.get("config"):
        check_resume_config(CfgNode.load_cfg(stored["config"]), cfg, path, allow_changed,
                            critical=critical, harmless=harmless)
    check_resume_epoch(stored, path, iters_per_epoch, allow_changed)
    rest = checkpointer.load_checkpoint(stored, path)
    _restore_rng_states(rest.get("rng_states"), device)
    return ResumeState(int(rest.get("iteration", 0)), rest.get("written_by"))


def resume_or_initialise(cfg: CfgNode, checkpointer: Checkpointer, *, resume: bool, allow_changed: bool,
                         critical: Sequence[str], harmless: Sequence[str], device: torch.device,
                         iters_per_epoch: int) -> ResumeState:
    """With ``resume``: continue from the last checkpoint of ``OUTPUT_DIR`` (if any;
    :func:`find_last_checkpoint` falls back to the newest readable one) with :func:`resume_from`.
    Otherwise (or without a checkpoint) initialise ``checkpointer.model`` from
    ``MODEL.PRETRAIN_PATH`` (if set: matching non-classifier tensors), then load the weights of
    ``MODEL.WEIGHTS`` (if set, strictly), and start from iteration 0."""
    path = find_last_checkpoint(cfg.OUTPUT_DIR) if resume else None
    if path:
        state = resume_from(path, checkpointer, cfg, allow_changed=allow_changed, critical=critical,
                            harmless=harmless, device=device, iters_per_epoch=iters_per_epoch)
        logger.info("Resumed from %s at iteration %d", path, state.start_iter)
        if cfg.MODEL.PRETRAIN_PATH:
            logger.info("MODEL.PRETRAIN_PATH is not applied when resuming")
        return state
    if resume:
        logger.info("--resume: no checkpoint in %s, starting from scratch", cfg.OUTPUT_DIR)
    if cfg.MODEL.PRETRAIN_PATH:
        load_pretrained(checkpointer.model, cfg.MODEL.PRETRAIN_PATH)
    if cfg.MODEL.WEIGHTS:
        checkpointer.load(cfg.MODEL.WEIGHTS, checkpointables=[])
    return ResumeState()


def finish_checkpointed_epoch(trainer, resumed: ResumeState) -> None:
    """After a resume from a checkpoint written during the end of an epoch (by the hook whose
    ``state_key`` is ``resumed.written_by``), run the hooks after that one for that epoch, so the
    resumed run evaluates, keeps the best checkpoint and writes exactly as an uninterrupted one."""
    writer = trainer.hook_by_key(resumed.written_by) if resumed.written_by else None
    if writer is None or resumed.start_iter == 0:
        return
    trainer.iter = trainer.storage.iter = resumed.start_iter - 1
    for h in trainer.hooks[trainer.hooks.index(writer) + 1:]:
        h.after_epoch()
    trainer.iter = trainer.storage.iter = resumed.start_iter
