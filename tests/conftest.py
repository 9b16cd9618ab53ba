"""Fixtures shared by every test package."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
SAMPLE_DATA = ROOT / "sample_data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The workspace's real public data (``../shared/data``); skips when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (checkout outside the workspace)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def cap_schema() -> Path:
    """The official OASIS CAP 1.2 XML schema; skips when absent."""
    path = ROOT.parent / "shared" / "schemas" / "cap12.xsd"
    if not path.is_file():
        pytest.skip(f"CAP schema {path} is absent (checkout outside the workspace)")
    return path


@pytest.fixture(scope="session")
def sample_data() -> Path:
    """The committed St Vincent sample scenario."""
    return SAMPLE_DATA
