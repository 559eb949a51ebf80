"""Inference and training throughput (images/s) of the model of a config.

    python tools/benchmark.py --config-file configs/Market/cdnet.yml
    python tools/benchmark.py --config-file configs/Market/cdnet.yml --batch-size 32 --runs 7 --device cuda
    python tools/benchmark.py --config-file configs/Market/cdnet.yml --compare --runs 7 --iters 1
    cdnet-reid benchmark ...                               (the same, from an installed package)

The model: the checkpoint ``MODEL.WEIGHTS`` when one is given (rebuilt from what it stores, as
``eval`` does), else the config's model with random weights from ``--seed``; the tables say which.
Each measurement: warm-up iterations, then ``--runs`` timed runs of ``--iters`` iterations each;
the median images/s is reported (with min/max). Inference runs the eval model (embedding) under
``torch.inference_mode``; training runs forward + backward + SGD step on random P×K batches.
CUDA timings synchronise before reading the clock. The process sets up the CPU allocator first
(``cdnet_reid.utils.env.setup_cpu_allocator``; ``CDNET_ALLOCATOR=default`` leaves glibc's).

With ``--compare`` (CPU) the inference table also holds, measured in the same run at the same
input, round-robin (run r of every candidate, then run r + 1, ...) so that a drift of the
machine's speed affects them all alike:

* the baseline: the plain model with contiguous (NCHW) weights, as the authors' code runs it, and
  the plain model of the config (``MODEL.CHANNELS_LAST``: NHWC weights by default);
* the fast path (``cdnet_reid.modeling.fuse.fuse_for_inference``): BatchNorm folded and
  channels-last; + the fused convolution epilogues (ReLU, residual add: the default); + torch.compile
  (inductor with freezing; ``--no-compile`` leaves it out; its compile time is printed);
* onnxruntime on the exported model, fp32 and int8 (static QDQ quantization, per-channel weights,
  calibrated on ``--calibration`` crops, else on random images: a speed figure only);
* PyTorch in bf16 (BN folded, channels-last, bf16 weights) where the CPU has native bf16, and
  OpenVINO on the same exported files: fp32, bf16 (native bf16 only) and int8 (the QDQ file);
* "peak" rows: the measured matrix-product rate of this CPU per data type (fp32, bf16: torch; int8:
  onnxruntime) turned into images/s for the model's multiply-adds (``cdnet_reid.export.peak``);
  the "of peak" column divides every row by the peak of its data type;
* torchvision's MobileNetV2 and ResNet-50 (random weights, features + global pooling);
* the plain and the fast path with glibc's default allocator and with big blocks kept in the heap,
  each in its own process (the allocator setting is process-wide), driven in the same round-robin;
  with ``train`` in ``--modes``, a second table times training with either allocator, with
  contiguous weights and (where the CPU has native bf16) with ``SOLVER.AMP`` (bf16 autocast), the
  same way. ``SOLVER.AMP.ENABLED True`` on the command line times the plain training row with it.

``--runtime torch|onnxruntime|openvino`` and ``--precision auto|fp32|bf16|int8`` choose what the
plain inference row runs (``cdnet_reid.engine.runtimes``; ``auto``: torch fp32, onnxruntime fp32,
openvino bf16 where the CPU has native bf16, logged; int8 quantises the exported model, calibrated
on ``--calibration`` crops or random images).

Every row gives the ratio to the baseline, the CPU time per image (user + system, all threads),
the share of it spent in the kernel (page faults of freshly mapped memory show up there) and, for
the rows in their own process, that process's peak resident memory.
"""

import argparse
import copy
import json
import os
import site
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from tabulate import tabulate

from ..engine.runtimes import PRECISIONS, RUNTIMES, cpu_has_native_bf16
from ..modeling import build_model
from ..utils.benchmark import measure, peak_rss_mb, round_robin, synchronize
from ..utils.env import ALLOCATOR_ENV, resolve_device, setup_cpu_allocator
from .args import add_config_arguments, setup_tool_cfg, tool_parser

