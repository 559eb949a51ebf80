"""Training-event storage and writers (scalars only).

An :class:`EventStorage` collects named scalars (losses, timings, learning rate, metrics, ...)
during training. Writers periodically read it and emit the values somewhere:

* :class:`JSONWriter` appends one JSON object per iteration to a file,
* :class:`CommonMetricPrinter` logs a human-readable progress line,
* :class:`TensorboardXWriter` writes TensorBoard scalars (optional dependency).

The trainer creates the writers on the main process only, so the writers do not check the rank.

Typical use::

    with EventStorage(start_iter) as storage:
        for it in range(start_iter, max_iter):
            storage.iter = it
            storage.put_scalars(total_loss=loss, lr=lr)
            for w in writers:
                w.write()
"""

import datetime
import json
import logging
import os
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from fvcore.common.history_buffer import HistoryBuffer
from fvcore.common.timer import Timer

__all__ = [
    "EventStorage",
    "get_event_storage",
    "EventWriter",
    "JSONWriter",
    "CommonMetricPrinter",
    "TensorboardXWriter",
    "build_tensorboard_writer",
]

logger = logging.getLogger(__name__)

_STORAGE_STACK: list["EventStorage"] = []


def get_event_storage() -> "EventStorage":
    """Return the innermost open :class:`EventStorage`.

    Raises:
        RuntimeError: when called outside any ``with EventStorage(...)`` block.
    """
    if not _STORAGE_STACK:
        raise RuntimeError(
            "get_event_storage() must be called inside a 'with EventStorage(...):' block, "
            "but no EventStorage is currently open."
        )
    return _STORAGE_STACK[-1]


def _to_float(value) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"put_scalar expects a python number or a single-element tensor, "
                f"got a tensor of shape {tuple(value.shape)}"
            )
        return float(value.detach().item())
    return float(value)


class EventStorage:
    """Scalar storage for training events; also a context manager that makes itself current.

    Args:
        start_iter: the initial value of :attr:`iter`.
    """

    def __init__(self, start_iter: int = 0):
        self._iter = int(start_iter)
        self._history: dict[str, HistoryBuffer] = defaultdict(HistoryBuffer)
        self._smoothing_hints: dict[str, bool] = {}
        self._latest_scalars: dict[str, tuple[float, int]] = {}
        self._current_prefix = ""

    # ------------------------------------------------------------------ iteration
    @property
    def iter(self) -> int:
        """The current iteration; new scalars are recorded at this iteration by default."""
        return self._iter

    @iter.setter
    def iter(self, value: int) -> None:
        self._iter = int(value)

    # ------------------------------------------------------------------ put
    def put_scalar(self, name: str, value, smoothing_hint: bool = True,
                   cur_iter: int | None = None) -> None:
        """Record a scalar.

        Args:
            name: scalar name; the current :meth:`name_scope` prefix is prepended.
            value: a python/numpy number or a single-element tensor (converted to ``float``).
            smoothing_hint: whether writers should smooth this scalar (window median) or report
                the latest value. Must be the same every time a given name is put.
            cur_iter: iteration to record the value at; defaults to :attr:`iter`.
        """
        name = self._current_prefix + name
        value = _to_float(value)
        it = self._iter if cur_iter is None else int(cur_iter)

        existing = self._smoothing_hints.get(name)
        if existing is None:
            self._smoothing_hints[name] = bool(smoothing_hint)
        elif existing != bool(smoothing_hint):
            raise ValueError(
                f"Scalar {name!r} was put with smoothing_hint={existing} before; "
                f"got smoothing_hint={smoothing_hint} now."
            )

        self._history[name].update(value, it)
        self._latest_scalars[name] = (value, it)

    def put_scalars(self, *, smoothing_hint: bool = True, cur_iter: int | None = None,
                    **kwargs) -> None:
        """Record several scalars at once, e.g. ``storage.put_scalars(loss=1.0, acc=0.5)``."""
        for k, v in kwargs.items():
            self.put_scalar(k, v, smoothing_hint=smoothing_hint, cur_iter=cur_iter)

    # ------------------------------------------------------------------ read
    def history(self, name: str) -> HistoryBuffer:
        """The :class:`HistoryBuffer` of scalar ``name`` (full name, including any scope prefix)."""
        buf = self._history.get(name)
        if buf is None:
            raise KeyError(
                f"No history for scalar {name!r}. Known scalars: {sorted(self._history)}"
            )
        return buf

    def histories(self) -> dict[str, HistoryBuffer]:
        """All histories, name -> :class:`HistoryBuffer`."""
        return dict(self._history)

    def latest(self) -> dict[str, tuple[float, int]]:
        """name -> (latest value, iteration it was recorded at)."""
        return dict(self._latest_scalars)

    def latest_with_smoothing_hint(self, window_size: int = 20) -> dict[str, tuple[float, int]]:
        """Like :meth:`latest`, but scalars with a True smoothing hint are replaced by the
        median of their last ``window_size`` values."""
        result = {}
        for name, (value, it) in self._latest_scalars.items():
            if self._smoothing_hints.get(name, True):
                value = float(self._history[name].median(window_size))
            result[name] = (value, it)
        return result

    def smoothing_hints(self) -> dict[str, bool]:
        """name -> smoothing hint given when the scalar was first put."""
        return dict(self._smoothing_hints)

    def clear_histories(self) -> None:
        """Forget every recorded scalar (histories, latest values and smoothing hints)."""
        self._history = defaultdict(HistoryBuffer)
        self._latest_scalars = {}
        self._smoothing_hints = {}

    # ------------------------------------------------------------------ scoping
    @contextmanager
    def name_scope(self, name: str) -> Iterator[None]:
        """Prefix ``name/`` to every scalar put inside the block. Scopes nest
        (``a`` then ``b`` gives ``a/b/``); the previous prefix is restored on exit, also when an
        exception is raised."""
        old_prefix = self._current_prefix
        self._current_prefix = old_prefix + name.rstrip("/") + "/"
        try:
            yield
        finally:
            self._current_prefix = old_prefix

    # ------------------------------------------------------------------ context manager
    def __enter__(self) -> "EventStorage":
        _STORAGE_STACK.append(self)
        return self

    def __exit__(self, exc_type, exc_val, exc_tb) -> None:
        if _STORAGE_STACK and _STORAGE_STACK[-1] is self:
            _STORAGE_STACK.pop()
        elif self in _STORAGE_STACK:  # exited out of order; still remove ourselves
            _STORAGE_STACK.remove(self)


