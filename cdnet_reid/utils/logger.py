"""Logging set-up and small rate-limited logging helpers."""

import atexit
import functools
import logging
import os
import sys
import time
from collections import Counter

from termcolor import colored

__all__ = ["setup_logger", "log_first_n", "log_every_n", "log_every_n_seconds"]

_CONSOLE_DATEFMT = "%m/%d %H:%M:%S"
_FILE_DATEFMT = "%Y-%m-%d %H:%M:%S"
_FORMAT = "[%(asctime)s %(name)s %(levelname)s]: %(message)s"


class _ConsoleFormatter(logging.Formatter):
    """Shortens the logger name to ``abbrev_name`` and, optionally, colors WARNING/ERROR."""

    def __init__(self, *args, root_name: str, abbrev_name: str, use_color: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self._root_name = root_name
        self._abbrev_name = abbrev_name or root_name
        self._use_color = use_color

    def formatMessage(self, record: logging.LogRecord) -> str:
        original_name = record.name
        if original_name == self._root_name:
            record.name = self._abbrev_name
        elif original_name.startswith(self._root_name + "."):
            record.name = self._abbrev_name + original_name[len(self._root_name):]
        try:  # other handlers (the log file) must still see the full name
            log = super().formatMessage(record)
        finally:
            record.name = original_name
        if not self._use_color:
            return log
        if record.levelno == logging.WARNING:
            prefix = colored("WARNING", "red", attrs=["blink"])
        elif record.levelno >= logging.ERROR:
            prefix = colored("ERROR", "red", attrs=["blink", "underline"])
        else:
            return log
        return prefix + " " + log


@functools.cache
def _cached_log_stream(filename: str):
    """Open ``filename`` once per process, in append mode (a resumed run continues the log)."""
    stream = open(filename, "a", encoding="utf-8")
    atexit.register(stream.close)
    return stream


@functools.cache
def _setup_logger(output: str | None, distributed_rank: int, color: bool, name: str,
                  abbrev_name: str | None) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False

    if abbrev_name is None:
        abbrev_name = "cdnet" if name == "cdnet_reid" else name

    # console: main process only
    if distributed_rank == 0:
        handler = logging.StreamHandler(stream=sys.stdout)
        handler.setLevel(logging.DEBUG)
        isatty = getattr(sys.stdout, "isatty", lambda: False)()
        handler.setFormatter(_ConsoleFormatter(
            _FORMAT, datefmt=_CONSOLE_DATEFMT, root_name=name, abbrev_name=abbrev_name,
            use_color=color and isatty,
        ))
        logger.addHandler(handler)

    # file: every process
    if output is not None:
        if output.endswith(".txt") or output.endswith(".log"):
            filename = output
        else:
            filename = os.path.join(output, "log.txt")
        if distributed_rank > 0:
            filename = f"{filename}.rank{distributed_rank}"
        parent = os.path.dirname(filename)
        if parent:
            os.makedirs(parent, exist_ok=True)
        handler = logging.StreamHandler(_cached_log_stream(filename))
        handler.setLevel(logging.DEBUG)
        handler.setFormatter(logging.Formatter(_FORMAT, datefmt=_FILE_DATEFMT))
        logger.addHandler(handler)

    return logger


def setup_logger(output=None, distributed_rank: int = 0, *, color: bool = True,
                 name: str = "cdnet_reid", abbrev_name: str | None = None) -> logging.Logger:
    """Configure and return the logger ``name``.

    Calls are cached (``functools.lru_cache``), so calling it again with the same arguments
    returns the same logger without adding handlers.

    Args:
        output: a ``.txt``/``.log`` file, or a directory (the log goes to ``output/log.txt``).
            Ranks > 0 log to ``<file>.rank{r}``. Files are opened in append mode.
        distributed_rank: rank of this process; only rank 0 logs to stdout.
        color: color WARNING/ERROR on the console (only when stdout is a terminal).
        name: the logger to configure (e.g. ``"cdnet_reid"`` or ``"fvcore"``).
        abbrev_name: short name shown on the console instead of ``name``
            (``"cdnet"`` for ``"cdnet_reid"``, ``name`` otherwise).
    """
    output = os.fspath(output) if output is not None else None
    return _setup_logger(output, int(distributed_rank), bool(color), name, abbrev_name)


setup_logger.cache_clear = _setup_logger.cache_clear  # type: ignore[attr-defined]


# ====================================================================== rate-limited helpers
def _find_caller() -> tuple[str, tuple[str, int, str]]:
    """The module name and (file, line, function) of the first frame outside this file."""
    frame = sys._getframe(1)
    this_file = os.path.normcase(os.path.abspath(__file__))
    while frame is not None:
        code = frame.f_code
        if os.path.normcase(os.path.abspath(code.co_filename)) != this_file:
            mod_name = frame.f_globals.get("__name__", "cdnet_reid")
            if mod_name == "__main__":
                mod_name = "cdnet_reid"
            return mod_name, (code.co_filename, frame.f_lineno, code.co_name)
        frame = frame.f_back
    return "cdnet_reid", ("<unknown>", 0, "<unknown>")


_LOG_COUNTER: Counter = Counter()
_LOG_EVERY_N_COUNTER: Counter = Counter()
_LOG_TIMER: dict = {}


def log_first_n(lvl: int, msg: str, n: int = 1, *, name: str | None = None,
                key="caller") -> None:
    """Log ``msg`` only the first ``n`` times.

    Args:
        key: what identifies "the same" message: ``"caller"`` (file + line), ``"message"``,
            or a tuple of both.
        name: logger name; defaults to the caller's module.
    """
    if isinstance(key, str):
        key = (key,)
    if not key or not set(key) <= {"caller", "message"}:
        raise ValueError(f"key must be 'caller', 'message' or both, got {key!r}")
    caller_module, caller_key = _find_caller()
    hash_key: tuple = ()
    if "caller" in key:
        hash_key += caller_key
    if "message" in key:
        hash_key += (msg,)
    _LOG_COUNTER[hash_key] += 1
    if _LOG_COUNTER[hash_key] <= n:
        logging.getLogger(name or caller_module).log(lvl, msg)


def log_every_n(lvl: int, msg: str, n: int = 1, *, name: str | None = None) -> None:
    """Log ``msg`` once every ``n`` calls from the same place."""
    caller_module, caller_key = _find_caller()
    _LOG_EVERY_N_COUNTER[caller_key] += 1
    if n <= 1 or _LOG_EVERY_N_COUNTER[caller_key] % n == 1:
        logging.getLogger(name or caller_module).log(lvl, msg)


def log_every_n_seconds(lvl: int, msg: str, n: float = 1, *, name: str | None = None) -> None:
    """Log ``msg`` at most once every ``n`` seconds from the same place (file + line)."""
    caller_module, caller_key = _find_caller()
    last = _LOG_TIMER.get(caller_key)
    now = time.time()
    if last is None or now - last >= n:
        logging.getLogger(name or caller_module).log(lvl, msg)
        _LOG_TIMER[caller_key] = now
