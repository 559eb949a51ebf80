import json
import logging
import os

import pytest
import torch

from cdnet_reid.utils.events import (
    CommonMetricPrinter,
    EventStorage,
    EventWriter,
    JSONWriter,
    build_tensorboard_writer,
    get_event_storage,
)
from cdnet_reid.utils.logger import log_every_n_seconds, log_first_n, setup_logger


# ----------------------------------------------------------------------------- storage
def test_put_history_latest_and_smoothing():
    with EventStorage(start_iter=3) as storage:
        assert get_event_storage() is storage
        assert storage.iter == 3
        for i, v in enumerate([5.0, 1.0, 3.0, 100.0, 2.0]):
            storage.iter = 3 + i
            storage.put_scalar("loss", torch.tensor(v))
            storage.put_scalar("lr", v, smoothing_hint=False)
        storage.put_scalars(a=1, b=torch.tensor(2.5))

        assert isinstance(storage.latest()["loss"][0], float)
        assert storage.latest()["loss"] == (2.0, 7)
        assert storage.latest()["b"] == (2.5, 7)
        assert [v for v, _ in storage.history("loss").values()] == [5, 1, 3, 100, 2]
        assert [it for _, it in storage.history("loss").values()] == [3, 4, 5, 6, 7]

        smoothed = storage.latest_with_smoothing_hint(window_size=5)
        assert smoothed["loss"] == (3.0, 7)  # median of the window
        assert smoothed["lr"] == (2.0, 7)  # latest value, no smoothing
        smoothed = storage.latest_with_smoothing_hint(window_size=2)
        assert smoothed["loss"] == (51.0, 7)

        assert storage.smoothing_hints() == {"loss": True, "lr": False, "a": True, "b": True}
        assert set(storage.histories()) == {"loss", "lr", "a", "b"}

        storage.put_scalar("x", 1.0, cur_iter=42)
        assert storage.latest()["x"] == (1.0, 42)

        with pytest.raises(KeyError, match="loss"):
            storage.history("nope")
        with pytest.raises(ValueError):
            storage.put_scalar("lr", 1.0, smoothing_hint=True)
        with pytest.raises(ValueError):
            storage.put_scalar("vec", torch.ones(3))

        storage.clear_histories()
        assert storage.latest() == {} and storage.histories() == {}


def test_nested_storages_and_no_storage():
    with pytest.raises(RuntimeError, match="EventStorage"):
        get_event_storage()
    with EventStorage() as outer:
        with EventStorage() as inner:
            assert get_event_storage() is inner
        assert get_event_storage() is outer
    with pytest.raises(RuntimeError):
        get_event_storage()


def test_name_scope_restores_on_exception():
    with EventStorage() as storage:
        with pytest.raises(ZeroDivisionError):
            with storage.name_scope("eval"):
                storage.put_scalar("acc", 0.5)
                with storage.name_scope("sub"):
                    storage.put_scalar("x", 1.0)
                storage.put_scalar("y", 2.0)
                raise ZeroDivisionError("inside the scope")
        storage.put_scalar("loss", 1.0)
        assert set(storage.latest()) == {"eval/acc", "eval/sub/x", "eval/y", "loss"}


def test_event_writer_base():
    with pytest.raises(NotImplementedError):
        EventWriter().write()
    EventWriter().close()


# ----------------------------------------------------------------------------- JSONWriter
def _read_json_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_json_writer_no_duplicates_and_append(tmp_path):
    path = tmp_path / "sub" / "metrics.json"
    with EventStorage() as storage:
        writer = JSONWriter(str(path), window_size=1)
        storage.iter = 0
        storage.put_scalars(loss=1.0, lr=0.1)
        storage.iter = 1
        storage.put_scalars(loss=2.0)
        writer.write()
        writer.write()  # nothing new: no duplicate lines
        lines = _read_json_lines(path)  # flushed on every write
        assert lines == [{"iteration": 0, "lr": 0.1}, {"iteration": 1, "loss": 2.0}]

        storage.iter = 2
        storage.put_scalars(loss=3.0, lr=0.05)
        writer.write()
        writer.write()
        writer.close()
    lines = _read_json_lines(path)
    assert [d["iteration"] for d in lines] == [0, 1, 2]
    assert lines[-1] == {"iteration": 2, "loss": 3.0, "lr": 0.05}

    # a resumed run appends to the same file
    with EventStorage(start_iter=3) as storage:
        writer = JSONWriter(str(path))
        storage.put_scalar("loss", 4.0)
        writer.write()
        writer.close()
    assert [d["iteration"] for d in _read_json_lines(path)] == [0, 1, 2, 3]


