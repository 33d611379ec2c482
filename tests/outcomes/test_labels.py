"""Re-referral labels: eligibility, the 365-day window, censoring, and linking across returns."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from features import ChildRecord, ingest, write_census_return
from outcomes.labels import label_closures

DATA_END = dt.date(2025, 3, 31)


def _child(*episodes: dict[str, Any], born: str = "2012-06-15", child_id: str = "C1") -> ChildRecord:
    return ChildRecord.model_validate(
        {"la_child_id": child_id, "birth_date": born, "sex": "M", "ethnicity": "WBRI", "episodes": list(episodes)}
    )


def _closed(referral: str, closure: str, reason: str = "RC8") -> dict[str, Any]:
    return {"referral_date": referral, "referral_source": "6", "closure_date": closure, "closure_reason": reason,
            "referral_nfa": False, "assessments": [{"start_date": referral}]}  # fmt: skip


def _open(referral: str) -> dict[str, Any]:
    return {"referral_date": referral, "referral_source": "2A", "referral_nfa": False}


def _days_after(day: str, days: int) -> str:
    return (dt.date.fromisoformat(day) + dt.timedelta(days=days)).isoformat()


@pytest.mark.parametrize(("gap", "label"), [(1, 1), (364, 1), (365, 1), (366, 0), (800, 0)])
def test_label_counts_a_referral_up_to_day_365(gap: int, label: int) -> None:
    record = _child(_closed("2021-01-04", "2021-02-01"), _open(_days_after("2021-02-01", gap)))
    (closure,), summary = label_closures([record], data_end=DATA_END)
    assert closure.label == label
    assert closure.days_to_next_referral == gap
    assert summary.positives == label


def test_label_is_zero_when_no_referral_follows() -> None:
    (closure,), _ = label_closures([_child(_closed("2021-01-04", "2021-02-01"))], data_end=DATA_END)
    assert closure.label == 0
    assert closure.days_to_next_referral is None


@pytest.mark.parametrize(("reason", "eligible"), [(f"RC{n}", n >= 7) for n in range(1, 10)])
def test_label_only_closures_where_a_rereferral_means_something(reason: str, eligible: bool) -> None:
    closures, summary = label_closures([_child(_closed("2021-01-04", "2021-02-01", reason))], data_end=DATA_END)
    assert len(closures) == int(eligible)
    assert summary.excluded_reason == int(not eligible)


@pytest.mark.parametrize(("closure", "eligible"), [("2029-06-14", True), ("2029-06-15", False)])
def test_label_needs_the_child_under_17_at_closure(closure: str, eligible: bool) -> None:
    record = _child(_closed("2029-06-01", closure), born="2012-06-15")
    closures, summary = label_closures([record], data_end=dt.date(2031, 3, 31))
    assert len(closures) == int(eligible)
    assert summary.excluded_age == int(not eligible)


@pytest.mark.parametrize(("closure", "censored"), [("2024-03-31", False), ("2024-04-01", True)])
def test_label_censors_closures_without_a_full_year_of_data(closure: str, censored: bool) -> None:
    closures, summary = label_closures([_child(_closed("2024-03-01", closure))], data_end=DATA_END)
    assert summary.censored == int(censored)
    assert len(closures) == int(not censored)  # censored: excluded, never labelled 0


def test_label_summary_puts_every_closure_in_one_bucket() -> None:
    records = [
        _child(_closed("2020-01-04", "2020-02-01", "RC7"), _closed("2020-06-01", "2020-07-01", "RC5"), child_id="A"),
        _child(_closed("2024-05-01", "2024-06-01"), born="2005-01-01", child_id="B"),
        _child(_closed("2024-10-01", "2024-11-01"), _open("2025-01-01"), child_id="C"),
    ]
    _, summary = label_closures(records, data_end=DATA_END)
    assert summary.closures == 4
    assert summary.closures == summary.eligible + summary.excluded_reason + summary.excluded_age + summary.censored
    assert (summary.eligible, summary.positives, summary.excluded_reason, summary.excluded_age, summary.censored) == (
        1, 1, 1, 1, 1,
    )  # fmt: skip
    # A's RC7 closure is followed by a referral 121 days later: the one eligible closure is a positive.


def test_label_links_an_episode_seen_in_two_returns(tmp_path: Path) -> None:
    # Open at 31 March 2022 (in the 2022 return), closed in the 2023 return, re-referred in 2023.
    record = _child(_closed("2022-02-01", "2022-05-10"), _open("2023-01-20"))
    paths = []
    for year in (2022, 2023, 2024, 2025):
        path = tmp_path / f"cin_{year}.xml"
        write_census_return([record], collection_year=year, out=path)
        paths.append(path)
    assert "2022-02-01" in paths[0].read_text(encoding="utf-8")
    assert "2022-02-01" in paths[1].read_text(encoding="utf-8")
    result = ingest(paths)
    assert result.problems == []
    assert result.data_end == DATA_END
    closures, summary = label_closures(result.records, data_end=DATA_END)
    assert [(c.closure_date, c.label) for c in closures] == [(dt.date(2022, 5, 10), 1)]
    assert summary.closures == 1