#: The allocator variants of the own-process rows: (label, value of CDNET_ALLOCATOR).
ALLOCATORS = (("default allocator", "default"), ("big blocks kept in the heap", "heap"))
#: The tasks a worker process can time (``--worker``).
WORKER_TASKS = ("infer-plain", "infer-fast", "train")


def time_runs(step, images_per_step, device, warmup, runs, iters):
    """Median/min/max images/s of ``runs`` timed runs of ``iters`` calls to ``step``."""
    for _ in range(warmup):
        step()
    synchronize(device)
    rates = [measure(step, images_per_step, device, iters)[0] for _ in range(runs)]
    return statistics.median(rates), min(rates), max(rates)


def inference_step(model, batch, size, device):
    model.eval()
    x = torch.rand(batch, 3, *size, device=device) * 255

    def step():
        with torch.inference_mode():
            model(x)
    return step


def training_step(model, batch, size, num_instances, device, amp: bool = False):
    """One SGD step on a random P x K batch, the forward under autocast with ``amp``
    (``SOLVER.AMP``: bf16 on the CPU, fp16 on CUDA, as the trainer runs it)."""
    from ..engine.train_loop import amp_dtype

    model.train()
    x = torch.randint(0, 256, (batch, 3, *size), dtype=torch.uint8, device=device)
    y = torch.arange(batch // num_instances, device=device).repeat_interleave(num_instances)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step():
        with torch.autocast(device.type, dtype=amp_dtype(device), enabled=amp):
            losses = model({"images": x, "targets": y})
        opt.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        opt.step()
    return step


def benchmark_inference(model, batch, size, device, args):
    return time_runs(inference_step(model, batch, size, device), batch, device, args.warmup,
                     args.runs, args.iters)


def benchmark_training(model, batch, size, num_instances, device, args, amp: bool = False):
    return time_runs(training_step(model, batch, size, num_instances, device, amp), batch, device,
                     args.warmup, args.runs, args.iters)


def _torchvision_embedder(name: str):
    """torchvision backbone + global average pooling (an embedding model of the same job)."""
    import torchvision

    net = getattr(torchvision.models, name)(weights=None)
    body = net.features if hasattr(net, "features") else torch.nn.Sequential(*list(net.children())[:-2])
    return torch.nn.Sequential(body, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())


def _onnx_sessions(model, batch, size, calibration, tmp):
    """Callables running the ONNX export of ``model`` (fp32, int8) in onnxruntime, or {} when
    onnxruntime is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return {}
    from ..export import ImageCalibrationReader, export_onnx, quantize_onnx

    fp32 = export_onnx(model, os.path.join(tmp, "model.onnx"), size)
    if calibration:
        from ..data.datasets.layout import list_image_files

        images, source = list_image_files(calibration, what="--calibration")[0], f"{calibration}"
    else:
        gen = torch.Generator().manual_seed(0)
        images = [torch.randint(0, 256, (*size, 3), dtype=torch.uint8, generator=gen).numpy()
                  for _ in range(32)]
        source = "random images"
    reader = ImageCalibrationReader(images, size, max_images=64)
    int8 = quantize_onnx(fp32, os.path.join(tmp, "model_int8.onnx"), reader)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    # no busy-waiting threads left behind to steal the CPU from the measurements that follow
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    feed = {"images": (torch.rand(batch, 3, *size) * 255).numpy()}
    out = {}
    for name, path in (("onnxruntime fp32 (exported model)", fp32),
                       (f"onnxruntime int8 (static QDQ, per-channel, calibrated on {source})", int8)):
        session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        out[name] = (lambda s: lambda: s.run(None, feed))(session)
    return out


def _deploy_steps(model, x, tmp):
    """Callables of the bf16 PyTorch path (native bf16 only) and of OpenVINO on the files
    :func:`_onnx_sessions` exported to ``tmp`` (fp32, bf16 where native, int8)."""
    from ..modeling.fuse import to_bf16

    out = {}
    native = cpu_has_native_bf16()
    if native:
        net = to_bf16(model)

        def bf16_step():
            with torch.inference_mode():
                net(x)
        out["PyTorch bf16 (BN folded, channels-last, bf16 weights)"] = bf16_step
    try:
        from ..engine.runtimes import OpenVinoPredictor
    except ImportError:
        return out
    fp32, int8 = os.path.join(tmp, "model.onnx"), os.path.join(tmp, "model_int8.onnx")
    feed = x.float().contiguous().numpy()
    for name, path, precision in (("OpenVINO fp32", fp32, "fp32"), ("OpenVINO bf16", fp32, "bf16"),
                                  ("OpenVINO int8 (QDQ file, the rest in bf16)" if native else
                                   "OpenVINO int8 (QDQ file)", int8, "int8")):
        if not os.path.isfile(path) or (precision == "bf16" and not native):
            continue
        try:
            predictor = OpenVinoPredictor(None, path, precision=precision)
        except ImportError:
            return out
        out[name] = (lambda r: lambda: r.infer({0: feed}))(predictor.request)
    return out


def _row_dtype(name: str) -> str:
    return "int8" if "int8" in name else "bf16" if "bf16" in name else "fp32"


def peak_rows(model, size, base_rate, rows, device):
    """The "peak" rows (see the module docstring) and an "of peak" column on ``rows`` (in place);
    returns the peak rows and a note with the GEMM rates and the model's MACs."""
    from ..export.peak import gemm_rates, peak_images_per_s
    from ..utils.complexity import conv_linear_macs, mac_analysis

    macs = conv_linear_macs(mac_analysis(copy.deepcopy(model).eval(), torch.rand(1, 3, *size, device=device) * 255))
    rates = gemm_rates()
    peaks = {d: peak_images_per_s(macs, r) for d, r in rates.items()}
    for row in rows:
        peak = peaks.get(_row_dtype(row[0]))
        row.append(f"{100 * float(row[1]) / peak:.1f}%" if peak else "-")
    out = [[f"peak {d} (GEMM {rates[d] / 1e9:.0f} GFLOP/s, {macs / 1e6:.0f} M MACs/image)", f"{p:.1f}", "-",
            f"{p / base_rate:.2f}x", "-", "-", "-", "100%"] for d, p in peaks.items()]
    note = ("peak: " + ", ".join(f"{d} GEMM {rates[d] / 1e9:.0f} GFLOP/s" for d in rates)
            + f" ({torch.get_num_threads()} threads); the model: {macs / 1e6:.1f} M multiply-adds per image")
    return out, note


def runtime_inference(model, cfg, args, device):
    """``(label, step, tmp)`` of the plain inference row in ``--runtime`` / ``--precision``."""
    from ..engine.runtimes import create_predictor, resolve_precision
    from ..modeling.fuse import to_bf16

    batch, size = args.batch_size, cfg.INPUT.SIZE_TEST
    if args.runtime == "torch":
        precision = resolve_precision("torch", args.precision)
        if precision == "fp32":
            return "torch fp32", inference_step(model, batch, size, device), None
        net = to_bf16(model)
        return "torch bf16", inference_step(net, batch, size, device), None
    from ..export import EmbeddingModel, ImageCalibrationReader, export_onnx, quantize_onnx

    tmp = tempfile.TemporaryDirectory()
    path = export_onnx(EmbeddingModel(model, l2_normalize=False), os.path.join(tmp.name, "model.onnx"), size)
    if args.precision == "int8":
        if args.calibration:
            from ..data.datasets.layout import list_image_files

            images = list_image_files(args.calibration, what="--calibration")[0]
        else:
            gen = torch.Generator().manual_seed(0)
            images = [torch.randint(0, 256, (*size, 3), dtype=torch.uint8, generator=gen).numpy() for _ in range(32)]
        path = quantize_onnx(path, os.path.join(tmp.name, "model_int8.onnx"),
                             ImageCalibrationReader(images, size, max_images=64))
    predictor = create_predictor(cfg, runtime=args.runtime, precision=args.precision, model_file=path)
    x = torch.randint(0, 256, (batch, 3, *size), dtype=torch.uint8)
    precision = getattr(predictor, "precision", "int8" if args.precision == "int8" else "fp32")
    return f"{args.runtime} {precision}", (lambda: predictor.embed(x)), tmp


# ------------------------------------------------------------------------------ worker processes
#: The module a worker process runs (``python -m``): this one, wherever it was started from.
WORKER_MODULE = "cdnet_reid.apps.benchmark"


def worker_command(task: str, argv: Sequence[str]) -> list:
    """The command line of a ``--worker TASK`` process: ``python -m`` :data:`WORKER_MODULE`."""
    return [sys.executable, "-m", WORKER_MODULE, "--worker", task, *argv]


def worker_env(allocator: str) -> dict:
    """The environment of a worker: ``CDNET_ALLOCATOR=allocator`` and, unless this ``cdnet_reid``
    package is installed in a site-packages folder, the folder holding it first on
    ``PYTHONPATH``: the worker imports this very copy of the package from any working folder (a
    checkout run without install too)."""
    env = {**os.environ, ALLOCATOR_ENV: allocator}
    root = str(Path(__file__).resolve().parents[2])
    if root not in {str(Path(p).resolve()) for p in site.getsitepackages()}:
        env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                                                      if p and p != root])
    return env


