"""Run the synthesis in a child Python process and follow it through its output lines.

The GUI must stay responsive while a model runs for minutes, and a cancelled run must stop at once
and leave nothing behind: a child process gives both (terminating it frees every thread and all
GPU memory). The child prints one event per line (``PROGRESS done total``, ``STAGE text``,
``ERROR text``); everything else is log. This class needs no Qt: Slicer polls it from a
``qt.QTimer``, the console and batch runs call ``wait()``.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROGRESS = "PROGRESS"
STAGE = "STAGE"
ERROR = "ERROR"
_EOF = None


def _slicer_app() -> Any:
    try:
        import slicer
    except ImportError:
        return None
    return getattr(slicer, "app", None)


def child_environment() -> dict[str, str] | None:
    """Inside Slicer, the environment Slicer started with (what its launcher expects); else None (ours)."""
    if _slicer_app() is None:
        return None
    import slicer

    return dict(slicer.util.startupEnvironment())


def python_executable() -> str:
    """``PythonSlicer`` beside the Slicer executable when inside Slicer, else this interpreter."""
    app = _slicer_app()
    if app is not None:
        found = shutil.which("PythonSlicer", path=os.path.dirname(app.applicationFilePath())) or shutil.which(
            "PythonSlicer"
        )
        if found:
            return found
    return sys.executable


@dataclass
class ChildRun:
    """One child process: its state, latest progress, stage, log and error text."""

    args: Sequence[str]
    env: dict[str, str] | None = None
    on_progress: Callable[[int, int], None] | None = None
    on_stage: Callable[[str], None] | None = None
    state: str = "created"  # created, running, done, failed, cancelled
    progress: tuple[int, int] = (0, 0)
    stage: str = ""
    error: str = ""
    log: list[str] = field(default_factory=list)
    returncode: int | None = None

    def start(self) -> ChildRun:
        env = dict(os.environ if self.env is None else self.env)
        env["PYTHONUNBUFFERED"] = "1"
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._process = subprocess.Popen(
            list(self.args),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.state = "running"
        return self

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._lines.put(line.rstrip("\r\n"))
        self._lines.put(_EOF)

    def _handle(self, line: str) -> None:
        word, _, rest = line.partition(" ")
        if word == PROGRESS:
            try:
                done, total = (int(v) for v in rest.split())
            except ValueError:
                self.log.append(line)
                return
            self.progress = (done, total)
            if self.on_progress is not None:
                self.on_progress(done, total)
        elif word == STAGE:
            self.stage = rest
            if self.on_stage is not None:
                self.on_stage(rest)
        elif word == ERROR:
            self.error = rest
        else:
            self.log.append(line)

    def poll(self) -> bool:
        """Handle the lines the child has printed so far; True while it is still running."""
        if self.state != "running":
            return False
        finished = False
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is _EOF:
                finished = True
                break
            self._handle(line)
        if finished:
            self.returncode = self._process.wait()
            if self.returncode == 0:
                self.state = "done"
            else:
                self.state = "failed"
                if not self.error:
                    tail = [line for line in self.log if line.strip()][-1:]
                    self.error = f"the worker stopped with exit code {self.returncode}" + (
                        f": {tail[0]}" if tail else ""
                    )
        return self.state == "running"

    def wait(self, interval: float = 0.1, timeout: float | None = None) -> str:
        """Block until the child ends (polling); returns the final state."""
        end = None if timeout is None else time.monotonic() + timeout
        while self.poll():
            if end is not None and time.monotonic() > end:
                self.cancel()
                break
            time.sleep(interval)
        return self.state

    def cancel(self, grace: float = 5.0) -> None:
        """Stop the child now (terminate, then kill after ``grace`` seconds)."""
        if self.state != "running":
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self.returncode = self._process.returncode
        self.state = "cancelled"


def worker_command(job_file: Path) -> list[str]:
    """The child's command line: the worker script of this package on ``job_file``."""
    worker = Path(__file__).with_name("worker.py")
    return [python_executable(), str(worker), str(job_file)]
