"""Build-time mapping of the top-level configs/ folder into the wheel as ``cdnet_reid.configs``
(pyproject.toml holds everything else). ``packages.find`` cannot list a package whose folder
lies outside ``cdnet_reid/``, so the list is made here."""

from setuptools import find_packages, setup

setup(packages=find_packages(include=["cdnet_reid", "cdnet_reid.*"]) + ["cdnet_reid.configs"])