class Worker:
    """A benchmark process of its own (``--worker TASK``, :func:`worker_command`) driven over a
    pipe: one timed run per :meth:`run`, its peak memory at :meth:`close`."""

    def __init__(self, task: str, allocator: str, argv):
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(worker_command(task, argv), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     env=worker_env(allocator), bufsize=1)
        self.ready = self._read()  # the worker's warm-up is done before the next one starts

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            self.log.seek(0)
            raise RuntimeError(f"benchmark worker failed (exit {self.proc.returncode}):\n"
                               f"{self.log.read()[-3000:]}")
        return json.loads(line)

    def run(self):
        self.proc.stdin.write("run\n")
        r = self._read()
        return r["rate"], r["user"], r["sys"]

    def close(self):
        self.proc.stdin.write("quit\n")
        peak = self._read()["maxrss_mb"]
        self.proc.wait()
        self.log.close()
        return peak


def claim_stdout():
    """The worker's protocol stream: the original stdout; fd 1 then points to stderr, so that
    whatever else the process prints (logs) goes to its log, not into the protocol."""
    sys.stdout.flush()
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    return proto


def benchmark_model(cfg, args):
    """``(model, cfg, what)``: the checkpoint ``MODEL.WEIGHTS`` rebuilt by
    :func:`~cdnet_reid.modeling.load_model` (the keys the command line sets must agree with it),
    else the config's model with random weights drawn from ``--seed``; ``what`` says which."""
    if cfg.MODEL.WEIGHTS:
        from ..config import config_file_keys, override_keys
        from ..modeling import load_model

        model, cfg = load_model(cfg, config_keys=config_file_keys(args.config_file), explicit=override_keys(args.opts))
        return model, cfg, f"weights {cfg.MODEL.WEIGHTS}"
    torch.manual_seed(args.seed)
    return build_model(cfg), cfg, f"random weights (seed {args.seed})"


