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
from collections.abc import Iterator, Mapping, Sequence

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
def stop_on_signals(flag: dict[str, int], signals=(signal.SIGTERM, signal.SIGINT)) -> Iterator[None]:
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

    A hook with state (:meth:`state_dict`), or one that writes checkpoints, names its entry in
    checkpoints with ``state_key`` (chosen by the hook, unique among the trainer's hooks).
    """

    trainer: "TrainerBase" = None
    state_key: str | None = None

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
        self._hooks: list[HookBase] = []
        self.iter = self.start_iter = self.max_iter = 0
        self.iters_per_epoch = 1
        #: iterations between the points where the processes agree (metrics, stop signal)
        self.sync_period = 1
        self.storage: EventStorage | None = None

    @property
    def epoch(self) -> int:
        return self.iter // self.iters_per_epoch

    @property
    def max_epoch(self) -> int:
        return self.max_iter // self.iters_per_epoch

    def register_hooks(self, hooks: Sequence[HookBase | None], *,
                       before: type[HookBase] | None = None) -> None:
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
    def hooks(self) -> list[HookBase]:
        return list(self._hooks)

    def train(self, start_iter: int, max_iter: int) -> None:
        logger.info("Starting training from iteration %d (epoch %d)", start_iter,
                    start_iter // self.iters_per_epoch + 1)
        self.iter = self.start_iter = start_iter
        self.max_iter = max_iter
        stop: dict[str, int] = {}
        with EventStorage(start_iter) as self.storage, stop_on_signals(stop):
            try:
                self.before_train()
                for self.iter in range(start_iter, max_iter):
                    self.storage.iter = self.iter
                    if self.iter % self.iters_per_epoch == 0 or self.iter == start_iter:
                        self.before_epoch()
                    self.before_step()
                    self.run_step()
                    signum = self.synchronize(stop.get("signum", 0)) if self.sync_due() else 0
                    self.after_step()
                    if (self.iter + 1) % self.iters_per_epoch == 0:
                        self.after_epoch()
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

    def sync_due(self) -> bool:
        """Whether the processes agree after this iteration: every ``sync_period`` iterations,
        at the end of every epoch and after the last iteration."""
        done = self.iter + 1
        return done % self.sync_period == 0 or done % self.iters_per_epoch == 0 or done == self.max_iter

    def synchronize(self, signum: int) -> int:
        """The processes agree after this iteration (one collective): returns the stop signal any
        of them received (0: none), so that all stop at the same iteration."""
        return comm.all_reduce_max(signum)

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

    def hook_by_key(self, key: str) -> HookBase | None:
        """The hook whose ``state_key`` is ``key`` (None if there is none)."""
        return next((h for h in self._hooks if h.state_key == key), None)

    def state_dict(self) -> dict:
        """Hook states by their ``state_key`` (plain data)."""
        states = {}
        for h in self._hooks:
            state = h.state_dict()
            if not state:
                continue
            if not h.state_key:
                raise ValueError(f"hook {type(h).__name__} has state but no state_key to store it under")
            if h.state_key in states:
                raise ValueError(f"two hooks store their state under {h.state_key!r}")
            states[h.state_key] = state
        return {"hooks": states}

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.get("hooks", {}).items():
            hook = self.hook_by_key(key)
            if hook is None:
                logger.warning("Checkpoint has state for hook %r, which this trainer lacks", key)
            else:
                hook.load_state_dict(value)


def amp_dtype(device: torch.device) -> torch.dtype:
    """The autocast data type of ``SOLVER.AMP`` on ``device``: fp16 on CUDA, bf16 on the CPU."""
    return torch.float16 if device.type == "cuda" else torch.bfloat16


class SimpleTrainer(TrainerBase):
    """One step = next batch -> forward -> sum of losses -> backward -> (clip) -> optimizer step.

    With ``amp`` the forward runs under ``torch.autocast`` (fp16 with a ``GradScaler`` on CUDA,
    bf16 without scaling on CPU). To change the step, wrap the loader, model or optimizer, or
    subclass and override ``run_step``.
    """

    def __init__(self, model: nn.Module, data_loader, optimizer: torch.optim.Optimizer, *,
                 amp: bool = False, grad_clip: dict | None = None):
        super().__init__()
        model.train()
        self.model = model
        self.data_loader = data_loader
        self._iterators: dict[int, Iterator] = {}
        self.optimizer = optimizer
        self.amp = amp
        self.device = next(model.parameters()).device
        self.grad_scaler = (torch.amp.GradScaler("cuda") if amp and self.device.type == "cuda"
                            else None)
        if amp and self.device.type == "cpu":
            logger.warning("SOLVER.AMP on the CPU: the forward runs in bf16 (8-bit mantissa). For CDNet it "
                           "measured slower than fp32 and trained to a lower mAP (README, \"CPU speed\")")
        self.grad_clip = grad_clip
        self._pending_metrics: list[tuple] = []  # (iteration, data time, {prefix: losses})

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
        self.write_metrics(loss_dict, data_time)  # published (and checked) at the next synchronize

        self.optimizer.zero_grad(set_to_none=True)
        self.backward_and_step(losses, self.optimizer)

    def forward_losses(self, data) -> dict[str, torch.Tensor]:
        """The model's loss dict for one batch (under autocast when AMP is on)."""
        with torch.autocast(self.device.type, dtype=amp_dtype(self.device), enabled=self.amp):
            loss_dict = self.model(data)
        if isinstance(loss_dict, torch.Tensor):
            loss_dict = {"total_loss": loss_dict}
        return loss_dict

    def backward_and_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                          params: Sequence[torch.Tensor] | None = None) -> None:
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
                      prefixed: Mapping[str, Mapping[str, torch.Tensor]] | None = None) -> None:
        """Record this step's losses and data time, once per step; ``prefixed`` adds further loss
        dicts under a name prefix (e.g. ``{"arch/": ...}``), each with its own ``<prefix>total_loss``.

        They are published at the next :meth:`synchronize` (every ``sync_period`` iterations): the
        losses averaged over ranks, the data time the max over ranks, each at its own iteration.
        A non-finite total raises ``FloatingPointError`` there, naming the iteration and every
        loss term, so a diverged run stops loudly instead of training on NaNs.
        """
        groups = {"": loss_dict, **(prefixed or {})}
        self._pending_metrics.append((self.iter, data_time, {
            prefix: {k: v.detach() for k, v in d.items()} for prefix, d in groups.items()}))

    def synchronize(self, signum: int) -> int:
        """Publish the recorded metrics and agree on the stop signal, in one collective."""
        local = [(it, dt, {p: {k: float(v) for k, v in d.items()} for p, d in groups.items()})
                 for it, dt, groups in self._pending_metrics]
        self._pending_metrics = []
        gathered = comm.all_gather((local, signum)) if comm.get_world_size() > 1 else [(local, signum)]
        storage = get_event_storage()
        for records in zip(*(g[0] for g in gathered)):  # one iteration, every rank
            it = records[0][0]
            storage.put_scalar("data_time", max(r[1] for r in records), cur_iter=it)
            for prefix, first in records[0][2].items():
                terms = {prefix + k: sum(r[2][prefix][k] for r in records) / len(records) for k in first}
                total = sum(terms.values())
                if not all(math.isfinite(v) for v in terms.values()):
                    raise FloatingPointError(
                        f"Loss became infinite or NaN at iteration {it} (epoch {it // self.iters_per_epoch + 1}): "
                        f"{prefix + 'total_loss'}={total}, terms: {terms}")
                storage.put_scalar(f"{prefix}total_loss", total, cur_iter=it)
                storage.put_scalars(**terms, cur_iter=it)
        return max(g[1] for g in gathered)

    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.grad_scaler is not None:
            state["grad_scaler"] = self.grad_scaler.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if self.grad_scaler is not None and "grad_scaler" in state:
            self.grad_scaler.load_state_dict(state["grad_scaler"])
