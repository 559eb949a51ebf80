"""The training loop: hooks, a minimal trainer base, and the one-step trainer (with AMP).

``SimpleTrainer.run_step`` is the only place that knows what one optimisation step is. Everything
else (LR, checkpoints, evaluation, logging) is a hook.
"""

import contextlib
import logging
import math
import signal
import threading
import time
import weakref
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Type

import torch
from torch import nn

from ..utils import comm
from ..utils.events import EventStorage, get_event_storage

logger = logging.getLogger(__name__)

#: Exit status of a run stopped by SIGTERM/SIGINT after writing a checkpoint (EX_TEMPFAIL: "try
#: again", i.e. ``--resume``).
EXIT_INTERRUPTED = 75


class TrainingInterrupted(Exception):
    """Training stopped on a signal after finishing an iteration (and, in ``DefaultTrainer``,
    writing a checkpoint that ``--resume`` continues exactly)."""

    def __init__(self, signum: int, iteration: int, checkpoint: str = ""):
        self.signum, self.iteration, self.checkpoint = signum, iteration, checkpoint
        where = f"; checkpoint {checkpoint}" if checkpoint else ""
        super().__init__(f"Stopped by {signal.Signals(signum).name} after iteration {iteration}"
                         f"{where}; continue with --resume")

    def __reduce__(self):  # travels from a worker process to the launching one
        return type(self), (self.signum, self.iteration, self.checkpoint)