def worker_main(task, args, cfg, device, proto):
    """The ``--worker`` loop: build, warm up, report ``ready``; then answer ``run`` / ``quit``."""
    model, cfg, _ = benchmark_model(cfg, args)
    if task == "train":
        batch = args.train_batch_size or cfg.SOLVER.IMS_PER_BATCH
        step = training_step(model, batch, cfg.INPUT.SIZE_TRAIN, cfg.DATALOADER.NUM_INSTANCE, device,
                             cfg.SOLVER.AMP.ENABLED)
    else:
        from ..modeling.fuse import fuse_for_inference

        batch = args.batch_size
        net = fuse_for_inference(model) if task == "infer-fast" else model
        step = inference_step(net, batch, cfg.INPUT.SIZE_TEST, device)
    for _ in range(args.warmup):
        step()
    proto.write(json.dumps({"ready": True, "allocator": setup_cpu_allocator()}) + "\n")
    for line in sys.stdin:
        if line.strip() == "run":
            rate, user, sys_ = measure(step, batch, device, args.iters)
            proto.write(json.dumps({"rate": rate, "user": user, "sys": sys_}) + "\n")
        elif line.strip() == "quit":
            proto.write(json.dumps({"maxrss_mb": peak_rss_mb()}) + "\n")
            return


