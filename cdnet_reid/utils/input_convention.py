"""The input convention of a model file: exported files normally take the 0-255 RGB pixels of the
test transform; a file written for boxmot takes ImageNet mean/std-normalised RGB (0-1 scale) and
says so in its ONNX metadata (``input_convention``). Shared by the exporters that write such
files and the predictors that run them."""


import torch

__all__ = ["IMAGENET_CONVENTION", "IMAGENET_MEAN", "IMAGENET_STD", "imagenet_normalize", "read_onnx_metadata",
           "to_model_input"]

#: boxmot's input normalisation (RGB, 0-1 scale).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: The ``input_convention`` metadata value of a file taking ImageNet-normalised input.
IMAGENET_CONVENTION = "imagenet_normalized_rgb"


def imagenet_normalize(pixels: torch.Tensor) -> torch.Tensor:
    """0-255 RGB ``N x 3 x H x W`` (or ``3 x H x W``) -> ImageNet-normalised float32 input."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (pixels.float() / 255.0 - mean) / std


def to_model_input(pixels: torch.Tensor, convention: str) -> torch.Tensor:
    """0-255 RGB pixels as the float32 input of a file with ``convention`` (its metadata's
    ``input_convention``; "" for the plain 0-255 input)."""
    return imagenet_normalize(pixels) if convention == IMAGENET_CONVENTION else pixels.float()


def read_onnx_metadata(path: str) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict of strings."""
    import onnx

    return {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
