"""The score is flagged when its open episode is missing from a later census return (issue 16)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from features import ChildRecord, current_episode
from models import BATCH_FIELDS, RiskModel, assess
from tests.conftest import AS_OF


@pytest.fixture(scope="module")
def model(bundle: Path) -> RiskModel:
    return RiskModel.load(bundle)


def _missing_from(record: ChildRecord, reference_date: dt.date) -> ChildRecord:
    index = current_episode(record, AS_OF)
    assert index is not None
    flagged = record.episodes[index].model_copy(update={"missing_from_return": reference_date})
    return record.model_copy(update={"episodes": [*record.episodes[:index], flagged, *record.episodes[index + 1 :]]})


def test_assess_flags_an_open_episode_missing_from_a_later_return(model: RiskModel, open_records: list[ChildRecord]
                                                                  ) -> None:  # fmt: skip
    record = open_records[0]
    (plain,) = assess(model, [record], AS_OF).assessments
    (flagged,) = assess(model, [_missing_from(record, dt.date(2025, 3, 31))], AS_OF).assessments
    said = [w for w in flagged.warnings if "missing from the return of 31 March 2025" in w]
    assert len(said) == 1
    assert "may have closed" in said[0]
    assert not any("missing from the return" in w for w in plain.warnings)
    assert flagged.probability == plain.probability  # a flag for the reader, not a feature
    assert flagged.to_row(fields=BATCH_FIELDS)["warnings"] == flagged.warnings  # the batch output carries it
