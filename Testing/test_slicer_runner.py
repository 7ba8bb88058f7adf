"""The child-process runner with a real child Python: progress lines, stages, errors, cancel."""

from __future__ import annotations

import sys
import textwrap
import time

from slicer_support import add_extension_paths

add_extension_paths()

from MRSynthSlicerLib.runner import ChildRun  # noqa: E402


def _child(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def test_progress_stage_and_log_lines():
    seen = []
    run = ChildRun(
        _child(
            """
            print("STAGE loading", flush=True)
            print("hello from the child", flush=True)
            for i in range(1, 4):
                print(f"PROGRESS {i} 3", flush=True)
            print("PROGRESS not numbers", flush=True)
            """
        ),
        on_progress=lambda done, total: seen.append((done, total)),
    ).start()
    assert run.wait(interval=0.02) == "done"
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert run.progress == (3, 3)
    assert run.stage == "loading"
    assert run.log == ["hello from the child", "PROGRESS not numbers"]
    assert run.returncode == 0 and run.error == ""


def test_error_line_and_exit_code_are_surfaced():
    run = ChildRun(_child('import sys; print("ERROR the input is all zero: check it", flush=True); sys.exit(2)'))
    assert run.start().wait(interval=0.02) == "failed"
    assert run.error == "the input is all zero: check it"
    assert run.returncode == 2


def test_a_crash_without_error_line_reports_its_last_output():
    run = ChildRun(_child("raise RuntimeError('boom')")).start()
    assert run.wait(interval=0.02) == "failed"
    assert "exit code 1" in run.error and "RuntimeError: boom" in run.error


def test_cancel_stops_the_child_at_once():
    run = ChildRun(_child('import time\nprint("PROGRESS 1 100", flush=True)\ntime.sleep(60)')).start()
    deadline = time.monotonic() + 20
    while run.progress != (1, 100) and time.monotonic() < deadline:
        run.poll()
        time.sleep(0.02)
    started = time.monotonic()
    run.cancel()
    assert time.monotonic() - started < 5
    assert run.state == "cancelled"
    assert run.poll() is False and run.state == "cancelled"
