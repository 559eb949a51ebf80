"""The package version (one place; ``cdnet-reid --version`` prints it)."""

__version__ = "0.1.0"
