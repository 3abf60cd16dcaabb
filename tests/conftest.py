"""Shared fixtures: the real data sets of ../shared/data and a real fineserve server process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("FINESERVE_SHARED_DATA", ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data; missing data fails under CI (CI=true) and skips elsewhere."""
    if not SHARED_DATA.is_dir():
        message = f"shared data not found at {SHARED_DATA} (set FINESERVE_SHARED_DATA)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return SHARED_DATA
