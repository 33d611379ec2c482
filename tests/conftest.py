"""Fixtures shared by every test package."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


@pytest.fixture(scope="session")
def shared_reference() -> Path:
    """``../shared/reference``: real material written elsewhere. Skips where the folder is absent."""
    if not SHARED_REFERENCE.is_dir():
        pytest.skip(f"{SHARED_REFERENCE} is absent: reference files are read from ../shared beside the clone")
    return SHARED_REFERENCE