# ====================================================================== writers
class EventWriter:
    """Base class for writers that read the current :class:`EventStorage`."""

    def write(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class JSONWriter(EventWriter):
    """Append one JSON object per iteration, ``{"iteration": it, name: value, ...}``.

    Only scalars newer than their previous :meth:`write` are written, so calling ``write()``
    twice does not duplicate values (a metric published later for an already-written iteration,
    such as an evaluation result, gets a line of its own). Values are the latest ones, or the window median
    for scalars whose smoothing hint is True. The file is opened in append mode, so a resumed run
    continues it.

    Args:
        json_file: path of the file (parent directories are created).
        window_size: window for the median of smoothed scalars.
    """

    def __init__(self, json_file: str, window_size: int = 20):
        json_file = os.fspath(json_file)
        parent = os.path.dirname(json_file)
        if parent:
            os.makedirs(parent, exist_ok=True)
        self._path = json_file
        self._file_handle = open(json_file, "a", encoding="utf-8")
        self._window_size = window_size
        self._last_written: dict[str, int] = {}

    def resume(self, start_iter: int) -> None:
        """Continue the file of a run resumed at ``start_iter``: the records of iterations from
        ``start_iter`` on (written after the checkpoint, before the run stopped) are cut off, and
        a value already in the file is not written again (e.g. an evaluation repeated on resume)."""
        self._file_handle.flush()
        keep = 0
        with open(self._path, "rb") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:  # a line cut by a kill
                    break
                if record.get("iteration", -1) >= start_iter:
                    break
                keep += len(line)
                for name in record:
                    if name != "iteration":
                        self._last_written[name] = max(self._last_written.get(name, -1),
                                                       record["iteration"])
        os.truncate(self._path, keep)  # in place: the append-mode handle writes at the new end

    def write(self) -> None:
        storage = get_event_storage()
        to_save: dict[int, dict[str, float]] = defaultdict(dict)
        for name, (value, it) in storage.latest_with_smoothing_hint(self._window_size).items():
            if it <= self._last_written.get(name, -1):
                continue
            to_save[it][name] = value
            self._last_written[name] = it
        if not to_save:
            return
        for it in sorted(to_save):
            self._file_handle.write(json.dumps({"iteration": it, **to_save[it]}, sort_keys=False))
            self._file_handle.write("\n")
        self._file_handle.flush()
        try:
            os.fsync(self._file_handle.fileno())
        except (AttributeError, OSError):  # pragma: no cover - e.g. unusual file systems
            pass

    def close(self) -> None:
        if not self._file_handle.closed:
            self._file_handle.close()


class CommonMetricPrinter(EventWriter):
    """Log a one-line training summary::

        eta: 0:12:34  epoch: 3  iter: 199/1000  loss_cls: 2.31  time: 0.2101  data_time: 0.0040
        images/s: 304.6  lr: 3.500e-04  max_mem: 5321MB

    Loss-like scalars (names containing ``"loss"``) are shown with their window median. The ETA
    uses the median of the ``time`` history (seconds per iteration) times the remaining
    iterations; without a ``time`` history it is estimated from the wall-clock time between
    two calls of :meth:`write`.

    Args:
        max_iter: total number of iterations of the run.
        window_size: window for medians.
        ims_per_batch: images per (global) batch, to report ``images/s``.
    """

    _ETA_WINDOW = 1000  # longer window for a stable ETA

    def __init__(self, max_iter: int, window_size: int = 20,
                 ims_per_batch: int | None = None):
        self.logger = logging.getLogger(__name__)
        self._max_iter = int(max_iter)
        self._window_size = window_size
        self._ims_per_batch = ims_per_batch
        self._timer = Timer()
        self._last_write: tuple[int, float] | None = None  # (iteration, timer seconds)

    def _eta_seconds(self, storage: EventStorage, iteration: int) -> float | None:
        remaining = max(self._max_iter - iteration - 1, 0)
        histories = storage.histories()
        if "time" in histories:
            sec_per_iter = float(histories["time"].median(self._ETA_WINDOW))
            self._last_write = None
            return sec_per_iter * remaining
        # fall back to wall-clock time between calls
        now = self._timer.seconds()
        eta = None
        if self._last_write is not None and iteration > self._last_write[0]:
            sec_per_iter = (now - self._last_write[1]) / (iteration - self._last_write[0])
            eta = sec_per_iter * remaining
        self._last_write = (iteration, now)
        return eta

    def write(self) -> None:
        storage = get_event_storage()
        iteration = storage.iter
        histories = storage.histories()

        parts = []
        eta = self._eta_seconds(storage, iteration)
        parts.append("eta: " + (str(datetime.timedelta(seconds=int(eta))) if eta is not None
                                else "N/A"))
        if "epoch" in histories:
            parts.append(f"epoch: {int(histories['epoch'].latest())}")
        parts.append(f"iter: {iteration}/{self._max_iter}")

        for name, buf in histories.items():
            if "loss" in name:
                parts.append(f"{name}: {float(buf.median(self._window_size)):.4g}")

        iter_time = None
        if "time" in histories:
            iter_time = float(histories["time"].median(self._window_size))
            parts.append(f"time: {iter_time:.4f}")
        if "data_time" in histories:
            parts.append(f"data_time: {float(histories['data_time'].median(self._window_size)):.4f}")
        if self._ims_per_batch is not None and iter_time is not None and iter_time > 0:
            parts.append(f"images/s: {self._ims_per_batch / iter_time:.1f}")
        if "lr" in histories:
            parts.append(f"lr: {histories['lr'].latest():.3e}")
        if torch.cuda.is_available():
            max_mem_mb = torch.cuda.max_memory_allocated() / 1024.0 / 1024.0
            parts.append(f"max_mem: {max_mem_mb:.0f}MB")

        self.logger.info("  ".join(parts))


class TensorboardXWriter(EventWriter):
    """Write scalars to TensorBoard through ``torch.utils.tensorboard.SummaryWriter``.

    Requires the ``tensorboard`` package (imported lazily here); raises ImportError otherwise.
    Use :func:`build_tensorboard_writer` to get ``None`` instead when it is missing.

    Args:
        log_dir: directory of the event files.
        window_size: window for the median of smoothed scalars.
    """

    def __init__(self, log_dir: str, window_size: int = 20, **kwargs):
        try:
            import tensorboard  # noqa: F401
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise ImportError(
                "TensorboardXWriter needs the 'tensorboard' package: pip install tensorboard"
            ) from e
        self._window_size = window_size
        self._writer = SummaryWriter(log_dir=os.fspath(log_dir), **kwargs)
        self._last_write = -1

    def write(self) -> None:
        storage = get_event_storage()
        new_last_write = self._last_write
        for name, (value, it) in storage.latest_with_smoothing_hint(self._window_size).items():
            if it > self._last_write:
                self._writer.add_scalar(name, value, it)
                new_last_write = max(new_last_write, it)
        self._last_write = new_last_write

    def close(self) -> None:
        if getattr(self, "_writer", None) is not None:
            self._writer.close()
            self._writer = None


_TB_MISSING_LOGGED = False


def build_tensorboard_writer(log_dir: str, window_size: int = 20) -> TensorboardXWriter | None:
    """A :class:`TensorboardXWriter`, or ``None`` (logged once at INFO) if TensorBoard is not
    installed."""
    global _TB_MISSING_LOGGED
    try:
        return TensorboardXWriter(log_dir, window_size=window_size)
    except ImportError:
        if not _TB_MISSING_LOGGED:
            logger.info("TensorBoard is not installed; not writing TensorBoard event files.")
            _TB_MISSING_LOGGED = True
        return None
