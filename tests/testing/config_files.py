"""Loads experiment config files the way launch.py does, for tests that check what the configs hold."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import ml_collections
from absl import flags
from ml_collections import config_flags

# The repository root (this file is tests/testing/config_files.py); config paths are relative to it.
REPO = Path(__file__).resolve().parents[2]


def load(config_arg: str) -> ml_collections.ConfigDict:
    """Loads `configs/x.py[:arg]` exactly as launch.py does (config_flags, lock_config=True)."""
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "", flag_values=fv, lock_config=True)
    fv(["launch.py", f"--config={REPO / config_arg}"])
    return fv.config


def load_module(path):
    """Imports a config file by path (to read its docstring and VARIANTS)."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, REPO / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
