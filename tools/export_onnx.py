#!/usr/bin/env python
"""Export a trained model to ONNX and check it against PyTorch with onnxruntime.

    python tools/export_onnx.py --config-file logs/run/config.yaml --output model.onnx \\
        MODEL.WEIGHTS logs/run/model_final.pth

The graph takes ``images``: float32 N x 3 x H x W RGB pixels in 0-255 (H x W = INPUT.SIZE_TEST,
or --size), with a dynamic batch axis, and returns ``embeddings``: N x D, with the model's pixel
normalisation inside, the flip average if TEST.FLIP.ENABLED and L2-normalised if TEST.FEAT_NORM
-- the embeddings the evaluator ranks (``cdnet_reid.export.onnx``). After exporting, it runs
onnxruntime and PyTorch on random images of batch sizes 1, 3 and 8 and fails if the max abs
difference of the L2-normalised outputs exceeds --tolerance (1e-4).

Projects' backbones: ``--import-module projects/<Name>/<package>``. Without MODEL.WEIGHTS the
model is randomly initialised (with a warning), which is enough to check exportability.
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from cdnet_reid.engine import DefaultPredictor  # noqa: E402
from cdnet_reid.engine.defaults import add_config_arguments, setup_tool_cfg  # noqa: E402
from cdnet_reid.export import EmbeddingModel, export_onnx, verify_onnx  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True, help="the .onnx file to write")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17, default 17)")
    parser.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="input height and width (default: INPUT.SIZE_TEST)")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="max abs difference allowed after L2 normalisation (default 1e-4)")
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime check")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    cfg = setup_tool_cfg(args)
    model = DefaultPredictor.build_model(cfg).cpu().eval()
    module = EmbeddingModel.from_config(model, cfg)
    size = args.size or list(cfg.INPUT.SIZE_TEST)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    export_onnx(module, args.output, size, opset=args.opset)
    print(f"wrote {args.output} ({os.path.getsize(args.output) / 2 ** 20:.1f} MB), input "
          f"N x 3 x {size[0]} x {size[1]} float32 0-255, output N x D embeddings")
    if not args.no_check:
        worst, per_batch = verify_onnx(module, args.output, size)
        print("onnxruntime vs PyTorch, max |diff| after L2 normalisation: " + ", ".join(
            f"batch {n}: {d:.2e}" for n, d in per_batch.items()))
        if worst > args.tolerance:
            raise SystemExit(f"ONNX check failed: max |diff| {worst:.3e} > {args.tolerance}")


if __name__ == "__main__":
    main()
