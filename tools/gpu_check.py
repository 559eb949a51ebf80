#!/usr/bin/env python
"""A prepared GPU check: the CUDA paths of the project, run once on one CUDA device in under 5
minutes, printed as one table.

    python tools/gpu_check.py                 # full: CDNet at 256x128, training batch 64
    python tools/gpu_check.py --quick         # a quarter-width CDNet at 64x32, batch 16 (seconds)

Rows: training images/s in fp32, with AMP fp16 (GradScaler) and channels-last, and the AMP loss
against fp32 on the same batch; a DETERMINISTIC training step (use_deterministic_algorithms without
warn_only: an op without a deterministic CUDA kernel fails the row, naming it); the training data
loader's images/s against the model's; the ranking (mAP) and k-reciprocal re-ranking of CUDA
features against the CPU; a model fused for inference on the CPU and then moved with ``.cuda()``;
the current device of ``MODEL.DEVICE cuda:1`` (two GPUs or more); the ONNX export of the trained
model checked in onnxruntime (CUDA provider when installed: TensorRT-ready graphs run there too).

Without a CUDA device the CPU rows still run and every CUDA row reads ``SKIP (no CUDA device)``;
the exit status is 1 when a row fails, else 0.
"""

import argparse
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from tabulate import tabulate  # noqa: E402

from cdnet_reid.config import get_cfg  # noqa: E402
from cdnet_reid.modeling import build_model  # noqa: E402

NO_CUDA = "SKIP (no CUDA device)"


def data_root() -> str:
    """Where the embedded SyntheticReID is generated (once) and reused: $CDNET_DATASETS, else the
    checkout's datasets/."""
    return os.environ.get("CDNET_DATASETS") or str(Path(__file__).resolve().parents[1] / "datasets")


