#!/usr/bin/env python
"""Inference and training throughput (images/s) of the model of a config.

    python tools/benchmark.py --config-file configs/Market/cdnet.yml
    python tools/benchmark.py --config-file configs/Market/cdnet.yml --batch-size 32 --runs 7 --device cuda

Each measurement: warm-up iterations, then ``--runs`` timed runs of ``--iters`` iterations each;
the median images/s is reported (with min/max). Inference runs the eval model (embedding) under
``torch.inference_mode``; training runs forward + backward + SGD step on random P×K batches.
CUDA timings synchronise before reading the clock.

With ``--compare`` the inference table also holds, measured in the same run at the same input:
the fast path (BatchNorm folded into the convolutions, channels-last), onnxruntime on the
exported model (when onnxruntime is installed), and torchvision's MobileNetV2 and ResNet-50
(random weights, features + global pooling), with the ratio of each to the plain path.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from tabulate import tabulate  # noqa: E402

from cdnet_reid.engine.defaults import add_config_arguments, setup_tool_cfg  # noqa: E402
from cdnet_reid.modeling import build_model  # noqa: E402
from cdnet_reid.utils.env import resolve_device  # noqa: E402


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_runs(step, images_per_step, device, warmup, runs, iters):
    """Median/min/max images/s of ``runs`` timed runs of ``iters`` calls to ``step``."""
    for _ in range(warmup):
        step()
    _sync(device)
    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(iters):
            step()
        _sync(device)
        rates.append(images_per_step * iters / (time.perf_counter() - t0))
    return statistics.median(rates), min(rates), max(rates)


def benchmark_inference(model, batch, size, device, args):
    model.eval()
    x = (torch.rand(batch, 3, *size, device=device) * 255)

    def step():
        with torch.inference_mode():
            model(x)
    return time_runs(step, batch, device, args.warmup, args.runs, args.iters)


def _torchvision_embedder(name: str):
    """torchvision backbone + global average pooling (an embedding model of the same job)."""
    import torchvision

    net = getattr(torchvision.models, name)(weights=None)
    body = net.features if hasattr(net, "features") else torch.nn.Sequential(*list(net.children())[:-2])
    return torch.nn.Sequential(body, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())


def _onnxruntime_step(model, batch, size):
    """A callable running the ONNX export of ``model`` in onnxruntime, or None if unavailable."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    import tempfile

    from cdnet_reid.export import export_onnx

    path = tempfile.NamedTemporaryFile(suffix=".onnx", delete=False).name
    export_onnx(model, path, size)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    # no busy-waiting threads left behind to steal the CPU from the measurements that follow
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: (torch.rand(batch, 3, *size) * 255).numpy()}
    return lambda: session.run(None, feed)


def benchmark_comparison(model, batch, size, device, args):
    """Rows ``[name, median, min, max]`` for the plain path and the alternatives (see --compare).

    The candidates are timed round-robin (run r of every candidate, then run r + 1, ...), so a
    drift of the machine's speed during the measurement affects them all alike.
    """
    from cdnet_reid.modeling.fuse import fuse_for_inference

    x = torch.rand(batch, 3, *size, device=device) * 255

    def torch_step(net):
        def step():
            with torch.inference_mode():
                net(x)
        return step

    steps = [("plain (this config)", torch_step(model.eval())),
             ("fast path (BN folded, channels-last)", torch_step(fuse_for_inference(model)))]
    if device.type == "cpu":
        ort_step = _onnxruntime_step(model, batch, size)
        if ort_step is not None:
            steps.append(("onnxruntime (exported model)", ort_step))
    for name in ("mobilenet_v2", "resnet50"):
        steps.append((f"torchvision {name}", torch_step(_torchvision_embedder(name).to(device).eval())))
    for _, step in steps:
        for _ in range(args.warmup):
            step()
    rates = {name: [] for name, _ in steps}
    for _ in range(args.runs):
        for name, step in steps:
            rates[name].append(time_runs(step, batch, device, 0, 1, args.iters)[0])
    return [[name, statistics.median(r), min(r), max(r)] for name, r in rates.items()]


def benchmark_training(model, batch, size, num_instances, device, args):
    model.train()
    x = torch.randint(0, 256, (batch, 3, *size), dtype=torch.uint8, device=device)
    y = torch.arange(batch // num_instances, device=device).repeat_interleave(num_instances)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step():
        losses = model({"images": x, "targets": y})
        opt.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        opt.step()
    return time_runs(step, batch, device, args.warmup, args.runs, args.iters)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--batch-size", type=int, default=32, help="inference batch")
    p.add_argument("--train-batch-size", type=int, default=0, help="0 = SOLVER.IMS_PER_BATCH")
    p.add_argument("--modes", nargs="+", default=["infer", "train"], choices=["infer", "train"])
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--iters", type=int, default=2, help="iterations per timed run")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--compare", action="store_true",
                   help="inference: also the fast path, onnxruntime and torchvision baselines")
    add_config_arguments(p)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    cfg = setup_tool_cfg(args, freeze=False)
    device = resolve_device(args.device)
    cfg.MODEL.DEVICE = str(device)
    if cfg.MODEL.HEADS.NUM_CLASSES == 0:
        cfg.MODEL.HEADS.NUM_CLASSES = 751
    model = build_model(cfg)
    rows = []
    if "infer" in args.modes:
        med, lo, hi = benchmark_inference(model, args.batch_size, cfg.INPUT.SIZE_TEST, device, args)
        rows.append(["inference", args.batch_size, "x".join(map(str, cfg.INPUT.SIZE_TEST)),
                     f"{med:.1f}", f"{lo:.1f}-{hi:.1f}"])
    if "train" in args.modes:
        batch = args.train_batch_size or cfg.SOLVER.IMS_PER_BATCH
        med, lo, hi = benchmark_training(model, batch, cfg.INPUT.SIZE_TRAIN, cfg.DATALOADER.NUM_INSTANCE,
                                         device, args)
        rows.append(["training", batch, "x".join(map(str, cfg.INPUT.SIZE_TRAIN)), f"{med:.1f}",
                     f"{lo:.1f}-{hi:.1f}"])
    name = f"{cfg.MODEL.BACKBONE.NAME} + {cfg.MODEL.HEADS.NAME}"
    if args.compare:
        comp = benchmark_comparison(model, args.batch_size, cfg.INPUT.SIZE_TEST, device, args)
        plain = comp[0][1]
        print(f"Inference, batch {args.batch_size} at {'x'.join(map(str, cfg.INPUT.SIZE_TEST))} on {device} "
              f"({torch.get_num_threads()} threads), median of {args.runs} runs:")
        print(tabulate([[n, f"{m:.1f}", f"{lo:.1f}-{hi:.1f}", f"{m / plain:.2f}x"] for n, m, lo, hi in comp],
                       headers=["model", "images/s", "range", "vs plain"], tablefmt="pipe"))
        print()
    print(f"{name} on {device} ({torch.get_num_threads()} CPU threads, torch {torch.__version__}), "
          f"median of {args.runs} runs x {args.iters} iterations after {args.warmup} warm-up:")
    print(tabulate(rows, headers=["mode", "batch", "input", "images/s (median)", "range"], tablefmt="pipe"))


if __name__ == "__main__":
    main()
