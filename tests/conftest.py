"""Fixtures shared by every test package."""

from __future__ import annotations

from pathlib import Path

import pytest

from training import TrainingFrame, load_training_frame
from training.synthetic import generate_cohort

SHARED_REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


@pytest.fixture(scope="session")
def shared_reference() -> Path:
    """``../shared/reference``: real material written elsewhere. Skips where the folder is absent."""
    if not SHARED_REFERENCE.is_dir():
        pytest.skip(f"{SHARED_REFERENCE} is absent: reference files are read from ../shared beside the clone")
    return SHARED_REFERENCE


@pytest.fixture(scope="session")
def tiny_authority(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Nine collection years, so three have complete follow-up for train / validation / test.
    out = tmp_path_factory.mktemp("tiny-authority")
    generate_cohort(children=2_500, seed=41, start=2017, end=2025, out=out, workers=1)
    return out


@pytest.fixture(scope="session")
def tiny_frame(tiny_authority: Path) -> TrainingFrame:
    return load_training_frame(tiny_authority)
