"""Export a trained model to ONNX (fp32, optionally also int8) and check it with onnxruntime.

    cdnet-reid export --output model.onnx MODEL.WEIGHTS logs/run/model_final.pth
    # + a statically quantised int8 model, calibrated on real crops, evaluated side by side:
    cdnet-reid export --output cdnet.onnx --int8 \\
        --calibration datasets/SyntheticReID/bounding_box_train \\
        MODEL.WEIGHTS logs/synthetic/cdnet/model_final.pth
    python tools/export_onnx.py ...                        (the same, from a checkout)

The model and its input (size, normalisation, flip, feature norm) come from the checkpoint;
``--config-file`` is optional and must agree with it (a ``KEY VALUE`` override is used as given).

The graph takes ``images``: float32 N x 3 x H x W RGB pixels in 0-255 (H x W = INPUT.SIZE_TEST,
or --size), with a dynamic batch axis, and returns ``embeddings``: N x D, with the model's pixel
normalisation inside, the flip average if TEST.FLIP.ENABLED and L2-normalised if TEST.FEAT_NORM
-- the embeddings the evaluator ranks (``cdnet_reid.export.onnx``). After exporting, it runs
onnxruntime and PyTorch on random images of batch sizes 1, 3 and 8 and fails if the max abs
difference of the L2-normalised outputs exceeds --tolerance (1e-4).

``--int8`` also writes ``<output>_int8.onnx`` (or ``--int8-output``): onnxruntime static
quantization in QDQ format, int8 weights with one scale per output channel, uint8 activations
whose ranges are calibrated on ``--calibration`` (a folder of crops, e.g. the training images,
or a text file listing them; ``--calibration-images`` of them, evenly spaced, resized by the test
transform). It then evaluates the fp32 and the int8 file in onnxruntime on every DATASETS.TESTS
set (``--no-eval`` skips it) and times both on a batch of ``--bench-batch`` images, round-robin,
printing one table: Rank-1, mAP and images/s of each. Run either file with
``cdnet-reid extract --onnx`` or ``cdnet_reid.engine.predictor.OnnxPredictor``.

``--for boxmot`` writes what boxmot's trackers (StrongSORT, BoT-SORT, DeepOCSORT, ...) load with
``reid_weights=<output>`` as it is, in the format the output's name says (boxmot's conventions):
``x.onnx``, ``x.torchscript`` or ``x_openvino_model`` (a folder); the graph takes boxmot's input
(ImageNet mean/std-normalised RGB, NCHW float32, resized by boxmot with OpenCV linear: train with
INPUT.RESIZE_BACKEND cv2 for the resize to agree) and the metadata file boxmot reads is written
next to it (``<file>.metadata.json``, or the folder's ``manifest.json``). With ``--int8`` (ONNX,
OpenVINO) also ``x_int8.onnx`` / ``x_int8_openvino_model``, calibrated in that input convention::

    cdnet-reid export --for boxmot --config-file logs/run/config.yaml --output cdnet_openvino_model \
        --int8 --calibration datasets/SyntheticReID/bounding_box_train MODEL.WEIGHTS logs/run/model_final.pth

Projects' backbones: ``--import-module projects/<Name>/<package>``. Without MODEL.WEIGHTS the
model is randomly initialised (with a warning), which is enough to check exportability.
"""

import functools
import os
import statistics
import time
from collections.abc import Sequence

import torch
from torch import nn

from ..config import ConfigError
from ..export import EmbeddingModel, export_onnx, verify_onnx
from ..modeling import num_classes
from ..utils.file_io import InputFileError
from .args import add_config_arguments, add_output, add_size, load_tool_model, setup_tool_cfg, tool_parser


class OnnxModule(nn.Module):
    """An :class:`~cdnet_reid.engine.predictor.OnnxPredictor` behind ``nn.Module``'s call, so the
    evaluation loop (``inference_on_dataset``) can run it."""

    def __init__(self, predictor):
        super().__init__()
        self.predictor = predictor

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.predictor.embed(images)


def evaluate_onnx(cfg, predictors: dict) -> dict:
    """``{name: {dataset: results}}`` of each OnnxPredictor on every ``DATASETS.TESTS`` set."""
    from ..engine import DefaultTrainer
    from ..evaluation import inference_on_dataset

    out = {name: {} for name in predictors}
    for dataset in cfg.DATASETS.TESTS:
        test = DefaultTrainer.build_test_loader(cfg, dataset)
        evaluator = DefaultTrainer.build_evaluator(cfg, dataset, test.meta)
        for name, predictor in predictors.items():
            # flip averaging, if any, is inside the graph
            out[name][dataset] = dict(inference_on_dataset(OnnxModule(predictor), test.loader, evaluator))
    return out


