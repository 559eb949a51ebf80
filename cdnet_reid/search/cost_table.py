"""The cost table of a search space: latency, MACs and parameters of every candidate block of
every searchable layer, measured in place, plus the fixed (non-searchable) parts of the network.

A table is built for one config (its space, stages, widths, head and ``INPUT.SIZE_TEST``), one
runtime and one batch size (:func:`build_cost_table`) and stored as JSON::

    {"format": "cdnet-reid-cost-table", "version": 1,
     "space": "cdnet", "candidates": [[3, 5, 1], ...],
     "runtime": "torch" | "onnxruntime" | "openvino", "runtime_version": "...",
     "cpu": "...", "threads": 2, "batch_size": 1, "input_size": [H, W],
     "backbone": "...", "head": "...", "width_mult": 0.5, "channels_last": true,
     "timing": {"warmup": 5, "runs": 7, "iters": 10},
     "layers": [{"input_shape": [N, C, H, W], "output_shape": [...],
                 "candidates": [{"op": "combined3x5-1", "latency_ms": .., "macs": .., "params": ..}, ...]},
                ...],
     "fixed": {"latency_ms": .., "macs": .., "params": ..,
               "parts": {"stem": {...}, "downsample1": {...}, ..., "head": {...}}}}

Units: ``latency_ms`` is milliseconds **per image** (the median time of one batch of
``batch_size`` images, divided by ``batch_size``); ``macs`` are multiply-adds of convolutions and
linear layers (the paper's "FLOPs", :func:`~cdnet_reid.utils.complexity.conv_linear_macs`);
``params`` are the parameters of the modules that run in eval mode (a re-ID head's classifier is
not counted). The cost of a genotype is ``fixed + sum over layers of its candidate's cost``; for
MACs and parameters that sum equals the measured count of the built network exactly, for latency
it leaves out the few element-wise operations between blocks (input normalisation included in
the stem) and any runtime's fusion across blocks.

Every candidate is a freshly built block (``build_block``) fed with the layer's real input: the
activation it receives when the config's network (random initial weights) runs once on a random
image. Blocks are timed round-robin (run r of every
block, then run r + 1), so that a drift of the machine's speed affects them all alike.
"""

import json
import math
import os
import statistics
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..config import ConfigError
from ..modeling import build_model
from ..modeling.space.genotype import CANDIDATES, Genotype, load_genotype, op_name, random_genotype
from ..modeling.space.ops import DownSample, build_block, init_weights
from ..utils.complexity import conv_linear_macs, inference_parameters, mac_analysis
from ..utils.env import cpu_name
from ..utils.file_io import atomic_write

FORMAT = "cdnet-reid-cost-table"
VERSION = 1
RUNTIMES = ("torch", "onnxruntime", "openvino")
#: The cost kinds a table holds: name -> (entry key, unit).
KINDS = {"latency": ("latency_ms", "ms per image"), "macs": ("macs", "MACs"), "params": ("params", "parameters")}


class CostTableError(ConfigError):
    """A cost table (file or value) that cannot be used; the message names the file and key."""


class RuntimeUnavailableError(RuntimeError):
    """The requested runtime is not installed."""


