"""The machine's limit for a model: the measured matrix-multiply rate of this CPU per data type,
turned into images/s for the model's multiply-adds.

``peak images/s = GEMM rate / (2 * MACs per image)``: what the model would run at if every
multiply-add ran at the speed of a large, cache-friendly matrix product. Real networks (depthwise
convolutions, small activations, gates) reach a fraction of it; a benchmark row divided by the
peak of its data type says how much of the machine it uses.

* fp32, bf16: ``torch.mm`` of two ``n x n`` matrices (oneDNN / MKL; bf16 runs on AVX512-BF16 /
  AMX where the CPU has them);
* int8: onnxruntime's ``MatMulInteger`` (uint8 x int8 -> int32, the kernel its quantised
  convolutions use; VNNI / AMX where present), when onnxruntime is installed.
"""

import time

import numpy as np
import torch

__all__ = ["gemm_rates", "gemm_rate", "peak_images_per_s"]


def _time(fn, seconds: float) -> float:
    fn()  # warm-up
    calls, t0 = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return calls / elapsed


def _torch_rate(dtype: torch.dtype, n: int, seconds: float) -> float:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(dtype)
    b = torch.randn(n, n, generator=gen).to(dtype)
    with torch.inference_mode():
        return 2 * n ** 3 * _time(lambda: torch.mm(a, b), seconds)


def _int8_rate(n: int, seconds: float, threads: int) -> float | None:
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.integers(-127, 128, (n, n), dtype=np.int8), "B")
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["A", "B"], ["Y"])], "gemm",
                              [helper.make_tensor_value_info("A", TensorProto.UINT8, [n, n])],
                              [helper.make_tensor_value_info("Y", TensorProto.INT32, [n, n])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    a = rng.integers(0, 256, (n, n), dtype=np.uint8)
    return 2 * n ** 3 * _time(lambda: session.run(None, {"A": a}), seconds)


def gemm_rate(dtype: str, n: int = 1024, seconds: float = 0.5) -> float | None:
    """Operations per second (2 per multiply-add) of an ``n x n`` matrix product in ``dtype``
    (``fp32``, ``bf16``, ``int8``) with this process's threads; None when it cannot be measured."""
    if dtype == "fp32":
        return _torch_rate(torch.float32, n, seconds)
    if dtype == "bf16":
        return _torch_rate(torch.bfloat16, n, seconds)
    if dtype == "int8":
        return _int8_rate(n, seconds, torch.get_num_threads())
    raise ValueError(f"dtype must be fp32, bf16 or int8, got {dtype!r}")


def gemm_rates(n: int = 1024, seconds: float = 0.5) -> dict[str, float]:
    """:func:`gemm_rate` of each data type that can be measured here."""
    rates = {d: gemm_rate(d, n, seconds) for d in ("fp32", "bf16", "int8")}
    return {d: r for d, r in rates.items() if r}


def peak_images_per_s(macs_per_image: float, ops_per_s: float) -> float:
    """Images/s of a model of ``macs_per_image`` multiply-adds at ``ops_per_s``."""
    return ops_per_s / (2.0 * macs_per_image)
