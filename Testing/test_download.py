"""Downloading models from a real HTTP server on 127.0.0.1: resume, refusal of bad files, timeouts,
the mirror variable, cancellation, and two processes downloading the same model at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import mrsynth
from mrsynth import cli
from mrsynth.errors import Cancelled, MRSynthError
from mrsynth.models import load_model, pull, registry, resolve, sha256_of

BUNDLED = Path(mrsynth.__file__).parent / "models" / "gre-to-tse-sim.pt"
DATA = BUNDLED.read_bytes()
SHA = sha256_of(BUNDLED)
CHUNK = 16384


class _Handler(BaseHTTPRequestHandler):
    """Serves ``DATA`` with Range support; the path's first part picks a misbehaviour."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # keep pytest's output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        server = self.server
        kind = self.path.strip("/").split("/")[0]
        server.requests.append((self.path, self.headers.get("Range")))  # type: ignore[attr-defined]
        if kind == "missing":
            self.send_error(404)
            return
        if kind == "slow":
            time.sleep(1.5)
        data = {"truncated": DATA[: len(DATA) // 2], "tampered": DATA[:-1] + bytes([DATA[-1] ^ 1])}.get(kind, DATA)
        start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if kind == "drop" and not start:  # the first try breaks off half way
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        if kind == "held":  # the test lets the body go once a second client is waiting
            server.release.wait(30)  # type: ignore[attr-defined]
        for i in range(0, len(body), CHUNK):
            self.wfile.write(body[i : i + CHUNK])


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.requests = []  # type: ignore[attr-defined]
    httpd.release = threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _entry(name: str, urls: list[str]) -> dict:
    return {
        "name": name, "version": "1", "task": "contrast-synthesis", "inputs": ["GE_aOP", "GE_aIP"],
        "output": "TSE_T1w", "voxel_size": [1.0, 1.0, 1.0], "orientation": "any", "patch": [56, 56, 32],
        "stride": [18, 18, 4], "mode": "fast", "urls": urls, "sha256": SHA, "size": len(DATA),
        "licence": "Apache-2.0", "card_text": f"# {name}\n\nA test model.",
    }  # fmt: skip


@pytest.fixture
def env(server, tmp_path, monkeypatch):
    """A registry whose models sit on the test server under the kind's name, and an empty cache."""
    base = f"http://127.0.0.1:{server.server_port}"
    kinds = ["good", "drop", "truncated", "tampered", "slow", "missing", "held"]
    models = [_entry(kind, [f"{base}/{kind}/{kind}.pt"]) for kind in kinds]
    reg = tmp_path / "registry.json"
    reg.write_text(json.dumps({"schema_version": 2, "models": models}))
    monkeypatch.setenv("MRSYNTH_REGISTRY", str(reg))
    monkeypatch.setenv("MRSYNTH_MODELS_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MRSYNTH_MODELS_PATH", raising=False)
    monkeypatch.delenv("MRSYNTH_MODEL_MIRROR", raising=False)
    return tmp_path / "cache"


def _cache_files(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.rglob("*") if p.is_file() and p.suffix != ".lock") if cache.is_dir() else []


def test_normal_download(env, server):
    with pytest.raises(MRSynthError, match="not downloaded: run `mrsynth models pull good`"):
        resolve("good")
    seen = []
    path = pull(registry()["good"], progress=lambda done, total: seen.append((done, total)))
    assert path == env / "good.pt" and path.read_bytes() == DATA
    assert seen[-1] == (len(DATA), len(DATA)) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert _cache_files(env) == ["good.pt"]  # no partial file left
    assert resolve("good") == path
    assert load_model("good").info.name == "gre-to-tse-sim"
    assert pull(registry()["good"]) == path and len(server.requests) == 1  # already there: no second download


def test_dropped_connection_is_resumed(env, server):
    path = pull(registry()["drop"], backoff=0)
    assert sha256_of(path) == SHA
    (first, no_range), (again, resumed) = server.requests
    assert no_range is None and resumed == f"bytes={len(DATA) // 2}-"


def test_truncated_file_is_refused(env):
    expected = f"has {len(DATA) // 2} bytes where the registry says {len(DATA)} .truncated"
    with pytest.raises(MRSynthError, match=expected):
        pull(registry()["truncated"], backoff=0)
    assert not (env / "truncated.pt").exists()


def test_tampered_file_is_refused_and_never_loaded(env, monkeypatch):
    with pytest.raises(MRSynthError, match="sha256 differs from the registry's .damaged or tampered with.: refused"):
        pull(registry()["tampered"], backoff=0)
    assert _cache_files(env) == []  # neither the file nor its partial download is kept
    # the same bytes slipped into the cache by hand are refused before torch ever reads them
    (env / "tampered.pt").write_bytes(DATA[:-1] + bytes([DATA[-1] ^ 1]))
    monkeypatch.setattr("torch.load", lambda *a, **k: pytest.fail("a tampered file reached torch.load"))
    with pytest.raises(MRSynthError, match="fails its sha256 check"):
        load_model("tampered")


def test_slow_server_times_out_with_a_clear_error(env):
    started = time.monotonic()
    with pytest.raises(MRSynthError, match=r"no answer within 0.3 s \(timed out\); 2 attempts"):
        pull(registry()["slow"], timeout=0.3, retries=1, backoff=0)
    assert time.monotonic() - started < 3
    assert not (env / "slow.pt").exists()


def test_unknown_model_and_missing_file(env, capsys):
    with pytest.raises(MRSynthError, match="nope is neither a known model"):
        resolve("nope")
    assert cli.main(["models", "pull", "nope"]) == 2
    assert "unknown model nope" in capsys.readouterr().err
    with pytest.raises(MRSynthError, match="answered 404"):
        pull(registry()["missing"], backoff=0)


def test_mirror_variable(env, server, tmp_path, monkeypatch):
    # the registry's URL is dead: only the mirror can serve it
    monkeypatch.setenv("MRSYNTH_MODEL_MIRROR", f"http://127.0.0.1:{server.server_port}/site-mirror/")
    assert sha256_of(pull(registry()["missing"])) == SHA
    assert server.requests == [("/site-mirror/missing.pt", None)]
    # a mirror may be a folder laid out like the cache, reached by file://
    folder = tmp_path / "mirror folder"
    folder.mkdir()
    (folder / "good.pt").write_bytes(DATA)
    monkeypatch.setenv("MRSYNTH_MODEL_MIRROR", folder.as_uri())
    assert sha256_of(pull(registry()["good"])) == SHA and len(server.requests) == 1
    monkeypatch.setenv("MRSYNTH_MODEL_MIRROR", f"http://127.0.0.1:{server.server_port}/missing")
    with pytest.raises(MRSynthError, match="missing/slow.pt: the server answered 404.*check MRSYNTH_MODEL_MIRROR"):
        pull(registry()["slow"])
    monkeypatch.setenv("MRSYNTH_MODEL_MIRROR", "ftp://example.org/models")
    with pytest.raises(MRSynthError, match="MRSYNTH_MODEL_MIRROR=ftp://example.org/models is not an http"):
        pull(registry()["slow"])


def test_cancel_keeps_only_the_partial_file_and_resumes(env, server):
    def cancel(done: int, total: int) -> None:
        if done >= 3 * CHUNK:
            raise Cancelled("stopped by the user")

    with pytest.raises(Cancelled):
        pull(registry()["good"], progress=cancel)
    assert not (env / "good.pt").exists()
    partial = _cache_files(env)
    assert len(partial) == 1 and partial[0].startswith("good-") and partial[0].endswith(".part")
    assert sha256_of(pull(registry()["good"])) == SHA
    assert server.requests[-1][1] is not None and server.requests[-1][1].startswith("bytes=")
    assert _cache_files(env) == ["good.pt"]


def test_cli_pull(env, capsys):
    assert cli.main(["models", "pull", "good", "--timeout", "5"]) == 0
    assert "good: verified" in capsys.readouterr().out
    assert cli.main(["models", "pull", "gre-to-tse-sim"]) == 0
    assert "bundled" in capsys.readouterr().out


def test_two_processes_download_the_same_model(env, server, tmp_path):
    code = (
        "import logging; logging.basicConfig(level=logging.INFO, format='%(message)s')\n"
        "from mrsynth.models import pull, registry\n"
        "print(pull(registry()['held']))\n"
    )
    environ = {**os.environ, "PYTHONPATH": str(Path(mrsynth.__file__).parents[1])}
    logs = [tmp_path / f"stderr{i}.txt" for i in range(2)]
    procs = []
    for log in logs:
        with open(log, "wb") as err:
            procs.append(
                subprocess.Popen([sys.executable, "-c", code], env=environ, stdout=subprocess.PIPE, stderr=err)
            )
    deadline = time.monotonic() + 30  # the server holds the first download until the other process waits for it
    while not any(b"waiting for another mrsynth process" in log.read_bytes() for log in logs):
        assert time.monotonic() < deadline and all(proc.poll() is None for proc in procs), [p.read_text() for p in logs]
        time.sleep(0.05)
    server.release.set()
    outputs = [proc.communicate(timeout=60)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], [log.read_text() for log in logs]
    assert {out.strip() for out in outputs} == {str(env / "held.pt").encode()}
    assert _cache_files(env) == ["held.pt"] and sha256_of(env / "held.pt") == SHA
    assert len(server.requests) == 1  # the second process found the first one's file


def test_remove_clears_an_unfinished_download(env, capsys):
    def cancel(done: int, total: int) -> None:
        if done:
            raise Cancelled("stopped by the user")

    with pytest.raises(Cancelled):
        pull(registry()["good"], progress=cancel)
    assert len(_cache_files(env)) == 1
    assert cli.main(["models", "remove", "good"]) == 0
    assert "good-" in capsys.readouterr().out and _cache_files(env) == []