# ---------------------------------------------------------------------------------- the network
class _Stem(nn.Module):
    """Input normalisation and stem of ``model`` (its first non-searchable part)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> Tensor:
        return self.model.backbone.stem(self.model.preprocess_image(images))


class _Head(nn.Module):
    """``head`` fed with the backbone maps as positional tensors (exportable, countable)."""

    def __init__(self, head: nn.Module, names: Sequence[str]):
        super().__init__()
        self.head, self.names = head, list(names)

    def forward(self, *maps: Tensor) -> Tensor:
        return self.head(OrderedDict(zip(self.names, maps)))


def space_of(backbone: nn.Module) -> str:
    space = getattr(backbone, "space", "")
    if space not in CANDIDATES:
        raise ConfigError(f"MODEL.BACKBONE.NAME {type(backbone).__name__} is not a CNet/CDNet network or "
                          f"supernet: a cost table needs one of CDNet, CNet, CDNetSupernet, CNetSupernet")
    return space


def _searchable_cells(backbone: nn.Module) -> list[nn.Module]:
    return [cell for cell in backbone.cells if not isinstance(cell, DownSample)]


@torch.no_grad()
def network_parts(cfg, batch_size: int = 1):
    """The config's model (eval, CPU) and, in execution order, ``(name, module, inputs)`` of its
    fixed parts and ``(input_shape, output_shape, input)`` of every searchable layer (``input``: the
    activation the layer receives in this network, on which its candidates are timed).

    Returns ``(model, space, fixed, layers)``; ``fixed`` holds the stem (with the input
    normalisation), every DownSample (``downsample{i}``) and the head (``head``, fed with the
    backbone's output maps)."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.DEVICE = "cpu"
    if cfg.MODEL.HEADS.NUM_CLASSES == 0:
        cfg.MODEL.HEADS.NUM_CLASSES = 1  # the classifier does not run in eval mode
    model = build_model(cfg).eval()
    backbone = model.backbone
    space = space_of(backbone)
    memory = torch.channels_last if cfg.MODEL.CHANNELS_LAST else torch.contiguous_format
    h, w = cfg.INPUT.SIZE_TEST
    images = torch.rand(batch_size, 3, h, w) * 255
    shapes: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    inputs: dict[int, Tensor] = {}

    def record(i):
        def hook(module, args, out):  # returns None: the output is left as it is
            shapes[i] = (tuple(args[0].shape), tuple(out.shape))
            inputs[i] = args[0].clone()
        return hook

    handles = [cell.register_forward_hook(record(i)) for i, cell in enumerate(backbone.cells)]
    try:
        maps = backbone(model.preprocess_image(images))
    finally:
        for hdl in handles:
            hdl.remove()
    fixed: list[tuple[str, nn.Module, tuple[Tensor, ...]]] = [("stem", _Stem(model), (images,))]
    layers = []
    stage = 0
    for i, cell in enumerate(backbone.cells):
        if isinstance(cell, DownSample):
            stage += 1
            fixed.append((f"downsample{stage}", cell, (inputs[i].contiguous(memory_format=memory),)))
        else:
            layers.append((*shapes[i], inputs[i].contiguous(memory_format=memory)))
    head_inputs = tuple(m.contiguous(memory_format=memory) for m in maps.values())
    fixed.append(("head", _Head(model.head, list(maps)), head_inputs))
    expected = len(_searchable_cells(backbone))
    if len(layers) != expected:  # pragma: no cover - guards the structure assumption
        raise RuntimeError(f"found {len(layers)} searchable layers, expected {expected}")
    return model, space, fixed, layers


def candidate_block(space: str, index: int, c_in: int, c_out: int, *, adaptive_fusion: bool,
                    channels_last: bool) -> nn.Module:
    """Candidate ``index`` of ``space`` as a freshly initialised eval block ``c_in -> c_out``."""
    block = build_block(CANDIDATES[space][index], c_in, c_out, adaptive_fusion=adaptive_fusion)
    init_weights(block)
    block.eval()
    return block.to(memory_format=torch.channels_last) if channels_last else block


# ---------------------------------------------------------------------------------- the runtimes
def _ort_session(path: str, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def _export(module: nn.Module, inputs: tuple[Tensor, ...], path: str) -> list[str]:
    import warnings

    names = [f"input{i}" for i in range(len(inputs))]
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated in favour of dynamo
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning, UserWarning))
        torch.onnx.export(module, tuple(x.contiguous() for x in inputs), path, dynamo=False,
                          opset_version=17, input_names=names, do_constant_folding=True)
    return names


