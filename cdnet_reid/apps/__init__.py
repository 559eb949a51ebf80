"""The command-line applications, importable so that an installed package runs them from any
folder (``cdnet-reid <command>``, see :mod:`cdnet_reid.cli`); ``tools/*.py`` are thin wrappers."""
