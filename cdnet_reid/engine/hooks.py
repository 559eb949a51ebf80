"""The standard hooks. None reads the config: each takes what it needs in its constructor."""

import datetime
import logging
import math
import os
import re
import time
from collections.abc import Callable

import torch
from fvcore.common.timer import Timer

from ..evaluation.testing import flatten_results_dict
from ..utils import comm
from ..utils.checkpoint import Checkpointer
from ..utils.events import EventWriter
from .train_loop import HookBase

logger = logging.getLogger(__name__)

__all__ = ["training_state", "CallbackHook", "IterationTimer", "LRScheduler", "PeriodicCheckpointer",
           "EvalHook", "BestCheckpointer", "PeriodicWriter", "PlotTrainingCurves"]


class CallbackHook(HookBase):
    """Runs user callables ``fn(trainer)`` at the chosen points of the loop."""

    def __init__(self, *, before_train=None, after_train=None, before_epoch=None, after_epoch=None,
                 before_step=None, after_step=None):
        self._fns = dict(before_train=before_train, after_train=after_train,
                         before_epoch=before_epoch, after_epoch=after_epoch,
                         before_step=before_step, after_step=after_step)

    def _run(self, name):
        if self._fns[name] is not None:
            self._fns[name](self.trainer)

    def before_train(self): self._run("before_train")
    def before_epoch(self): self._run("before_epoch")
    def after_epoch(self): self._run("after_epoch")
    def before_step(self): self._run("before_step")
    def after_step(self): self._run("after_step")

    def after_train(self):
        self._run("after_train")
        self._fns = {k: None for k in self._fns}  # drop closures that may reference the trainer


class IterationTimer(HookBase):
    """Publishes ``time`` (seconds per step, hooks excluded) and logs the total at the end.

    The first ``warmup_iter`` steps are left out of the summary.
    """

    def __init__(self, warmup_iter: int = 3):
        self._warmup_iter = warmup_iter
        self._step_timer = Timer()
        self._start = 0.0
        self._total = Timer()

    def before_train(self):
        self._start = time.perf_counter()
        self._total.reset()
        self._total.pause()

    def after_train(self):
        total = time.perf_counter() - self._start
        hooks_time = total - self._total.seconds()
        steps = self.trainer.iter + 1 - self.trainer.start_iter - self._warmup_iter
        if steps > 0 and self._total.seconds() > 0:
            logger.info("Overall training speed: %d iterations in %s (%.4f s / it)", steps,
                        datetime.timedelta(seconds=int(self._total.seconds())),
                        self._total.seconds() / steps)
        logger.info("Total training time: %s (%s on hooks)",
                    datetime.timedelta(seconds=int(total)), datetime.timedelta(seconds=int(hooks_time)))

    def before_step(self):
        self._step_timer.reset()
        self._total.resume()

    def after_step(self):
        done = self.trainer.iter - self.trainer.start_iter + 1
        if done > self._warmup_iter:
            sec = self._step_timer.seconds()
            self.trainer.storage.put_scalar("time", sec)
        else:
            self._start = time.perf_counter()
            self._total.reset()
        self._total.pause()


class LRScheduler(HookBase):
    """Steps ``scheduler`` after every iteration and publishes the LR (of the largest group)."""

    def __init__(self, optimizer: torch.optim.Optimizer, scheduler, name: str = "lr"):
        self._optimizer = optimizer
        self._scheduler = scheduler
        self._name = name
        self._best_group = max(range(len(optimizer.param_groups)),
                               key=lambda i: len(optimizer.param_groups[i]["params"]))

    def after_step(self):
        lr = self._optimizer.param_groups[self._best_group]["lr"]
        self.trainer.storage.put_scalar(self._name, lr, smoothing_hint=False)
        self._scheduler.step()