def runtime_version(runtime: str) -> str:
    """The version of ``runtime``; :class:`RuntimeUnavailableError` if it is not installed."""
    if runtime == "torch":
        return torch.__version__
    if runtime == "onnxruntime":
        import onnxruntime

        return onnxruntime.__version__
    if runtime == "openvino":
        try:
            import openvino
        except ImportError:
            raise RuntimeUnavailableError("runtime 'openvino' is not installed (pip install openvino, "
                                          "or the project's openvino extra)") from None
        return openvino.__version__
    raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")


def make_timer(runtime: str, module: nn.Module, inputs: tuple[Tensor, ...], tmp: str, threads: int
               ) -> Callable[[], Any]:
    """A function running ``module(*inputs)`` once in ``runtime`` (exported to ONNX in ``tmp``
    for onnxruntime and openvino)."""
    if runtime == "torch":
        def run():
            with torch.inference_mode():
                return module(*inputs)
        return run
    path = tempfile.mktemp(suffix=".onnx", dir=tmp)
    names = _export(module, inputs, path)
    feed = {n: x.contiguous().numpy() for n, x in zip(names, inputs)}
    if runtime == "onnxruntime":
        session = _ort_session(path, threads)
        feed = {i.name: feed[i.name] for i in session.get_inputs()}  # an unused map is not a graph input
        return lambda: session.run(None, feed)
    import openvino as ov  # runtime_version() has checked that it is installed

    compiled = ov.Core().compile_model(path, "CPU", {"INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()
    feed = {name: feed[name] for name in (p.get_any_name() for p in compiled.inputs)}
    return lambda: request.infer(feed)


def time_round_robin(timers: Sequence[Callable[[], Any]], *, warmup: int, runs: int, iters: int
                     ) -> list[float]:
    """Median seconds per call of every timer: ``warmup`` calls each, then ``runs`` rounds in which
    every timer runs ``iters`` calls in turn."""
    for t in timers:
        for _ in range(warmup):
            t()
    samples: list[list[float]] = [[] for _ in timers]
    for _ in range(runs):
        for k, t in enumerate(timers):
            start = time.perf_counter()
            for _ in range(iters):
                t()
            samples[k].append((time.perf_counter() - start) / iters)
    return [statistics.median(s) for s in samples]


def _counts(module: nn.Module, inputs: tuple[Tensor, ...]) -> dict[str, int]:
    macs = conv_linear_macs(mac_analysis(module, inputs))
    # parameters of the modules that run (the stem part wraps the whole model; a head's classifier
    # does not run in eval mode)
    return {"macs": int(round(macs)), "params": int(inference_parameters(module, inputs))}


# ---------------------------------------------------------------------------------- the table
def build_cost_table(cfg, *, runtime: str = "torch", batch_size: int = 1, warmup: int = 5, runs: int = 7,
                     iters: int = 10, measure_latency: bool = True,
                     log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The cost table of ``cfg``'s network (see the module docstring). With
    ``measure_latency=False`` only MACs and parameters are computed (no ``latency_ms``, no
    ``runtime``): what a search of kind macs/params needs."""
    if batch_size < 1 or runs < 1 or iters < 1 or warmup < 0:
        raise ValueError("batch_size, runs and iters must be >= 1 and warmup >= 0")
    version = runtime_version(runtime) if measure_latency else None
    threads = torch.get_num_threads()
    model, space, fixed, layers = network_parts(cfg, batch_size)
    b = cfg.MODEL.BACKBONE
    entries: list[tuple[dict[str, Any], nn.Module, tuple[Tensor, ...]]] = []
    fixed_rows: OrderedDict[str, dict[str, Any]] = OrderedDict()
    for name, module, inputs in fixed:
        fixed_rows[name] = _counts(module, inputs)
        entries.append((fixed_rows[name], module, inputs))
    layer_rows = []
    for l, (in_shape, out_shape, x) in enumerate(layers):
        row = {"input_shape": list(in_shape), "output_shape": list(out_shape), "candidates": []}
        for j, entry in enumerate(CANDIDATES[space]):
            block = candidate_block(space, j, in_shape[1], out_shape[1], adaptive_fusion=b.ADAPTIVE_FUSION,
                                    channels_last=cfg.MODEL.CHANNELS_LAST)
            cand = {"op": op_name(space, entry), **_counts(block, (x,))}
            row["candidates"].append(cand)
            entries.append((cand, block, (x,)))
        layer_rows.append(row)
        if log:
            log(f"layer {l}: input {list(in_shape)}, {len(CANDIDATES[space])} candidates counted")
    if measure_latency:
        with tempfile.TemporaryDirectory() as tmp:
            timers = [make_timer(runtime, m, inputs, tmp, threads) for _, m, inputs in entries]
            if log:
                log(f"timing {len(timers)} blocks in {runtime} {version} ({threads} threads, batch {batch_size}, "
                    f"{warmup} warm-up calls, {runs} rounds of {iters} calls)")
            seconds = time_round_robin(timers, warmup=warmup, runs=runs, iters=iters)
        for (row, _, _), s in zip(entries, seconds):
            row["latency_ms"] = round(s * 1000.0 / batch_size, 6)
    kinds = [k for k, (key, _) in KINDS.items() if key in fixed_rows["stem"]]
    table = {
        "format": FORMAT, "version": VERSION, "space": space,
        "candidates": [list(e) for e in CANDIDATES[space]],
        "runtime": runtime if measure_latency else None, "runtime_version": version,
        "cpu": cpu_name(), "threads": threads, "batch_size": batch_size,
        "input_size": list(cfg.INPUT.SIZE_TEST), "backbone": b.NAME, "head": cfg.MODEL.HEADS.NAME,
        "stages": list(b.STAGES), "width_mult": b.WIDTH_MULT, "channels_last": bool(cfg.MODEL.CHANNELS_LAST),
        "timing": {"warmup": warmup, "runs": runs, "iters": iters} if measure_latency else None,
        "layers": layer_rows,
        "fixed": {**{KINDS[k][0]: _sum(fixed_rows.values(), KINDS[k][0]) for k in kinds},
                  "parts": dict(fixed_rows)},
    }
    validate_cost_table(table, "<built table>")
    return table


def _sum(rows, key):
    total = sum(r[key] for r in rows)
    return round(total, 6) if isinstance(total, float) else total


def save_cost_table(table: dict[str, Any], path: str) -> None:
    """Write ``table`` as JSON (atomic)."""
    with atomic_write(path) as f:
        json.dump(table, f, indent=1)
        f.write("\n")


def load_cost_table(path: str, kind: str | None = None) -> dict[str, Any]:
    """Read and validate a cost table; with ``kind`` also check that it holds that cost."""
    if not os.path.isfile(path):
        raise CostTableError(f"cost table {path}: no such file")
    try:
        with open(path, encoding="utf-8") as f:
            table = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CostTableError(f"cost table {path}: invalid JSON ({e})") from None
    validate_cost_table(table, path, kind)
    return table


def _number(value, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise CostTableError(f"{where}: expected a finite number >= 0, got {value!r}")


def validate_cost_table(table: Any, source: str, kind: str | None = None) -> None:
    """Raise :class:`CostTableError` naming ``source`` and the key when ``table`` is not a valid
    cost table (or lacks the cost ``kind``)."""
    if not isinstance(table, dict):
        raise CostTableError(f"cost table {source}: expected a JSON object")
    if table.get("format") != FORMAT:
        raise CostTableError(f"cost table {source}: key 'format' must be {FORMAT!r}, got {table.get('format')!r}")
    if not isinstance(table.get("version"), int) or table["version"] > VERSION:
        raise CostTableError(f"cost table {source}: key 'version' {table.get('version')!r} is not understood "
                             f"by this code (version {VERSION})")
    space = table.get("space")
    if space not in CANDIDATES:
        raise CostTableError(f"cost table {source}: key 'space' must be one of {sorted(CANDIDATES)}, got {space!r}")
    if table.get("candidates") != [list(e) for e in CANDIDATES[space]]:
        raise CostTableError(f"cost table {source}: key 'candidates' differs from the {space} candidate list "
                             f"{[list(e) for e in CANDIDATES[space]]}")
    bs = table.get("batch_size")
    if isinstance(bs, bool) or not isinstance(bs, int) or bs < 1:
        raise CostTableError(f"cost table {source}: key 'batch_size' must be an integer >= 1, got {bs!r}")
    layers = table.get("layers")
    if not isinstance(layers, list) or not layers:
        raise CostTableError(f"cost table {source}: key 'layers' must be a non-empty list")
    fixed = table.get("fixed")
    if not isinstance(fixed, dict):
        raise CostTableError(f"cost table {source}: key 'fixed' must be an object")
    present = [key for key, _ in KINDS.values() if key in fixed]
    if not {"macs", "params"} <= set(present):
        raise CostTableError(f"cost table {source}: key 'fixed' must hold 'macs' and 'params'")
    if kind and KINDS[kind][0] not in present:
        raise CostTableError(f"cost table {source}: has no {KINDS[kind][0]!r} (built without measuring {kind}); "
                             f"build one with cdnet-reid latency-table")
    calibration = table.get("latency_calibration")
    if calibration is not None:
        scale = calibration.get("scale") if isinstance(calibration, dict) else None
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
            raise CostTableError(f"cost table {source}: key 'latency_calibration.scale' must be a finite number > 0, "
                                 f"got {scale!r}")
    keys = present
    for key in keys:
        _number(fixed[key], f"cost table {source}: key 'fixed.{key}'")
    for l, row in enumerate(layers):
        cands = row.get("candidates") if isinstance(row, dict) else None
        if not isinstance(cands, list) or len(cands) != len(CANDIDATES[space]):
            raise CostTableError(f"cost table {source}: key 'layers[{l}].candidates' must list the "
                                 f"{len(CANDIDATES[space])} {space} candidates")
        for j, cand in enumerate(cands):
            if not isinstance(cand, dict):
                raise CostTableError(f"cost table {source}: key 'layers[{l}].candidates[{j}]' must be an object")
            for key in keys:
                if key not in cand:
                    raise CostTableError(f"cost table {source}: key 'layers[{l}].candidates[{j}].{key}' is missing")
                _number(cand[key], f"cost table {source}: key 'layers[{l}].candidates[{j}].{key}'")


def latency_scale(table: dict[str, Any]) -> float:
    """The factor from the sum of the blocks' latencies to the whole network's: the table's
    ``latency_calibration.scale`` (:func:`calibrate_latency`), else 1."""
    return float((table.get("latency_calibration") or {}).get("scale", 1.0))


def cost_matrix(table: dict[str, Any], kind: str, *, calibrated: bool = True) -> tuple[float, list[list[float]]]:
    """``(fixed, costs)``: the fixed part and the L x N per-layer candidate costs of ``kind``
    (latencies times :func:`latency_scale` when ``calibrated``)."""
    key = KINDS[kind][0]
    scale = latency_scale(table) if kind == "latency" and calibrated else 1.0
    return (float(table["fixed"][key]) * scale,
            [[float(c[key]) * scale for c in row["candidates"]] for row in table["layers"]])


def cost_range(table: dict[str, Any], kind: str) -> tuple[float, float]:
    """``(cheapest, dearest)``: the cost of the table's cheapest and dearest networks (fixed + the
    cheapest / dearest candidate of every layer; latencies calibrated)."""
    fixed, costs = cost_matrix(table, kind)
    return fixed + sum(min(row) for row in costs), fixed + sum(max(row) for row in costs)


def genotype_cost(table: dict[str, Any], genotype: Genotype, kind: str, *, calibrated: bool = True) -> float:
    """The cost of ``genotype``'s network predicted by ``table``: fixed + its candidates' costs
    (for latency, times the table's calibration scale when ``calibrated``)."""
    if genotype.space != table["space"] or len(genotype.layers) != len(table["layers"]):
        raise CostTableError(f"the cost table is for {len(table['layers'])} {table['space']} layers, the "
                             f"genotype has {len(genotype.layers)} {genotype.space} layers")
    fixed, costs = cost_matrix(table, kind, calibrated=calibrated)
    return fixed + sum(costs[l][j] for l, j in enumerate(genotype.ops))


#: The backbone that runs one genotype of a space (what a search's result is trained as).
SEARCHED_BACKBONE = {"cdnet": "CDNet", "cnet": "CNet"}


def searched_network(cfg, genotype: Genotype) -> nn.Module:
    """The network of the table's config with ``genotype`` fixed: the space's searched backbone
    (``SEARCHED_BACKBONE``) with the config's widths, stages, head and input; eval, on the CPU."""
    c = cfg.clone()
    c.defrost()
    c.MODEL.DEVICE = "cpu"
    c.MODEL.BACKBONE.NAME = SEARCHED_BACKBONE[genotype.space]
    if c.MODEL.HEADS.NUM_CLASSES == 0:
        c.MODEL.HEADS.NUM_CLASSES = 1  # the classifier does not run in eval mode
    return build_model(c, stored={"genotype": genotype.to_dict()}).eval()


def calibration_genotypes(space: str, num_layers: int, count: int) -> list[Genotype]:
    """The genotypes a latency table is calibrated on: the paper's (``<space>_top2``, when it has
    ``num_layers`` layers) and uniform random ones (seeds 1, 2, ...), ``count`` in all."""
    paper = load_genotype(f"{space}_top2")
    picks = [paper] if len(paper.layers) == num_layers else []
    seed = 1
    while len(picks) < count:
        picks.append(random_genotype(space, seed, num_layers))
        seed += 1
    return picks[:count]


def calibrate_latency(table: dict[str, Any], cfg, genotypes: Sequence[Genotype], *, warmup: int = 5,
                      runs: int = 7, iters: int = 10, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Time the whole network of every genotype (:func:`searched_network`) in the table's runtime,
    batch size and threads, round-robin, and fit ``measured = scale x predicted`` (least squares
    through the origin) against the sum of the table's blocks: the time between blocks (element-wise
    operations, memory traffic of the activations) that per-block timings leave out is then part of
    every prediction. Returns the ``latency_calibration`` record (scale, genotypes, measured and
    uncalibrated predicted milliseconds per image, the largest relative error after scaling)."""
    if not genotypes:
        raise ValueError("calibrate_latency needs at least one genotype")
    bs, (h, w) = table["batch_size"], table["input_size"]
    images = torch.rand(bs, 3, h, w) * 255
    nets = [searched_network(cfg, g) for g in genotypes]
    with tempfile.TemporaryDirectory() as tmp:
        timers = [make_timer(table["runtime"], net, (images,), tmp, table["threads"]) for net in nets]
        if log:
            log(f"timing {len(timers)} whole networks for the latency calibration")
        seconds = time_round_robin(timers, warmup=warmup, runs=runs, iters=iters)
    measured = [s * 1000.0 / bs for s in seconds]
    predicted = [genotype_cost(table, g, "latency", calibrated=False) for g in genotypes]
    scale = sum(m * p for m, p in zip(measured, predicted)) / sum(p * p for p in predicted)
    worst = max(abs(scale * p - m) / m for m, p in zip(measured, predicted))
    return {"scale": round(scale, 6), "genotypes": [[list(e) for e in g.layers] for g in genotypes],
            "measured_ms": [round(m, 6) for m in measured], "predicted_ms": [round(p, 6) for p in predicted],
            "max_relative_error": round(worst, 6)}


def measure_latency_ms(model: nn.Module, images: Tensor, *, warmup: int = 5, runs: int = 7, iters: int = 10) -> float:
    """Milliseconds per image of ``model.eval()(images)`` in torch (median over ``runs``)."""
    model.eval()
    (seconds,) = time_round_robin([make_timer("torch", model, (images,), "", torch.get_num_threads())],
                                  warmup=warmup, runs=runs, iters=iters)
    return seconds * 1000.0 / images.shape[0]