def _worker_argv(args):
    """The command line of a worker: this run's model and timing options."""
    argv = ["--batch-size", str(args.batch_size), "--train-batch-size", str(args.train_batch_size),
            "--warmup", str(args.warmup), "--iters", str(args.iters), "--threads", str(args.threads),
            "--device", "cpu", "--seed", str(args.seed), "--config-file", args.config_file]
    for m in args.import_module:
        argv += ["--import-module", m]
    return argv + list(args.opts or [])


# ------------------------------------------------------------------------------ comparison
def summarize(results, peaks, baseline, batch_images):
    """Table rows: images/s median and range, ratio to ``baseline``, CPU ms/image, kernel share,
    peak RSS."""
    base = statistics.median(r[0] for r in results[baseline])
    rows = []
    for name, runs in results.items():
        rates = [r[0] for r in runs]
        user, sys_ = sum(r[1] for r in runs), sum(r[2] for r in runs)
        images = batch_images * len(runs)
        med = statistics.median(rates)
        rows.append([name, f"{med:.1f}", f"{min(rates):.1f}-{max(rates):.1f}", f"{med / base:.2f}x",
                     f"{1000 * (user + sys_) / images:.0f}", f"{100 * sys_ / max(user + sys_, 1e-9):.0f}%",
                     f"{peaks[name]:.0f}" if name in peaks else "-"])
    return rows


HEADERS = ["model", "images/s", "range", "vs plain", "CPU ms/image", "kernel", "peak RSS MB"]
#: The --compare inference table's columns: + the share of the peak of the row's data type.
COMPARE_HEADERS = HEADERS + ["of peak"]
#: The row the others are compared with: the model as the authors' code stores it (NCHW weights).
BASELINE = "plain, contiguous weights (MODEL.CHANNELS_LAST False)"