def time_predictors(predictors: dict, size, batch: int, runs: int) -> dict:
    """Median images/s of each predictor's ``embed`` on one random batch, round-robin
    (:func:`~cdnet_reid.utils.benchmark.round_robin`)."""
    from ..utils.benchmark import round_robin

    x = torch.randint(0, 256, (batch, 3, *size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    steps = {name: functools.partial(p.embed, x) for name, p in predictors.items()}
    for step in steps.values():
        step()  # warm-up
    results = round_robin(steps, batch, torch.device("cpu"), runs, 1)
    return {name: statistics.median(rate for rate, _, _ in r) for name, r in results.items()}


def main(argv: Sequence[str] | None = None, prog: str | None = None):
    parser = tool_parser(prog, __doc__)
    add_output(parser, "the .onnx file to write (--for boxmot: x.onnx, x.torchscript or x_openvino_model)")
    parser.add_argument("--for", dest="target", choices=["onnx", "boxmot"], default="onnx",
                        help="onnx: our ONNX graph (0-255 pixels in, default); boxmot: the files "
                             "boxmot's trackers load as reid_weights")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17, default 17)")
    add_size(parser, "input height and width (default: INPUT.SIZE_TEST, the checkpoint's)")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="max abs difference allowed after L2 normalisation (default 1e-4)")
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime check")
    q = parser.add_argument_group("int8 (static quantization)")
    q.add_argument("--int8", action="store_true", help="also write a statically quantised int8 model")
    q.add_argument("--int8-output", default="", help="its path (default: <output>_int8.onnx)")
    q.add_argument("--calibration", default="", metavar="FOLDER_OR_LIST",
                   help="real crops for the activation ranges: a folder or a text file of paths")
    q.add_argument("--calibration-images", type=int, default=256,
                   help="how many of them (evenly spaced; 0 = all; default 256)")
    q.add_argument("--calibrate-method", default="MinMax", choices=["MinMax", "Percentile", "Entropy"])
    q.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor, not per channel")
    q.add_argument("--no-eval", action="store_true", help="skip the fp32 / int8 evaluation")
    q.add_argument("--bench-batch", type=int, default=32, help="batch of the images/s timing (0: skip)")
    q.add_argument("--bench-runs", type=int, default=5)
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    if args.int8 and not args.calibration:
        parser.error("--int8 needs --calibration <folder or list of crops>")
    if args.target == "onnx" and not args.output.endswith(".onnx"):
        raise ConfigError(f"--output {args.output}: give a name ending with .onnx")
    if args.target == "boxmot":
        from ..export.boxmot import boxmot_format

        try:
            fmt = boxmot_format(args.output)
        except ValueError as e:
            parser.error(str(e))
        if args.int8 and fmt == "torchscript":
            parser.error("--int8 --for boxmot: int8 is written for x.onnx and x_openvino_model outputs")
        unused = [flag for flag, used in (("--int8-output", args.int8_output), ("--per-tensor", args.per_tensor),
                                          ("--calibrate-method", args.calibrate_method != "MinMax")) if used]
        if unused:
            parser.error(f"--for boxmot names its int8 file <name>_int8... and quantises per channel with MinMax: "
                         f"{', '.join(unused)} cannot apply")
    cfg = setup_tool_cfg(args)
    model, cfg = load_tool_model(cfg, args, device="cpu")
    module = EmbeddingModel.with_test_settings(model, cfg)
    size = args.size or list(cfg.INPUT.SIZE_TEST)
    if args.target == "boxmot":
        return export_boxmot(args, cfg, model, module, size)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    export_onnx(module, args.output, size, opset=args.opset)
    print(f"wrote {args.output} ({os.path.getsize(args.output) / 2 ** 20:.1f} MB), input "
          f"N x 3 x {size[0]} x {size[1]} float32 0-255, output N x D embeddings")
    if not args.no_check:
        worst, per_batch = verify_onnx(module, args.output, size)
        print("onnxruntime vs PyTorch, max |diff| after L2 normalisation: " + ", ".join(
            f"batch {n}: {d:.2e}" for n, d in per_batch.items()))
        if worst > args.tolerance:
            raise RuntimeError(f"ONNX check failed: max |diff| {worst:.3e} > {args.tolerance}")
    if args.int8:
        export_int8(args, cfg, size)


def _calibration_images(args):
    from ..data.datasets.layout import list_image_files

    images, _ = list_image_files(args.calibration, what="--calibration")
    if not images:
        raise InputFileError(f"--calibration {args.calibration}: no images found")
    return images


