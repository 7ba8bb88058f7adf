"""Where downloaded and imported models live, and how they are found, verified and removed.

The writable cache is ``MRSYNTH_MODELS_DIR``, else a per-user folder. Folders listed in
``MRSYNTH_MODELS_PATH`` (separated by ``os.pathsep``) are read-only shared caches searched after it,
so a site can download once for everyone. A model is stored as ``<name>.pt`` (and its card as
``<name>.md`` for a user's own model); unfinished downloads live in ``.partial/``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import MRSynthError
from .registry import RegistryEntry, sha256_of

CACHE_ENV = "MRSYNTH_MODELS_DIR"
SHARED_ENV = "MRSYNTH_MODELS_PATH"
_log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """The writable cache: ``MRSYNTH_MODELS_DIR``, else the platform's per-user cache folder."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "mrsynth" / "models"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mrsynth" / "models"


def shared_dirs() -> list[Path]:
    return [Path(item).expanduser() for item in os.environ.get(SHARED_ENV, "").split(os.pathsep) if item]


def search_dirs() -> list[Path]:
    """Every folder a model may be found in, the writable cache first."""
    return [cache_dir(), *shared_dirs()]


def writable_dir(sub: str = "") -> Path:
    """The writable cache (or a folder in it), created on first use."""
    path = cache_dir() / sub
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MRSynthError(
            f"cannot create the model cache {path} ({err.strerror}): set {CACHE_ENV} to a writable folder"
        ) from None
    return path


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` so that two processes never write the same model at once."""
    with open(path, "a+b") as handle:
        if sys.platform == "win32":
            import msvcrt

            handle.seek(0)
            while True:
                try:
                    msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)  # gives up after 10 s: try again
                    break
                except OSError:
                    _log.info("waiting for another mrsynth process that writes %s", path.stem)
            try:
                yield
            finally:
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                _log.info("waiting for another mrsynth process that writes %s", path.stem)
                fcntl.flock(handle, fcntl.LOCK_EX)
            yield  # closing the file releases the lock


def model_lock(name: str) -> contextlib.AbstractContextManager[None]:
    return file_lock(writable_dir(".partial") / f"{name}.lock")


def matches(path: Path, entry: RegistryEntry) -> bool:
    """Whether ``path`` is exactly the registered file (size first: cheap)."""
    return path.is_file() and path.stat().st_size == entry.size and sha256_of(path) == entry.sha256


def copies(name: str) -> list[Path]:
    """Stored copies of a model, in search order."""
    return [path for folder in search_dirs() if (path := folder / f"{name}.pt").is_file()]


def verified_copy(entry: RegistryEntry) -> Path | None:
    """The registered model's file that passes its sha256 check: bundled, else the first good cached copy."""
    if entry.bundled:
        path = entry.path()
        if not path.is_file():
            raise MRSynthError(f"model {entry.name} is bundled but its file {path} is missing: reinstall mrsynth")
        if not matches(path, entry):
            raise MRSynthError(f"model {entry.name}: {path} fails its sha256 check (damaged file): reinstall mrsynth")
        return path
    return next((path for path in copies(entry.name) if matches(path, entry)), None)


def state(entry: RegistryEntry, verify: bool = False) -> tuple[str, Path | None]:
    """Whether a registered model can be used now, and its file; ``verify`` checks sha256, else only sizes."""
    if entry.bundled:
        return "bundled", entry.path()
    stored = copies(entry.name)
    good = next((p for p in stored if (matches(p, entry) if verify else p.stat().st_size == entry.size)), None)
    if good is not None:
        where = "downloaded" if good.parent == cache_dir() else f"in shared cache {good.parent}"
        return where + (", verified" if verify else ""), good
    if stored:
        return "damaged or another version: pull it again", stored[0]
    return "not downloaded", None


def user_models(known: set[str]) -> dict[str, Path]:
    """The user's own imported models (not in the registry) by name, first copy found."""
    found: dict[str, Path] = {}
    for folder in reversed(search_dirs()):
        if folder.is_dir():
            found.update({path.stem: path for path in folder.glob("*.pt") if path.stem not in known})
    return dict(sorted(found.items()))


@dataclass
class Check:
    """One stored model file and whether it passed its check."""

    name: str
    path: Path
    ok: bool
    note: str


def verify_all(entries: dict[str, RegistryEntry]) -> list[Check]:
    """Check every bundled and stored registered model against its sha256; note the unverifiable user models."""
    checks = []
    for entry in entries.values():
        paths = [entry.path()] if entry.bundled else copies(entry.name)
        for path in paths:
            ok = matches(path, entry)
            fix = "reinstall mrsynth" if entry.bundled else f"run 'mrsynth models pull {entry.name}'"
            checks.append(Check(entry.name, path, ok, "ok" if ok else f"FAILS its sha256/size check: {fix}"))
    for name, path in user_models(set(entries)).items():
        checks.append(Check(name, path, True, "user model (unverified: not in the registry)"))
    return checks


def remove(name: str, entries: dict[str, RegistryEntry]) -> list[Path]:
    """Delete a model's copy in the writable cache (and its card and unfinished downloads)."""
    entry = entries.get(name)
    if entry is not None and entry.bundled:
        raise MRSynthError(f"model {name} is bundled with mrsynth and cannot be removed")
    cache = cache_dir()
    target = cache / f"{name}.pt"
    leftovers = [
        p for p in (cache / f"{name}.md", *(cache / ".partial").glob(f"{name}-{'?' * 16}.part")) if p.is_file()
    ]
    if not target.is_file() and not leftovers:
        shared = [path for path in copies(name) if path.parent != cache]
        if shared:
            raise MRSynthError(
                f"model {name} is in the shared cache {shared[0].parent}, which mrsynth does not change: "
                "ask its administrator to remove it"
            )
        raise MRSynthError(f"model {name} is not downloaded: nothing to remove ('mrsynth models list' shows them)")
    removed = []
    for path in [target, *leftovers]:
        if path.is_file():
            try:
                path.unlink()
            except OSError as err:
                raise MRSynthError(f"cannot remove {path} ({err.strerror}): the cache is read-only for you") from None
            removed.append(path)
    return removed
