"""Importing a model file carried in by hand, for sites without internet access.

A registered model is recognised by its sha256 and stored under its registry name. A file whose
sha256 is not in the registry is the user's own model: it is read safely (``weights_only``), stored
under its checkpoint's name and marked unverified, unless it claims a registered name, in which case
it is a damaged or altered copy and is refused.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import MRSynthError
from .cache import model_lock, verified_copy, writable_dir
from .registry import RegistryEntry, sha256_of, valid_name


@dataclass
class Imported:
    name: str
    path: Path
    verified: bool  # False for the user's own model, which the registry cannot vouch for


def _unpack(source: Path, into: Path) -> tuple[Path, str | None]:
    """The checkpoint (copied into ``into``) and card text from a ``.pt`` file or a zip holding one."""
    if not source.is_file():
        raise MRSynthError(f"{source} does not exist: give a checkpoint (.pt) or a zip holding one")
    fd, tmp = tempfile.mkstemp(prefix=".import-", suffix=".part", dir=into)
    os.close(fd)
    target = Path(tmp)
    if source.suffix.lower() != ".zip":  # a PyTorch checkpoint is a zip file too: only the name tells them apart
        shutil.copyfile(source, target)
        return target, None
    if not zipfile.is_zipfile(source):
        target.unlink()
        raise MRSynthError(f"{source} is not a readable zip file: carry it in again")
    with zipfile.ZipFile(source) as archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        weights = [m for m in members if m.filename.lower().endswith(".pt")]
        cards = [m for m in members if m.filename.lower().endswith(".md")]
        if len(weights) != 1 or len(cards) > 1:
            target.unlink()
            raise MRSynthError(
                f"{source} holds {len(weights)} .pt and {len(cards)} .md files: a model zip holds one checkpoint "
                "(.pt) and at most one model card (.md)"
            )
        with archive.open(weights[0]) as inside, open(target, "wb") as out:
            shutil.copyfileobj(inside, out)
        card = archive.read(cards[0]).decode("utf-8", errors="replace") if cards else None
    return target, card


def import_model(source: str | Path, entries: dict[str, RegistryEntry]) -> Imported:
    """Store a hand-carried checkpoint or zip in the cache, verified when the registry knows it."""
    source = Path(source)
    staged, card = _unpack(source, writable_dir(".partial"))
    try:
        digest = sha256_of(staged)
        known = next((e for e in entries.values() if e.sha256 == digest and e.size == staged.stat().st_size), None)
        if known is not None:
            if known.bundled:
                return Imported(known.name, verified_copy(known) or known.path(), True)
            with model_lock(known.name):
                target = writable_dir() / f"{known.name}.pt"
                os.replace(staged, target)
            return Imported(known.name, target, True)
        # A file named like a registered model is refused before anything reads it.
        name = source.stem if source.stem in entries else _checkpoint_name(source, staged)
        if name in entries:
            raise MRSynthError(
                f"{source} is not the registered model {name}: its sha256 differs from the registry's (damaged, "
                f"altered or another version): get the file the registry lists ('mrsynth models info {name}')"
            )
        return _store_user_model(source, staged, name, card)
    finally:
        staged.unlink(missing_ok=True)


def _checkpoint_name(source: Path, staged: Path) -> str:
    from ..checkpoint import read_checkpoint

    try:
        return str(read_checkpoint(staged)["info"]["name"])
    except MRSynthError:
        raise MRSynthError(
            f"{source} is neither a registered model nor an MRSynth checkpoint (truncated, or another kind of file): "
            "import the .pt written by 'mrsynth train' or a zip holding it"
        ) from None


def _store_user_model(source: Path, staged: Path, name: str, card: str | None) -> Imported:
    if not valid_name(name):
        raise MRSynthError(
            f"{source} names its model {name!r}, which cannot be a file name: use letters, digits, '.', '_' and '-'"
        )
    target = writable_dir() / f"{name}.pt"
    with model_lock(name):
        if target.is_file() and sha256_of(target) != sha256_of(staged):
            raise MRSynthError(
                f"a different user model named {name} is already in the cache: 'mrsynth models remove {name}' first"
            )
        os.replace(staged, target)
        card_file = target.with_suffix(".md")
        if card is not None:
            card_file.write_text(card, encoding="utf-8")
    warnings.warn(
        f"{source} is not in the registry: imported as user model {name}, unverified (no sha256 to check it against)",
        stacklevel=2,
    )
    return Imported(name, target, False)
