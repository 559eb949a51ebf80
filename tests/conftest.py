import logging
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]


#: Set in the child process that runs the tests marked ``openvino`` (tests/test_openvino_child.py).
OPENVINO_CHILD = os.environ.get("CDNET_OPENVINO_CHILD") == "1"


def pytest_collection_modifyitems(config, items):
    """Tests marked ``openvino`` run only in a child process of their own: OpenVINO's CPU-plugin
    threads, once started in the pytest process, made it crash (SIGSEGV) in a later test that forked
    DataLoader workers and started subprocesses. The child runs exactly those tests."""
    if OPENVINO_CHILD:
        return
    moved = [item for item in items if item.get_closest_marker("openvino")]
    if moved:
        config.hook.pytest_deselected(items=moved)
        items[:] = [item for item in items if not item.get_closest_marker("openvino")]


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    """A data root shared by the tests (generated datasets are reused)."""
    return tmp_path_factory.mktemp("datasets")


@pytest.fixture(scope="session")
def tiny_trained_run(tmp_path_factory, data_root):
    """One uninterrupted deterministic run of :func:`tiny.tiny_cfg` (4 epochs x 3 iterations,
    evaluated at epochs 2 and 4), trained once for every test that reads a finished run:
    ``(cfg, trainer, results)``. Tests must not write into its OUTPUT_DIR."""
    from tiny import tiny_cfg, train

    cfg = tiny_cfg(tmp_path_factory.mktemp("tiny_trained_run"), data_root, DETERMINISTIC="True")
    trainer, results = train(cfg)
    return cfg, trainer, results


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, data_root):
    """A checkpoint of :func:`tiny.tiny_cfg`'s model (seeded random weights, 12 classes): what the
    tools' mechanics (extraction, gallery search) need, without training. Its path."""
    import torch
    from tiny import tiny_cfg

    from cdnet_reid.engine import DefaultTrainer
    from cdnet_reid.utils.checkpoint import Checkpointer

    out = tmp_path_factory.mktemp("tiny_checkpoint")
    torch.manual_seed(0)
    model = DefaultTrainer.build_model(tiny_cfg(out, data_root, MODEL__HEADS__NUM_CLASSES="12"))
    Checkpointer(model, str(out)).save("model", num_classes=12)
    return str(out / "model.pth")


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
