"""cdnet-reid: lightweight, architecture-searched person re-identification (CDNet / CNet).

Importing this package is cheap: it only defines the version. Sub-packages register their
components (backbones, heads, datasets, ...) when they are imported.
"""

__version__ = "0.1.0"
