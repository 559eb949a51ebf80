"""The project's own iopath ``PathManager`` (local paths plus HTTP(S) URLs)."""

from iopath.common.file_io import HTTPURLHandler, PathManager as _PathManager

PathManager = _PathManager()
PathManager.register_handler(HTTPURLHandler())

__all__ = ["PathManager"]
