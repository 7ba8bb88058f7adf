"""What the Slicer-extension tests share: the repository paths and skips for optional packages."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("ContrastSynthesis", "SuperResolution")


def add_extension_paths() -> None:
    """Make the extension's packages importable as they are inside Slicer (beside the modules)."""
    for path in (ROOT, ROOT / "ContrastSynthesis", ROOT / "SuperResolution"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


def require(module: str, extra: str = "slicer-test") -> None:
    """Skip the calling test module when an optional package is not importable."""
    try:
        importlib.import_module(module)
    except ImportError:
        pytest.skip(
            f"{module} is not importable: pip install -e '.[{extra}]' (make test does) to run these tests",
            allow_module_level=True,
        )


def require_slicer_core() -> None:
    require("slicer")
    import slicer

    if not hasattr(slicer, "vtkMRMLScene"):
        pytest.skip("the installed 'slicer' package is not slicer-core (no vtkMRMLScene)", allow_module_level=True)
