"""Fixtures for the command tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh DCM_DATA_DIR (SQLite store) for commands run in this test."""
    folder = tmp_path / "dcm-data"
    monkeypatch.setenv("DCM_DATA_DIR", str(folder))
    monkeypatch.delenv("DCM_DATABASE_URL", raising=False)
    monkeypatch.setenv("DCM_SECRET", "cli-test-secret")
    return folder