def benchmark_comparison(model, batch, size, device, args):
    """Rows for the plain path and the alternatives (see --compare), and notes to print."""
    from ..modeling.fuse import fuse_for_inference

    x = torch.rand(batch, 3, *size, device=device) * 255
    notes = []

    def torch_step(net):
        def step():
            with torch.inference_mode():
                net(x)
        return step

    # the baseline: the same model with the contiguous (NCHW) weights of the authors' code
    contiguous = copy.deepcopy(model).eval().to(memory_format=torch.contiguous_format)
    steps = {BASELINE: torch_step(contiguous),
             "plain (this config)": torch_step(model.eval()),
             "fast path: BN folded, channels-last": torch_step(fuse_for_inference(model, epilogues=False)),
             "fast path: + fused conv epilogues (default)": torch_step(fuse_for_inference(model))}
    if not args.no_compile and device.type == "cpu":
        compiled = fuse_for_inference(model, compile=True)
        t0 = time.perf_counter()
        with torch.inference_mode():
            compiled(x)
        notes.append(f"torch.compile: first call (compilation) {time.perf_counter() - t0:.0f} s")
        steps["fast path: + torch.compile (inductor, freezing)"] = torch_step(compiled)
    tmp = tempfile.TemporaryDirectory()
    if device.type == "cpu":
        from ..export import EmbeddingModel

        steps.update(_onnx_sessions(EmbeddingModel(model, l2_normalize=False), batch, size,
                                    args.calibration, tmp.name))
        steps.update(_deploy_steps(model, x, tmp.name))
    for name in ("mobilenet_v2", "resnet50"):
        steps[f"torchvision {name}"] = torch_step(_torchvision_embedder(name).to(device).eval())
    for step in steps.values():
        for _ in range(args.warmup):
            step()
    candidates = dict(steps)
    workers = {}
    if device.type == "cpu" and not args.no_allocator_rows:
        for task, label in (("infer-plain", "plain"), ("infer-fast", "fast path (default)")):
            for alloc_label, value in ALLOCATORS:
                workers[f"{label}, {alloc_label} (own process)"] = w = Worker(task, value, _worker_argv(args))
                notes.append(f"{label}, {alloc_label}: {w.ready['allocator']}")
        candidates.update(workers)
    try:
        results = round_robin(candidates, batch, device, args.runs, args.iters)
    finally:
        peaks = {name: w.close() for name, w in workers.items()}
        tmp.cleanup()
    rows = summarize(results, peaks, BASELINE, batch * args.iters)
    if device.type == "cpu":
        extra, note = peak_rows(model, size, statistics.median(r[0] for r in results[BASELINE]), rows, device)
        rows += extra
        notes.append(note)
    else:
        for row in rows:
            row.append("-")
    return rows, notes


def allocator_training_comparison(cfg, args):
    """Training rows, one process per allocator, round-robin."""
    batch = args.train_batch_size or cfg.SOLVER.IMS_PER_BATCH
    workers = {f"training, {label} (own process)": Worker("train", value, _worker_argv(args))
               for label, value in ALLOCATORS}
    workers["training, contiguous weights (MODEL.CHANNELS_LAST False), heap (own process)"] = Worker(
        "train", "heap", _worker_argv(args) + ["MODEL.CHANNELS_LAST", "False"])
    if cpu_has_native_bf16() and not cfg.SOLVER.AMP.ENABLED:
        workers["training, SOLVER.AMP (bf16 autocast), heap (own process)"] = Worker(
            "train", "heap", _worker_argv(args) + ["SOLVER.AMP.ENABLED", "True"])
    try:
        results = round_robin(workers, batch, torch.device("cpu"), args.runs, args.iters)
    finally:
        peaks = {name: w.close() for name, w in workers.items()}
    rows = summarize(results, peaks, next(iter(workers)), batch * args.iters)
    return batch, rows