def _num_classes(model: nn.Module, cfg) -> int:
    """The classifier's size (0 for an embedding-only model)."""
    sizes = [m.out_features for n, m in model.named_modules()
             if n.split(".")[-1].endswith("classifier") and isinstance(m, nn.Linear)]
    return max(sizes) if sizes else int(num_classes(cfg))


def export_boxmot(args, cfg, model, module, size):
    """``--for boxmot``: the file(s) of :func:`cdnet_reid.export.export_for_boxmot`, checked
    against PyTorch with their own runtime."""
    from ..data.transforms import build_transforms
    from ..export import ImageCalibrationReader
    from ..export.boxmot import boxmot_metadata_path, export_for_boxmot, imagenet_normalize

    calibration = None
    if args.int8:
        images = _calibration_images(args)
        size_cfg = cfg.clone()
        size_cfg.defrost()
        size_cfg.INPUT.SIZE_TEST = list(size)
        pixels = build_transforms(size_cfg, is_train=False)

        def calibration():
            return ImageCalibrationReader(images, size, transform=lambda img: imagenet_normalize(pixels(img)),
                                          max_images=args.calibration_images)
    name = str(cfg.MODEL.BACKBONE.NAME).lower()
    written = export_for_boxmot(module, args.output, size, model_name=name, num_classes=_num_classes(model, cfg),
                                opset=args.opset, calibration=calibration,
                                extra_metadata={"resize_backend_trained": str(cfg.INPUT.RESIZE_BACKEND)})
    for kind, path in written.items():
        print(f"wrote {path} ({kind}) for boxmot: input N x 3 x {size[0]} x {size[1]} float32 ImageNet-"
              f"normalised RGB, metadata {boxmot_metadata_path(path)}")
    if not args.no_check:
        from ..export import verify_boxmot_export

        worst = verify_boxmot_export(module, written["fp32"], size)
        print(f"{written['fp32']} vs PyTorch, max |diff| after L2 normalisation: {worst:.2e}")
        if worst > args.tolerance:
            raise RuntimeError(f"boxmot export check failed: max |diff| {worst:.3e} > {args.tolerance}")


def export_int8(args, cfg, size):
    from tabulate import tabulate

    from ..data.transforms import build_transforms
    from ..engine.predictor import OnnxPredictor
    from ..export import ImageCalibrationReader, quantize_onnx

    images = _calibration_images(args)
    size_cfg = cfg.clone()
    size_cfg.defrost()
    size_cfg.INPUT.SIZE_TEST = list(size)
    reader = ImageCalibrationReader(images, size, transform=build_transforms(size_cfg, is_train=False),
                                    max_images=args.calibration_images)
    out = args.int8_output or os.path.splitext(args.output)[0] + "_int8.onnx"
    t0 = time.perf_counter()
    quantize_onnx(args.output, out, reader, per_channel=not args.per_tensor,
                  calibrate_method=args.calibrate_method)
    print(f"wrote {out} ({os.path.getsize(out) / 2 ** 20:.1f} MB): int8 static QDQ, weights "
          f"per-{'tensor' if args.per_tensor else 'channel'}, {args.calibrate_method} calibration on "
          f"{len(reader)} images of {args.calibration} ({time.perf_counter() - t0:.0f} s)")
    predictors = {"fp32 (onnxruntime)": OnnxPredictor(size_cfg, args.output),
                  "int8 (onnxruntime)": OnnxPredictor(size_cfg, out)}
    results = {} if args.no_eval or not cfg.DATASETS.TESTS else evaluate_onnx(size_cfg, predictors)
    speed = (time_predictors(predictors, size, args.bench_batch, args.bench_runs)
             if args.bench_batch > 0 else {})
    rows = []
    for name in predictors:
        row = [name]
        for dataset in cfg.DATASETS.TESTS if results else ():
            r = results[name][dataset]
            row += [f"{r['Rank-1']:.2f}", f"{r['mAP']:.2f}"]
        if speed:
            base = speed["fp32 (onnxruntime)"]
            row += [f"{speed[name]:.1f}", f"{speed[name] / base:.2f}x"]
        rows.append(row)
    headers = ["model"]
    for dataset in cfg.DATASETS.TESTS if results else ():
        headers += [f"{dataset} Rank-1", f"{dataset} mAP"]
    if speed:
        headers += [f"images/s (batch {args.bench_batch}, {torch.get_num_threads()} threads)", "vs fp32"]
    print(tabulate(rows, headers=headers, tablefmt="pipe"))
    if not cfg.MODEL.WEIGHTS and results:
        print("(MODEL.WEIGHTS is empty: these are the figures of a randomly initialised model)")


if __name__ == "__main__":
    main()
