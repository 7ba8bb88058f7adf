"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The real public data folder ../shared/data beside the repository; skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data folder {SHARED_DATA} is absent (it sits beside the repository in CI)")
    return SHARED_DATA