def training_state(trainer, hook: HookBase | None = None) -> dict:
    """Plain-data extras of a checkpoint written after iteration ``trainer.iter``: the iteration
    and epoch to continue from, and, for a checkpoint written by ``hook`` during ``after_epoch``,
    its ``state_key`` (``written_by``): the hooks after it have not seen this epoch's end yet, so
    a resume runs their ``after_epoch`` first (e.g. the evaluation of a checkpoint written before
    it)."""
    state = {"iteration": trainer.iter + 1, "epoch": (trainer.iter + 1) // trainer.iters_per_epoch}
    if hook is not None:
        if not hook.state_key:
            raise ValueError(f"hook {type(hook).__name__} writes checkpoints but has no state_key")
        state["written_by"] = hook.state_key
    return state


class PeriodicCheckpointer(HookBase):
    """Saves ``model_{epoch:04d}.pth`` every ``period`` epochs and ``model_final.pth`` at the end.

    ``extra`` (e.g. the config as YAML text) is stored in every file. With ``max_to_keep`` only the
    newest periodic files in the folder are kept, counted on disk, so a resumed run keeps to the
    limit too (``model_final``/``model_best`` are never deleted). Placed before the evaluation, so
    that a failing evaluation cannot lose the epoch.
    """

    state_key = "periodic_checkpointer"

    def __init__(self, checkpointer: Checkpointer, period: int, *, max_to_keep: int = 0,
                 extra: Callable[[], dict] | None = None):
        self.checkpointer = checkpointer
        self.period = period
        self.max_to_keep = max_to_keep
        self.extra = extra or (lambda: {})

    def after_epoch(self):
        epoch = self.trainer.epoch + 1  # 1-based epoch just finished
        last = self.trainer.iter + 1 >= self.trainer.max_iter
        if not (last or (self.period > 0 and epoch % self.period == 0)):
            return
        if comm.is_main_process():
            name = "model_final" if last else f"model_{epoch:04d}"
            self.checkpointer.save(name, **training_state(self.trainer, self), **self.extra())
            self._prune()
        comm.synchronize()

    def _prune(self):
        if self.max_to_keep <= 0:
            return
        folder = self.checkpointer.save_dir
        periodic = sorted((f for f in os.listdir(folder) if re.fullmatch(r"model_\d{4,}\.pth", f)),
                          key=lambda f: int(f[len("model_"):-len(".pth")]))
        for name in periodic[:-self.max_to_keep]:
            os.remove(os.path.join(folder, name))


class EvalHook(HookBase):
    """Runs ``eval_function()`` every ``period`` epochs and after the last one (``period`` 0: only
    at the end), and before training when ``at_start``. Results (``{dataset: {metric: float}}``)
    are published as ``dataset/metric``."""

    def __init__(self, period: int, eval_function: Callable[[], dict], *, at_start: bool = False):
        self.period = period
        self._func = eval_function
        self.at_start = at_start

    def before_train(self):
        if self.at_start and self.trainer.start_iter == 0:
            logger.info("Evaluating the model before training")
            self._do_eval()

    def _do_eval(self):
        results = self._func()
        if results:
            flat = flatten_results_dict(results)
            for k, v in flat.items():
                try:
                    v = float(v)
                except (TypeError, ValueError) as e:
                    raise ValueError(f"evaluation returned a non-float metric {k}={v!r}") from e
                flat[k] = v
            self.trainer.storage.put_scalars(**flat, smoothing_hint=False)
        comm.synchronize()  # ranks wait for rank 0's metric computation together

    def after_epoch(self):
        epoch = self.trainer.epoch + 1
        last = self.trainer.iter + 1 >= self.trainer.max_iter
        if last or (self.period > 0 and epoch % self.period == 0):
            self._do_eval()

    def after_train(self):
        self._func = None


class BestCheckpointer(HookBase):
    """After an evaluation, saves ``model_best.pth`` when ``metric`` improved.

    Metrics exist on the main process only, so only that process acts (no collective here).

    The best value and epoch are part of the trainer state, so a resumed run keeps them.
    """

    state_key = "best_checkpointer"

    def __init__(self, checkpointer: Checkpointer, metric: str, mode: str = "max", *,
                 extra: Callable[[], dict] | None = None):
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.checkpointer = checkpointer
        self.metric = metric
        self.mode = mode
        self.extra = extra or (lambda: {})
        self.best_value: float | None = None
        self.best_epoch: int | None = None

    def _better(self, v: float) -> bool:
        if self.best_value is None:
            return math.isfinite(v)
        return v > self.best_value if self.mode == "max" else v < self.best_value

    def after_epoch(self):
        latest = self.trainer.storage.latest()
        keys = [k for k in latest if k == self.metric or k.endswith("/" + self.metric)]
        fresh = [latest[k][0] for k in keys if latest[k][1] == self.trainer.iter]
        if not fresh:
            return
        value = fresh[0]  # the first test set decides
        if self._better(value):
            self.best_value, self.best_epoch = value, self.trainer.epoch + 1
            if comm.is_main_process():
                self.checkpointer.save("model_best", tag_last=False, **training_state(self.trainer, self),
                                       best_metric={self.metric: value}, **self.extra())
            logger.info("New best %s = %.2f at epoch %d", self.metric, value, self.best_epoch)

    def state_dict(self) -> dict:
        if self.best_value is None:
            return {}
        return {"best_value": self.best_value, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best_value = state.get("best_value")
        self.best_epoch = state.get("best_epoch")


class PeriodicWriter(HookBase):
    """Calls the writers every ``period`` iterations, after each epoch and at the end."""

    def __init__(self, writers: list[EventWriter], period: int = 20):
        self._writers = writers
        self._period = max(1, period)

    def before_train(self):
        # a resumed run continues the files without repeating the iterations written after the
        # checkpoint it resumes from
        if self.trainer.start_iter > 0:
            for w in self._writers:
                if hasattr(w, "resume"):
                    w.resume(self.trainer.start_iter)

    def _write(self):
        for w in self._writers:
            w.write()

    def after_step(self):
        end_of_epoch = (self.trainer.iter + 1) % self.trainer.iters_per_epoch == 0
        if (self.trainer.iter + 1) % self._period == 0 and not end_of_epoch:
            self._write()

    def after_epoch(self):  # after the evaluation hooks, so the line includes their metrics
        self._write()

    def after_train(self):
        self._write()
        for w in self._writers:
            w.close()


class PlotTrainingCurves(HookBase):
    """After training, draws ``metrics_path`` (loss terms, LR, evaluation metrics) into the PNG
    ``out_path`` (``utils.visualizer.plot_training_curves``). Register it after the writers, on
    the main process only. It never breaks a run: any failure (matplotlib missing, no metrics,
    ...) is logged as a warning. ``panels``: further ``{title: key prefix}`` panels (a trainer's
    own scalars, see ``utils.visualizer.curve_panels``)."""

    def __init__(self, metrics_path: str, out_path: str, panels: dict[str, str] | None = None):
        self.metrics_path = metrics_path
        self.out_path = out_path
        self.panels = dict(panels or {})

    def after_train(self):
        if not os.path.exists(self.metrics_path):
            return
        try:
            from ..utils.visualizer import plot_training_curves

            plot_training_curves(self.metrics_path, self.out_path, panels=self.panels)
            logger.info("Training curves written to %s", self.out_path)
        except Exception as e:  # noqa: BLE001 - a picture must never fail the run
            logger.warning("Could not plot the training curves to %s: %s: %s", self.out_path,
                           type(e).__name__, e)
