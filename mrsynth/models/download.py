"""Downloading registered models: resumable, verified, and safe with several processes at once.

Bytes go to ``<cache>/.partial/<name>-<sha>.part``, resumed with an HTTP Range request after a
dropped connection; the file is renamed to ``<cache>/<name>.pt`` only after its size and sha256
match the registry, so the cache never holds a file that failed its check. A lock per model makes a
second process wait and then find the first one's file.
"""

from __future__ import annotations

import http.client
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse
from urllib.request import url2pathname

from .. import __version__
from ..errors import MRSynthError
from .cache import matches, model_lock, verified_copy, writable_dir
from .registry import RegistryEntry, sha256_of

MIRROR_ENV = "MRSYNTH_MODEL_MIRROR"
Progress = Callable[[int, int], None]
_CHUNK = 1 << 16


class _Retry(Exception):
    """A failure that trying again may cure (timeout, dropped connection, server busy)."""


class _Restart(_Retry):
    """The part already downloaded cannot be continued: start again from zero."""


class _GiveUp(Exception):
    """A failure of this URL that trying again cannot cure (missing, wrong size, wrong content)."""


def download_urls(entry: RegistryEntry) -> list[str]:
    """Where to fetch a model: ``<MRSYNTH_MODEL_MIRROR>/<name>.pt`` when a mirror is set, else its registry URLs.

    A mirror laid out like the cache (one ``<name>.pt`` per model) can be a copy of a cache folder
    served over HTTP or reached by ``file://``.
    """
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if not mirror:
        if not entry.urls:
            raise MRSynthError(f"model {entry.name} has no download URL: import its file with 'mrsynth models import'")
        return list(entry.urls)
    if urlparse(mirror).scheme not in ("http", "https", "file"):
        raise MRSynthError(f"{MIRROR_ENV}={mirror} is not an http://, https:// or file:// URL: fix the variable")
    return [f"{mirror.rstrip('/')}/{entry.name}.pt"]


def _open(url: str, offset: int, timeout: float) -> tuple[BinaryIO, int, int | None]:
    """Open ``url`` at byte ``offset`` if the server allows: (stream, where it starts, full size if known)."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        path = Path(url2pathname(parsed.path))
        try:
            stream = open(path, "rb")  # the caller closes it
        except OSError as err:
            raise _GiveUp(f"cannot read {path} ({err.strerror})") from None
        size = os.fstat(stream.fileno()).st_size
        stream.seek(min(offset, size))
        return stream, min(offset, size), size
    headers = {"User-Agent": f"mrsynth/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416:
            raise _Restart("the server cannot continue the partial download") from None
        if err.code == 429 or err.code >= 500:
            raise _Retry(f"the server answered {err.code} {err.reason}") from None
        raise _GiveUp(f"the server answered {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        raise _Retry(_reason(err.reason, timeout)) from None
    except (OSError, http.client.HTTPException) as err:
        raise _Retry(_reason(err, timeout)) from None
    if response.status == 206:
        found = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
        if found and int(found[1]) == offset:
            return response, offset, None if found[2] == "*" else int(found[2])
        response.close()
        raise _Retry("the server sent a part that does not continue the download")
    length = response.headers.get("Content-Length")
    return response, 0, int(length) if length and length.isdigit() else None


def _reason(err: object, timeout: float) -> str:
    if isinstance(err, TimeoutError):
        return f"no answer within {timeout:g} s (timed out)"
    return str(getattr(err, "strerror", None) or err)


def _transfer(url: str, part: Path, size: int, timeout: float, progress: Progress | None) -> None:
    """Bring ``part`` to ``size`` bytes from ``url``, continuing what it already holds."""
    done = part.stat().st_size if part.is_file() else 0
    if done > size:
        part.unlink()
        done = 0
    if done == size:
        return
    try:
        stream, done, total = _open(url, done, timeout)
    except _Restart:
        part.unlink()
        raise
    if total is not None and total != size:
        stream.close()
        raise _GiveUp(f"the file there has {total} bytes where the registry says {size} (truncated or another file)")
    if progress is not None:
        progress(done, size)
    with stream, open(part, "ab" if done else "wb") as out:
        while True:
            try:
                chunk = stream.read(_CHUNK)
            except (OSError, http.client.HTTPException) as err:
                raise _Retry(f"the connection broke after {done} of {size} bytes ({_reason(err, timeout)})") from None
            if not chunk:
                break
            if done + len(chunk) > size:
                raise _GiveUp(f"the file there is longer than the {size} bytes the registry says")
            try:
                out.write(chunk)
                out.flush()
            except OSError as err:
                raise MRSynthError(
                    f"cannot write {part} ({err.strerror}): free some space or set MRSYNTH_MODELS_DIR to another folder"
                ) from None
            done += len(chunk)
            if progress is not None:
                progress(done, size)
    if done < size:
        if total is None:
            raise _GiveUp(f"the file there ends after {done} of the {size} bytes the registry says (truncated)")
        raise _Retry(f"the connection dropped after {done} of {size} bytes")


def _fetch(
    url: str, part: Path, entry: RegistryEntry, timeout: float, retries: int, backoff: float, progress: Progress | None
) -> None:
    """Download ``url`` into ``part`` until it is complete and verified, retrying what may be cured."""
    for attempt in range(retries + 1):
        try:
            _transfer(url, part, entry.size, timeout, progress)
            break
        except _Retry as err:
            if attempt == retries:
                raise _GiveUp(f"{err}; {retries + 1} attempt{'s' if retries else ''}") from None
            time.sleep(backoff * 2**attempt)
    if sha256_of(part) != entry.sha256:
        part.unlink()
        raise _GiveUp("the file's sha256 differs from the registry's (damaged or tampered with): refused")


def pull(
    entry: RegistryEntry,
    progress: Progress | None = None,
    timeout: float = 30.0,
    retries: int = 3,
    backoff: float = 1.0,
) -> Path:
    """Make sure a registered model is stored and verified, downloading it into the cache if needed.

    ``progress(done_bytes, total_bytes)`` is called as bytes arrive; raising ``mrsynth.Cancelled``
    in it stops the download and keeps only the resumable ``.part`` file. ``timeout`` is how long a
    silent server is waited for; each URL is tried ``retries`` more times after a failure that may
    pass, ``backoff`` seconds doubling between tries.
    """
    found = verified_copy(entry)
    if found is not None:
        return found
    urls = download_urls(entry)
    target = writable_dir() / f"{entry.name}.pt"
    part = writable_dir(".partial") / f"{entry.name}-{entry.sha256[:16]}.part"
    failures = []
    with model_lock(entry.name):
        if matches(target, entry):  # another process finished it while this one waited
            return target
        for url in urls:
            try:
                _fetch(url, part, entry, timeout, retries, backoff, progress)
            except _GiveUp as err:
                failures.append(f"{url}: {err}")
                continue
            os.replace(part, target)
            return target
    mirror = f"check {MIRROR_ENV}" if os.environ.get(MIRROR_ENV, "").strip() else f"set {MIRROR_ENV} to a local mirror"
    raise MRSynthError(
        f"could not download model {entry.name} ({' | '.join(failures)}): check the network or the URL, {mirror}, "
        "or bring the file in by hand with 'mrsynth models import FILE'"
    )
