"""Utilities shared by every part of the project (distributed helpers, logging, checkpoints, ...)."""
