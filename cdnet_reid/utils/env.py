"""Environment helpers: devices, seeding, and a table describing the software environment."""

import os
import platform
import random
import sys

import numpy as np
import torch


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available else CPU; otherwise ``torch.device(name)`` (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"MODEL.DEVICE={name!r} but CUDA is not available; use 'cpu' or 'auto'")
    return device


def seed_all_rng(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)


def collect_env_info() -> str:
    """A table of the versions and hardware that matter for reproducing a run."""
    from tabulate import tabulate

    import cdnet_reid

    rows = [("sys.platform", sys.platform), ("Python", sys.version.replace("\n", " ")),
            ("platform", platform.platform()), ("cdnet_reid", cdnet_reid.__version__),
            ("numpy", np.__version__), ("PyTorch", torch.__version__),
            ("PyTorch debug build", torch.version.debug), ("CPU threads", torch.get_num_threads())]
    for mod in ("torchvision", "fvcore", "iopath", "yacs", "cv2", "PIL"):
        try:
            m = __import__(mod)
            rows.append((mod, getattr(m, "__version__", "unknown")))
        except ImportError:
            rows.append((mod, "not installed"))
    rows.append(("CUDA available", torch.cuda.is_available()))
    if torch.cuda.is_available():
        rows.append(("CUDA", torch.version.cuda))
        rows.append(("cuDNN", torch.backends.cudnn.version()))
        for i in range(torch.cuda.device_count()):
            rows.append((f"GPU {i}", torch.cuda.get_device_name(i)))
    return tabulate(rows)