@contextlib.contextmanager
def stop_on_signals(flag: Dict[str, int], signals=(signal.SIGTERM, signal.SIGINT)) -> Iterator[None]:
    """While active, SIGTERM/SIGINT only record themselves in ``flag["signum"]`` (the loop stops at
    the end of the iteration); a second SIGINT interrupts at once. Previous handlers come back on
    exit. Outside the main thread (where Python cannot install handlers) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, _frame):
        if flag.get("signum") and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag["signum"] = signum
        logger.warning("Received %s: stopping after this iteration", signal.Signals(signum).name)

    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class HookBase:
    """Extension point of the loop. Methods run in hook-list order; ``self.trainer`` is a weak
    proxy to the trainer, set by ``register_hooks``. Read ``trainer.iter``, ``trainer.epoch``,
    ``trainer.max_iter``, ``trainer.iters_per_epoch`` and ``trainer.storage``; take everything
    else through the constructor.
    """

    trainer: "TrainerBase" = None

    def before_train(self): pass
    def after_train(self): pass
    def before_epoch(self): pass
    def after_epoch(self): pass
    def before_step(self): pass
    def after_step(self): pass

    def state_dict(self) -> dict:
        """Hook state saved in checkpoints (plain data); empty by default."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class TrainerBase:
    """Iteration loop with epochs and hooks.

    ``iter`` runs from ``start_iter`` to ``max_iter - 1``; epoch ``e`` (0-based) covers iterations
    ``[e * iters_per_epoch, (e + 1) * iters_per_epoch)``. After a completed run ``iter == max_iter``.
    """

    def __init__(self):
        self._hooks: List[HookBase] = []
        self.iter = self.start_iter = self.max_iter = 0
        self.iters_per_epoch = 1
        self.storage: Optional[EventStorage] = None

    @property
    def epoch(self) -> int:
        return self.iter // self.iters_per_epoch

    @property
    def max_epoch(self) -> int:
        return self.max_iter // self.iters_per_epoch

    def register_hooks(self, hooks: Sequence[Optional[HookBase]], *,
                       before: Optional[Type[HookBase]] = None) -> None:
        """Append ``hooks`` (None entries are ignored), or insert them before the first hook of
        type ``before`` (e.g. ``before=PeriodicWriter`` so that their metrics get written)."""
        hooks = [h for h in hooks if h is not None]
        for h in hooks:
            if not isinstance(h, HookBase):
                raise TypeError(f"{h!r} is not a HookBase")
            h.trainer = weakref.proxy(self)
        pos = len(self._hooks)
        if before is not None:
            pos = next((i for i, h in enumerate(self._hooks) if isinstance(h, before)), pos)
        self._hooks[pos:pos] = hooks

    @property
    def hooks(self) -> List[HookBase]:
        return list(self._hooks)

    def train(self, start_iter: int, max_iter: int) -> None:
        logger.info("Starting training from iteration %d (epoch %d)", start_iter,
                    start_iter // self.iters_per_epoch + 1)
        self.iter = self.start_iter = start_iter
        self.max_iter = max_iter
        stop: Dict[str, int] = {}
        with EventStorage(start_iter) as self.storage, stop_on_signals(stop):
            try:
                self.before_train()
                for self.iter in range(start_iter, max_iter):
                    self.storage.iter = self.iter
                    if self.iter % self.iters_per_epoch == 0 or self.iter == start_iter:
                        self.before_epoch()
                    self.before_step()
                    self.run_step()
                    self.after_step()
                    if (self.iter + 1) % self.iters_per_epoch == 0:
                        self.after_epoch()
                    signum = _agreed_signal(stop.get("signum", 0))
                    if signum and self.iter + 1 < max_iter:
                        raise TrainingInterrupted(signum, self.iter + 1, self.on_interrupt())
                self.iter = max_iter  # tells hooks that training completed
            except TrainingInterrupted:
                raise
            except Exception:
                logger.exception("Exception during training:")
                raise
            finally:
                self.after_train()

    def on_interrupt(self) -> str:
        """Called on every rank when a signal stops training after iteration ``self.iter``;
        returns the checkpoint written (none here; ``DefaultTrainer`` writes one)."""
        return ""

    def _call(self, name: str) -> None:
        for h in self._hooks:
            getattr(h, name)()

    def before_train(self): self._call("before_train")
    def after_train(self):
        self.storage.iter = self.iter
        self._call("after_train")
    def before_epoch(self): self._call("before_epoch")
    def after_epoch(self): self._call("after_epoch")
    def before_step(self): self._call("before_step")
    def after_step(self): self._call("after_step")

    def run_step(self) -> None:
        raise NotImplementedError("subclasses define one training iteration in run_step()")

    def state_dict(self) -> dict:
        """Hook states, by hook class name (plain data)."""
        hooks = {type(h).__qualname__: h.state_dict() for h in self._hooks}
        return {"hooks": {k: v for k, v in hooks.items() if v}}

    def load_state_dict(self, state: dict) -> None:
        for name, value in state.get("hooks", {}).items():
            matching = [h for h in self._hooks if type(h).__qualname__ == name]
            if not matching:
                logger.warning("Checkpoint has state for hook %s, which this trainer lacks", name)
            for h in matching:
                h.load_state_dict(value)


def _agreed_signal(signum: int) -> int:
    """The signal any rank received (all ranks stop at the same iteration)."""
    return comm.all_reduce_max(signum)


def _amp_dtype(device: torch.device) -> torch.dtype:
    return torch.float16 if device.type == "cuda" else torch.bfloat16


class SimpleTrainer(TrainerBase):
    """One step = next batch -> forward -> sum of losses -> backward -> (clip) -> optimizer step.

    With ``amp`` the forward runs under ``torch.autocast`` (fp16 with a ``GradScaler`` on CUDA,
    bf16 without scaling on CPU). To change the step, wrap the loader, model or optimizer, or
    subclass and override ``run_step``.
    """

    def __init__(self, model: nn.Module, data_loader, optimizer: torch.optim.Optimizer, *,
                 amp: bool = False, grad_clip: Optional[Dict] = None):
        super().__init__()
        model.train()
        self.model = model
        self.data_loader = data_loader
        self._iterators: Dict[int, Iterator] = {}
        self.optimizer = optimizer
        self.amp = amp
        self.device = next(model.parameters()).device
        self.grad_scaler = (torch.amp.GradScaler("cuda") if amp and self.device.type == "cuda"
                            else None)
        self.grad_clip = grad_clip

    def next_batch(self, loader=None):
        """The next batch of ``loader`` (default: the training loader). Its iterator is created
        at the first call, so that a resume can reposition the loader's stream before."""
        loader = self.data_loader if loader is None else loader
        if id(loader) not in self._iterators:
            self._iterators[id(loader)] = iter(loader)
        return next(self._iterators[id(loader)])

    def run_step(self) -> None:
        start = time.perf_counter()
        data = self.next_batch()
        data_time = time.perf_counter() - start

        loss_dict = self.forward_losses(data)
        losses = sum(loss_dict.values())
        self.write_metrics(loss_dict, data_time)  # raises on a non-finite loss, before the update

        self.optimizer.zero_grad(set_to_none=True)
        self.backward_and_step(losses, self.optimizer)

    def forward_losses(self, data) -> Dict[str, torch.Tensor]:
        """The model's loss dict for one batch (under autocast when AMP is on)."""
        with torch.autocast(self.device.type, dtype=_amp_dtype(self.device), enabled=self.amp):
            loss_dict = self.model(data)
        if isinstance(loss_dict, torch.Tensor):
            loss_dict = {"total_loss": loss_dict}
        return loss_dict

    def backward_and_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                          params: Optional[Sequence[torch.Tensor]] = None) -> None:
        """Backward ``loss``, clip the gradients of ``params`` (default: the optimizer's), step."""
        if self.grad_scaler is not None:
            self.grad_scaler.scale(loss).backward()
            self.grad_scaler.unscale_(optimizer)
            self._clip(optimizer, params)
            self.grad_scaler.step(optimizer)
            self.grad_scaler.update()
        else:
            loss.backward()
            self._clip(optimizer, params)
            optimizer.step()

    def _clip(self, optimizer, params) -> None:
        if not self.grad_clip:
            return
        if params is None:
            params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        if self.grad_clip["type"] == "value":
            torch.nn.utils.clip_grad_value_(params, self.grad_clip["value"])
        else:
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip["value"], self.grad_clip["norm_type"])

    def write_metrics(self, loss_dict: Mapping[str, torch.Tensor], data_time: float,
                      prefix: str = "") -> None:
        """Publish the losses (averaged over ranks) and the data time (max over ranks).

        Raises ``FloatingPointError`` naming the iteration and every loss term when the total is
        not finite, so a diverged run stops loudly instead of training on NaNs.
        """
        metrics = {k: float(v.detach()) for k, v in loss_dict.items()}
        metrics["data_time"] = data_time
        all_metrics = comm.all_gather(metrics) if comm.get_world_size() > 1 else [metrics]
        data_time = max(m.pop("data_time") for m in all_metrics)
        avg = {k: sum(m[k] for m in all_metrics) / len(all_metrics) for k in all_metrics[0]}
        total = sum(avg.values())
        if not all(math.isfinite(v) for v in avg.values()):
            raise FloatingPointError(
                f"Loss became infinite or NaN at iteration {self.iter} (epoch {self.epoch + 1}): "
                f"{prefix + 'total_loss'}={total}, terms: {avg}")
        storage = get_event_storage()
        storage.put_scalar(f"{prefix}data_time", data_time)
        storage.put_scalar(f"{prefix}total_loss", total)
        storage.put_scalars(**{f"{prefix}{k}": v for k, v in avg.items()})

    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.grad_scaler is not None:
            state["grad_scaler"] = self.grad_scaler.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if self.grad_scaler is not None and "grad_scaler" in state:
            self.grad_scaler.load_state_dict(state["grad_scaler"])


def rng_state() -> dict:
    """This process's torch RNG states (CPU and CUDA: dropout & co.), as plain tensors."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned; restoring it makes a resume exact."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        try:
            torch.cuda.set_rng_state_all(state["cuda"])
        except RuntimeError as e:
            logger.warning("Could not restore the CUDA RNG state (different GPUs?): %s", e)
