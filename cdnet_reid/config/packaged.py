"""The configs shipped with the package: the repository's top-level ``configs/`` folder, which a
wheel carries as ``cdnet_reid/configs`` (pyproject.toml maps it at build time), so a config can be
named relative to that folder (``Market/cdnet.yml``) from an installed package in any folder."""

import os
from pathlib import Path

__all__ = ["configs_folder", "list_configs", "resolve_config_file"]

#: Suffixes of config files.
CONFIG_SUFFIXES = (".yml", ".yaml")


def configs_folder() -> Path | None:
    """The folder of the shipped configs: ``cdnet_reid/configs`` in an installed wheel, the
    checkout's ``configs/`` when running from a clone; ``None`` if neither exists."""
    package = Path(__file__).resolve().parents[1]
    for folder in (package / "configs", package.parent / "configs"):
        if folder.is_dir() and any(folder.rglob("*.yml")):
            return folder
    return None


def list_configs() -> list[str]:
    """The shipped config names (paths relative to :func:`configs_folder`), sorted."""
    folder = configs_folder()
    if folder is None:
        return []
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.suffix in CONFIG_SUFFIXES and p.is_file())


def resolve_config_file(name: str) -> str:
    """``name`` itself when it exists on disk (a path always wins), else the shipped config of
    that name (``Market/cdnet.yml``, or ``configs/Market/cdnet.yml`` as the README writes it),
    else ``name`` unchanged (so the error names what the user wrote)."""
    if not name or os.path.exists(name) or "://" in name:
        return name
    folder = configs_folder()
    if folder is None:
        return name
    relative = Path(name)
    if relative.is_absolute():
        return name
    parts = relative.parts
    for candidate in (relative, Path(*parts[1:]) if parts and parts[0] == "configs" and len(parts) > 1 else None):
        if candidate is not None and (folder / candidate).is_file():
            return str(folder / candidate)
    return name
