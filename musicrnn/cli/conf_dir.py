"""Where the Hydra configs live, so the CLIs find them from any working directory."""

from pathlib import Path

_SOURCE_TREE = Path(__file__).resolve().parents[2] / "conf"  # a checkout or an editable install
_PACKAGED = Path(__file__).resolve().parents[1] / "conf"  # a wheel install ships conf/ inside the package
CONFIG_DIR = _SOURCE_TREE if _SOURCE_TREE.is_dir() else _PACKAGED
