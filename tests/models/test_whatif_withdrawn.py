"""What-ifs the policy withdraws (checked against the synthetic truth and found unreliable) are never offered."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from features import FEATURE_NAMES, ChildRecord
from models import RiskModel, assess
from models.whatif import OpenCase, what_ifs_of_cases, withdrawn_changes
from tests.conftest import AS_OF

POLICY = Path(__file__).resolve().parents[2] / "training" / "policy.toml"


@pytest.fixture(scope="module")
def model(bundle: Path) -> RiskModel:
    return RiskModel.load(bundle)


def test_withdrawn_changes_are_the_policy_files() -> None:
    section = tomllib.loads(POLICY.read_text(encoding="utf-8"))["whatif"]
    assert withdrawn_changes() == frozenset(section["withdrawn"])


def test_a_withdrawn_change_is_not_offered(model: RiskModel, open_records: list[ChildRecord]) -> None:
    assessed = assess(model, open_records[:80], AS_OF, what_ifs=False).assessments
    cases = [
        OpenCase(open_records[a.position], open_records[a.position].episodes.index(a.episode), a.as_of, a.probability,
                 frozenset(FEATURE_NAMES[j] for j in np.flatnonzero(a.contributions > 0).tolist()))
        for a in assessed
    ]  # fmt: skip
    everything = what_ifs_of_cases(model, cases, withdrawn=frozenset())
    offered = {w.change for found in everything for w in found}
    assert offered
    dropped = sorted(offered)[0]
    fewer = what_ifs_of_cases(model, cases, withdrawn=frozenset({dropped}))
    assert dropped not in {w.change for found in fewer for w in found}
    kept = [[w for w in found if w.change != dropped] for found in everything]
    assert fewer == kept
