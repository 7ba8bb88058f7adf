"""Atomic file writing: nothing half-written is ever left under the user's file name."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import MRSynthError

_COMPOUND_SUFFIXES = (".nii.gz", ".tar.gz")


def full_suffix(path: str | Path) -> str:
    """The file's extension, keeping compound ones such as ``.nii.gz`` whole."""
    name = Path(path).name.lower()
    for suffix in _COMPOUND_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return Path(path).suffix


def check_output_path(path: str | Path) -> Path:
    """Fail early, before any work, when the output's folder does not exist."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise MRSynthError(f"output folder {parent} does not exist: create it first or choose another path")
    if path.is_dir():
        raise MRSynthError(f"output path {path} is a folder: give a file name")
    return path


def check_checkpoint_path(path: str | Path) -> Path:
    """``check_output_path`` for a checkpoint, which must end in .pt."""
    path = check_output_path(path)
    if path.suffix != ".pt":
        raise MRSynthError(f"output {path} should end in .pt (a checkpoint)")
    return path


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = check_output_path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".part{full_suffix(path)}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