def make_cfg(quick: bool, data_root: str, device: str):
    cfg = get_cfg()
    cfg.merge_from_file(str(Path(__file__).resolve().parents[1] / "configs" / "Synthetic" / "cdnet.yml"))
    size = [64, 32] if quick else [256, 128]
    cfg.merge_from_list(["INPUT.SIZE_TRAIN", str(size), "INPUT.SIZE_TEST", str(size), "DATASETS.ROOT", data_root,
                         "SOLVER.IMS_PER_BATCH", "16" if quick else "64", "MODEL.DEVICE", device,
                         "DATALOADER.NUM_WORKERS", "0" if quick else "4", "MODEL.HEADS.NUM_CLASSES", "64"])
    if quick:
        cfg.merge_from_list(["MODEL.BACKBONE.WIDTH_MULT", "0.25"])
    return cfg


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_rate(cfg, device, *, amp=False, channels_last=False, steps=2, seed=0):
    """(images/s, first loss) of SGD steps on one random P x K batch."""
    torch.manual_seed(seed)
    model = build_model(cfg).to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    batch, k = int(cfg.SOLVER.IMS_PER_BATCH), int(cfg.DATALOADER.NUM_INSTANCE)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (batch, 3, *cfg.INPUT.SIZE_TRAIN), dtype=torch.uint8, generator=gen).to(device)
    y = torch.arange(batch // k).repeat_interleave(k).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    first = None
    for i in range(steps + 2):
        if i == 2:
            _sync(device)
            t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            losses = model({"images": x, "targets": y})
        loss = sum(losses.values())
        if first is None:
            first = float(loss.detach())
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    _sync(device)
    return batch * steps / (time.perf_counter() - t0), first


def loader_rate(cfg, batches=8):
    from cdnet_reid.data import build_reid_train_loader

    it = iter(build_reid_train_loader(cfg))
    next(it)
    t0 = time.perf_counter()
    n = sum(next(it)["images"].shape[0] for _ in range(batches))
    return n / (time.perf_counter() - t0)


def ranking_matches(device):
    from cdnet_reid.evaluation.rank import evaluate_rank_features
    from cdnet_reid.evaluation.rerank import k_reciprocal_rerank

    gen = torch.Generator().manual_seed(0)
    q, g = torch.randn(50, 64, generator=gen), torch.randn(300, 64, generator=gen)
    q, g = torch.nn.functional.normalize(q, dim=1), torch.nn.functional.normalize(g, dim=1)
    qp, gp = torch.randint(0, 20, (50,), generator=gen), torch.randint(0, 20, (300,), generator=gen)
    qc, gc = torch.zeros(50, dtype=torch.long), torch.ones(300, dtype=torch.long)
    _, ap_cpu, _ = evaluate_rank_features(q, g, qp, gp, qc, gc)
    _, ap_dev, _ = evaluate_rank_features(q.to(device), g.to(device), qp, gp, qc, gc)
    rr_cpu = k_reciprocal_rerank(q, g, k1=10, k2=3)
    rr_dev = k_reciprocal_rerank(q.to(device), g.to(device), k1=10, k2=3)
    return (abs(ap_cpu.mean() - ap_dev.mean()), float((rr_cpu - rr_dev.float().cpu()).abs().max()))


def evaluator_ranks_on(device):
    """(rank device, |mAP on the GPU - mAP on the CPU|) of ReidEvaluator fed the model's CUDA outputs."""
    from cdnet_reid.evaluation import ReidEvaluator

    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(80, 32, generator=gen)
    batch = {"targets": torch.randint(0, 10, (80,), generator=gen), "camids": torch.arange(80) % 3}
    out = {}
    for dev in ("cpu", device):
        ev = ReidEvaluator(num_query=20)
        ev.process(batch, feats.to(dev))
        out[torch.device(dev).type] = (ev.rank_device, ev.evaluate()["mAP"])
    return out["cuda"][0], abs(out["cuda"][1] - out["cpu"][1])


def fused_moved(cfg, device):
    from cdnet_reid.modeling.fuse import fuse_for_inference

    torch.manual_seed(0)
    model = build_model(cfg).eval()
    fast = fuse_for_inference(model).to(device)
    x = torch.rand(4, 3, *cfg.INPUT.SIZE_TEST) * 255
    with torch.no_grad():
        return float((fast(x.to(device)).float().cpu() - model(x)).abs().max())


def onnx_export(cfg, tmp):
    from cdnet_reid.export import EmbeddingModel, export_onnx, verify_onnx

    torch.manual_seed(0)
    module = EmbeddingModel(build_model(cfg).eval())
    path = export_onnx(module, f"{tmp}/model.onnx", cfg.INPUT.SIZE_TEST)
    worst, _ = verify_onnx(module, path, cfg.INPUT.SIZE_TEST, batch_sizes=(1, 4))
    import onnxruntime as ort

    providers = ort.get_available_providers()
    return worst, ("CUDAExecutionProvider" in providers, "TensorrtExecutionProvider" in providers)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a quarter-width CDNet at 64x32, batch 16")
    p.add_argument("--device", default="cuda", help="the CUDA device to check (default cuda = cuda:0)")
    args = p.parse_args(argv)
    has_cuda = torch.cuda.is_available()
    device = torch.device(args.device if has_cuda else "cpu")
    rows, failed = [], []
    t_start = time.perf_counter()

    def row(name, fn, *, cuda_only=False):
        if cuda_only and not has_cuda:
            rows.append([name, NO_CUDA, ""])
            return None
        t0 = time.perf_counter()
        try:
            status, detail = fn()
        except Exception as e:  # the check reports, it does not stop
            status, detail = "FAIL", f"{type(e).__name__}: {str(e).splitlines()[0][:150]}"
            traceback.print_exc(file=sys.stderr)
        rows.append([name, status, f"{detail} ({time.perf_counter() - t0:.1f} s)"])
        if status == "FAIL":
            failed.append(name)

    with tempfile.TemporaryDirectory() as tmp:
        cfg = make_cfg(args.quick, data_root(), str(device))
        size = "x".join(map(str, cfg.INPUT.SIZE_TRAIN))
        batch = cfg.SOLVER.IMS_PER_BATCH
        print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
              + (f"{torch.cuda.get_device_name(device)} ({device})" if has_cuda else
                 "no CUDA device: the CUDA rows are skipped, the CPU rows run") + f"; input {size}, batch {batch}")
        rates = {}

        def train(key, **kw):
            def fn():
                rate, loss = train_rate(cfg, device, steps=2 if args.quick else 10, **kw)
                rates[key] = (rate, loss)
                extra = ""
                if key != "fp32" and "fp32" in rates:
                    rel = abs(loss - rates["fp32"][1]) / abs(rates["fp32"][1])
                    extra = f", first loss {loss:.4f} vs fp32 {rates['fp32'][1]:.4f} ({100 * rel:.2f}%)"
                    if rel > 0.02:
                        return "FAIL", f"{rate:.1f} images/s{extra}"
                return "ok", f"{rate:.1f} images/s{extra}"
            return fn

        row(f"training step fp32 ({device.type}, {size}, batch {batch})", train("fp32"))
        row("training step AMP fp16 + GradScaler", train("amp", amp=True), cuda_only=True)
        row("training step AMP fp16, channels-last", train("amp_cl", amp=True, channels_last=True), cuda_only=True)

        def deterministic():
            torch.use_deterministic_algorithms(True, warn_only=False)
            try:
                train_rate(cfg, device, steps=1)
            finally:
                torch.use_deterministic_algorithms(False)
            return "ok", "every op of a training step has a deterministic CUDA kernel"
        row("DETERMINISTIC training step (no warn_only)", deterministic, cuda_only=True)

        def loader():
            from cdnet_reid.data.datasets import SyntheticReID

            SyntheticReID(data_root())  # generated once (seconds), then reused
            rate = loader_rate(cfg, batches=2 if args.quick else 8)
            model_rate = rates.get("amp", rates.get("fp32", (0, 0)))[0]
            status = "ok" if rate >= model_rate else "SLOW"
            return status, (f"{rate:.0f} images/s with {cfg.DATALOADER.NUM_WORKERS} workers vs the model's "
                            f"{model_rate:.0f} ({rate / max(model_rate, 1e-9):.2f}x)")
        row("training data loader vs model", loader)

        def ranking():
            d_ap, d_rr = ranking_matches(device)
            ok = d_ap < 1e-6 and d_rr < 1e-4
            return ("ok" if ok else "FAIL"), f"|mAP CUDA - CPU| {d_ap:.1e}, re-ranked distances max |diff| {d_rr:.1e}"
        row("ranking and re-ranking of CUDA features", ranking, cuda_only=True)

        def evaluator():
            where, d_map = evaluator_ranks_on(device)
            ok = where.type == "cuda" and d_map < 1e-4
            return ("ok" if ok else "FAIL"), f"ReidEvaluator ranks on {where}, |mAP - CPU mAP| {d_map:.1e}"
        row("evaluation ranks on the model's GPU", evaluator, cuda_only=True)

        def fused():
            diff = fused_moved(cfg, device)
            return ("ok" if diff < 1e-2 else "FAIL"), f"max |diff| to the unfused CPU model {diff:.1e}"
        row("model fused on CPU, then moved to CUDA", fused, cuda_only=True)

        def current_device():
            from cdnet_reid.engine.defaults import default_setup

            c = cfg.clone()
            c.defrost()
            c.MODEL.DEVICE, c.OUTPUT_DIR = "cuda:1", f"{tmp}/setup"
            default_setup(c, argparse.Namespace(config_file="", resume=False, eval_only=False, opts=[]))
            model = build_model(c)
            ok = torch.cuda.current_device() == 1 and next(model.parameters()).device.index == 1
            return ("ok" if ok else "FAIL"), (f"current device {torch.cuda.current_device()} for MODEL.DEVICE cuda:1 "
                                              "(timings and memory statistics read the current device)")
        if has_cuda and torch.cuda.device_count() < 2:
            rows.append(["MODEL.DEVICE cuda:1 sets the current device", "SKIP (one CUDA device)", ""])
        else:
            row("MODEL.DEVICE cuda:1 sets the current device", current_device, cuda_only=True)

        def export():
            worst, (cuda_ep, trt_ep) = onnx_export(cfg, tmp)
            eps = ", ".join(n for n, ok in (("CUDA", cuda_ep), ("TensorRT", trt_ep)) if ok) or "CPU only"
            status = "ok" if worst < 1e-3 else "FAIL"
            return status, f"onnxruntime vs PyTorch max |diff| {worst:.1e}; providers: {eps}"
        row("ONNX export (opset 17, dynamic batch)", export)

    print(tabulate(rows, headers=["check", "status", "detail"], tablefmt="pipe"))
    print(f"total {time.perf_counter() - t_start:.0f} s; {len(failed)} failed"
          + (f": {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
