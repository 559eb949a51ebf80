import logging
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    """A data root shared by the tests (generated datasets are reused)."""
    return tmp_path_factory.mktemp("datasets")


@pytest.fixture(autouse=True)
def restore_loggers():
    """Entry points called in-process (``run_main``, the tools' ``main``) set up the project's
    loggers (handlers, no propagation); undo that after each test, so ``caplog`` keeps working."""
    names = ("cdnet_reid", "fvcore")
    saved = {n: (list(logging.getLogger(n).handlers), logging.getLogger(n).propagate,
                 logging.getLogger(n).level) for n in names}
    yield
    for n, (handlers, propagate, level) in saved.items():
        log = logging.getLogger(n)
        for h in log.handlers:
            if h not in handlers:
                log.removeHandler(h)
                h.close()
        log.propagate, log.level = propagate, level
