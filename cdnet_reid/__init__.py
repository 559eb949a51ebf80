"""cdnet-reid: lightweight, architecture-searched person re-identification (CDNet / CNet).

Importing this package is cheap: it only defines the version (``FeatureExtractor``, the
three-line way to embed crops with a trained model file, is imported on first use). Sub-packages register their
components (backbones, heads, datasets, ...) when they are imported.
"""

from .version import __version__

__all__ = ["FeatureExtractor", "__version__"]


def __getattr__(name):
    """``cdnet_reid.FeatureExtractor`` (imported on first use, so that ``import cdnet_reid`` stays
    cheap)."""
    if name == "FeatureExtractor":
        from .engine.feature_extractor import FeatureExtractor

        return FeatureExtractor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