def main(argv: Sequence[str] | None = None, prog: str | None = None):
    p = tool_parser(prog, __doc__)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--batch-size", type=int, default=32, help="inference batch")
    p.add_argument("--train-batch-size", type=int, default=0, help="0 = SOLVER.IMS_PER_BATCH")
    p.add_argument("--modes", nargs="+", default=["infer", "train"], choices=["infer", "train"])
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--iters", type=int, default=2, help="iterations per timed run")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    p.add_argument("--compare", action="store_true",
                   help="inference: also the fast paths, onnxruntime fp32/int8, torchvision baselines "
                        "and the allocator variants (own processes)")
    p.add_argument("--no-compile", action="store_true", help="--compare without the torch.compile row")
    p.add_argument("--no-allocator-rows", action="store_true",
                   help="--compare without the own-process allocator rows")
    p.add_argument("--calibration", default="", metavar="FOLDER_OR_LIST",
                   help="--compare: crops calibrating the int8 row (default: random images)")
    p.add_argument("--runtime", default="torch", choices=RUNTIMES,
                   help="what the plain inference row runs (default torch)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="its precision (auto: torch and onnxruntime fp32, openvino bf16 where the CPU has "
                        "native bf16; logged)")
    p.add_argument("--worker", choices=WORKER_TASKS, help=argparse.SUPPRESS)
    add_config_arguments(p)
    args = p.parse_args(argv)
    if args.precision != "auto" and not args.worker:
        from ..engine.runtimes import RuntimeChoiceError, resolve_precision

        try:  # the files are exported and quantised by this run: int8 is checked by the torch rule only
            resolve_precision(args.runtime if args.precision != "int8" else "torch", args.precision)
        except RuntimeChoiceError as e:
            if not (args.precision == "int8" and args.runtime != "torch"):
                p.error(f"--runtime {args.runtime} --precision {args.precision}: {e}")
    proto = claim_stdout() if args.worker else None
    allocator = setup_cpu_allocator()
    if args.threads:
        torch.set_num_threads(args.threads)

    cfg = setup_tool_cfg(args, freeze=False)
    device = resolve_device(args.device)
    cfg.MODEL.DEVICE = str(device)
    if cfg.MODEL.HEADS.NUM_CLASSES == 0:
        cfg.MODEL.HEADS.NUM_CLASSES = 751
    if args.worker:
        return worker_main(args.worker, args, cfg, device, proto)
    model, cfg, weights = benchmark_model(cfg, args)
    rows = []
    if "infer" in args.modes:
        label, step, tmp = runtime_inference(model, cfg, args, device)
        med, lo, hi = time_runs(step, args.batch_size, device, args.warmup, args.runs, args.iters)
        if tmp is not None:
            tmp.cleanup()
        rows.append(["inference", args.batch_size, "x".join(map(str, cfg.INPUT.SIZE_TEST)),
                     f"{med:.1f}", f"{lo:.1f}-{hi:.1f}", label])
    if "train" in args.modes:
        batch = args.train_batch_size or cfg.SOLVER.IMS_PER_BATCH
        med, lo, hi = benchmark_training(model, batch, cfg.INPUT.SIZE_TRAIN, cfg.DATALOADER.NUM_INSTANCE,
                                         device, args,
                                         amp=cfg.SOLVER.AMP.ENABLED)
        rows.append(["training", batch, "x".join(map(str, cfg.INPUT.SIZE_TRAIN)), f"{med:.1f}",
                     f"{lo:.1f}-{hi:.1f}", "torch bf16 autocast (SOLVER.AMP)" if cfg.SOLVER.AMP.ENABLED
                     else "torch fp32"])
    name = f"{cfg.MODEL.BACKBONE.NAME} + {cfg.MODEL.HEADS.NAME}"
    header = (f"({weights}) on {device} ({torch.get_num_threads()} threads, torch {torch.__version__}), "
              f"this process's allocator: {allocator}")
    if args.compare:
        comp, notes = benchmark_comparison(model, args.batch_size, cfg.INPUT.SIZE_TEST, device, args)
        print(f"Inference, batch {args.batch_size} at {'x'.join(map(str, cfg.INPUT.SIZE_TEST))} {header}; "
              f"median of {args.runs} round-robin runs x {args.iters} iterations:")
        print(tabulate(comp, headers=COMPARE_HEADERS, tablefmt="pipe"))
        for note in notes:
            print(note)
        print()
        if "train" in args.modes and device.type == "cpu" and not args.no_allocator_rows:
            batch, trows = allocator_training_comparison(cfg, args)
            print(f"Training, batch {batch} at {'x'.join(map(str, cfg.INPUT.SIZE_TRAIN))}, one process "
                  f"per allocator, median of {args.runs} round-robin runs x {args.iters} iterations:")
            print(tabulate(trows, headers=["mode"] + HEADERS[1:3] + ["vs default"] + HEADERS[4:],
                           tablefmt="pipe"))
            print()
    print(f"{name} {header}, median of {args.runs} runs x {args.iters} iterations after {args.warmup} warm-up:")
    print(tabulate(rows, headers=["mode", "batch", "input", "images/s (median)", "range", "runtime"],
                   tablefmt="pipe"))


if __name__ == "__main__":
    main()