# ----------------------------------------------------------------------------- printer
@pytest.fixture
def events_records(caplog):
    """Capture records of the events logger directly (a parent logger may not propagate)."""
    lg = logging.getLogger("cdnet_reid.utils.events")
    old_level, old_propagate = lg.level, lg.propagate
    lg.setLevel(logging.INFO)
    lg.propagate = False  # avoid capturing the same record twice through the root logger
    caplog.handler.setLevel(logging.INFO)
    lg.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        lg.removeHandler(caplog.handler)
        lg.setLevel(old_level)
        lg.propagate = old_propagate


def _messages(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "cdnet_reid.utils.events"]


def test_common_metric_printer(events_records):
    printer = CommonMetricPrinter(max_iter=100, window_size=20, ims_per_batch=64)
    with EventStorage() as storage:
        for it, loss in enumerate([1.0, 5.0, 3.0, 2.0, 4.0]):
            storage.iter = it
            storage.put_scalars(loss_cls=loss, total_loss=2 * loss, time=0.5, data_time=0.01)
            storage.put_scalar("lr", 3.5e-4, smoothing_hint=False)
            storage.put_scalar("epoch", 2, smoothing_hint=False)
            storage.put_scalar("acc", 0.9)
        storage.iter = 19
        printer.write()
    msgs = _messages(events_records)
    assert len(msgs) == 1
    line = msgs[0]
    assert "eta: 0:00:40" in line  # 0.5 s/it * (100 - 19 - 1) its
    assert "epoch: 2" in line
    assert "iter: 19/100" in line
    assert "loss_cls: 3" in line and "total_loss: 6" in line
    assert "acc" not in line
    assert "time: 0.5000" in line and "data_time: 0.0100" in line
    assert "images/s: 128.0" in line
    assert "lr: 3.500e-04" in line
    assert line.index("eta") < line.index("iter") < line.index("loss_cls") < line.index("lr")


def test_common_metric_printer_wall_clock_eta(events_records):
    printer = CommonMetricPrinter(max_iter=11)
    clock = iter([100.0, 105.0])
    printer._timer.seconds = lambda: next(clock)
    with EventStorage() as storage:
        storage.put_scalar("loss", 1.0)
        printer.write()  # no history of time, first call: unknown ETA
        storage.iter = 5
        printer.write()  # 1 s/it, 5 iterations left
    msgs = _messages(events_records)
    assert len(msgs) == 2
    assert "eta: N/A" in msgs[0]
    assert "eta: 0:00:05" in msgs[1] and "iter: 5/11" in msgs[1]
    assert "images/s" not in msgs[1]


def test_build_tensorboard_writer(tmp_path, caplog):
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        writer = build_tensorboard_writer(str(tmp_path / "tb"))
        assert writer is None
        return
    writer = build_tensorboard_writer(str(tmp_path / "tb"))
    with EventStorage() as storage:
        storage.put_scalar("loss", 1.0)
        writer.write()
        writer.write()
    writer.close()
    assert os.listdir(tmp_path / "tb")


# ----------------------------------------------------------------------------- logger
def test_setup_logger_no_duplicate_handlers_and_file(tmp_path):
    name = "cdnet_reid_test_logger_events"
    out_dir = tmp_path / "out"
    logger = setup_logger(str(out_dir), name=name)
    n_handlers = len(logger.handlers)
    assert n_handlers == 2  # console + file
    assert setup_logger(str(out_dir), name=name) is logger
    assert setup_logger(output=str(out_dir), distributed_rank=0, name=name) is logger
    assert len(logger.handlers) == n_handlers
    assert logger.propagate is False

    logger.info("hello from the test")
    logger.warning("a warning")
    for h in logger.handlers:
        h.flush()
    text = (out_dir / "log.txt").read_text()
    assert "hello from the test" in text and f"{name} INFO]" in text
    assert "a warning" in text and "\x1b[" not in text

    # explicit file name, other ranks write their own file and nothing to the console
    rank_logger = setup_logger(str(tmp_path / "x" / "train.log"), distributed_rank=1,
                               name=name + ".rank1")
    assert len(rank_logger.handlers) == 1
    rank_logger.info("rank one")
    rank_logger.handlers[0].flush()
    assert "rank one" in (tmp_path / "x" / "train.log.rank1").read_text()


def test_log_helpers(caplog):
    name = "cdnet_reid_test_helpers"
    caplog.set_level(logging.INFO, logger=name)
    for _ in range(5):
        log_first_n(logging.INFO, "first", n=2, name=name)
    for _ in range(5):
        log_every_n_seconds(logging.INFO, "periodic", n=1000, name=name)
    msgs = [r.getMessage() for r in caplog.records if r.name == name]
    assert msgs.count("first") == 2
    assert msgs.count("periodic") == 1
