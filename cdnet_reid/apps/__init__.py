"""The command-line applications, importable so that an installed package runs them from any
folder (``cdnet-reid <command>``, see :mod:`cdnet_reid.cli`); ``tools/*.py`` are thin wrappers."""

# The search's config keys and supernets are part of the package's components: a run's
# config.yaml (which lists the SEARCH section) and a supernet checkpoint load in every command.
from .. import search  # noqa: E402,F401
