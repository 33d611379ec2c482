"""Fixtures shared by every test package."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from features import ChildRecord
from synthetic import generate_cohort

if TYPE_CHECKING:
    # Imported where used, so a room's tests that import this module (tests/models) never load training.
    from training import TrainingFrame

pytest_plugins = ["tests.audit.stores"]  # the audit store fixtures, for every room's tests

# Real material written elsewhere (CIN census schemas, code lists, sample returns, DfE statistics). Its README asks
# that it is read from beside the clone, never copied into the project.
SHARED_REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


POLICY = Path(__file__).resolve().parents[1] / "training" / "policy.toml"


@pytest.fixture(scope="session")
def shared_reference() -> Path:
    """``../shared/reference``. Skips where the folder is absent, and fails instead under ``CI=true`` (as the
    tests that need PostgreSQL, Chromium or Java do), so CI never passes without the conformance tests."""
    if not SHARED_REFERENCE.is_dir():
        message = f"{SHARED_REFERENCE} is absent: the reference files are read from ../shared beside the clone"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return SHARED_REFERENCE


@pytest.fixture(scope="session")
def tiny_cohort_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The versioned gate policy with the fairness audit on the test year alone (as before policy 8), for training
    on the tiny cohort. It is far below the policy's minimum data, so its tests open the calibration bounds; pooled
    over three years its groups only just reach the audit's minimum size, and a chance difference there (seed 41:
    one age band's share scored without the extension, 3.3 standard errors, where the 40,000-child cohort shows
    none) would decide tests about something else. The audit's own figures are measured at realistic sizes."""
    policy = POLICY.read_text(encoding="utf-8").replace(
        'audited_closures = "backtest"', 'audited_closures = "test_year"'
    )
    assert 'audited_closures = "test_year"' in policy
    path = tmp_path_factory.mktemp("policy") / "policy.toml"
    path.write_text(policy, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_authority(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Nine collection years, so three have complete follow-up for train / validation / test.
    out = tmp_path_factory.mktemp("tiny-authority")
    generate_cohort(children=2_500, seed=41, start=2017, end=2025, out=out, workers=1)
    return out


@pytest.fixture(scope="session")
def tiny_frame(tiny_authority: Path) -> TrainingFrame:
    from training import load_training_frame

    return load_training_frame(tiny_authority)


AS_OF = dt.date(2025, 3, 31)


@pytest.fixture(scope="session")
def bundle(tiny_frame: TrainingFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle training builds from the tiny authority (tests/models has a tiny bundle of its own)."""
    from training.fit import fit_bundle
    from training.settings import SearchSpace
    from training.split import split_by_time

    split = split_by_time(tiny_frame.frame, data_end=dt.date(2025, 3, 31))
    folder = tmp_path_factory.mktemp("bundle") / "model"
    fit_bundle(split, seed=1, search=SearchSpace()).model().save(folder)
    return folder


@pytest.fixture(scope="session")
def open_records(tiny_authority: Path) -> list[ChildRecord]:
    from features import current_episode, ingest

    records = ingest(sorted(tiny_authority.glob("*.xml")), extension=tiny_authority / "extension.jsonl").records
    return [r for r in records if current_episode(r, AS_OF) is not None]
