"""Point-in-time features: blind to the future, to the child's id, to ethnicity and to the closure itself."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal

from features import (
    FEATURE_NAMES,
    FEATURES,
    KEY_COLUMNS,
    ChildRecord,
    Ethnicity,
    build_features,
    current_episode,
    feature_spec,
    record_as_of,
)
from tests.strategies import child_records

AS_OF = dt.date(2024, 3, 1)
EXTENSION_COLUMNS = [f.name for f in FEATURES if f.extension]


def _record(**episode_overrides: Any) -> ChildRecord:
    episode: dict[str, Any] = {
        "referral_date": "2023-10-01",
        "referral_source": "6",
        "primary_need": "N1",
        "referral_nfa": False,
        "assessments": [{"start_date": "2023-10-02", "authorisation_date": "2023-11-01", "factors": ["16A", "4B"]}],
        "cin_plans": [{"start_date": "2023-11-10"}],
        "services": [
            {"service": "parenting_programme", "referred_date": "2023-11-12", "start_date": "2023-12-01",
             "end_date": "2024-02-20", "completed": True},
            {"service": "counselling", "referred_date": "2023-11-12"},
        ],
        "agencies": [
            {"agency": "police", "forum": "strategy_discussion", "date": "2023-10-03"},
            {"agency": "health", "forum": "plan_meeting", "date": "2024-02-01"},
        ],
        "visits": [{"date": "2024-01-15", "child_seen": True}, {"date": "2024-02-10", "child_seen": False}],
        "plan_reviews": [{"date": "2023-12-15", "goals_set": 4, "goals_met": 1},
                         {"date": "2024-02-15", "goals_set": 4, "goals_met": 3}],
    }  # fmt: skip
    episode.update(episode_overrides)
    earlier = {
        "referral_date": "2022-01-10",
        "referral_source": "2A",
        "closure_date": "2022-12-01",
        "closure_reason": "RC8",
        "referral_nfa": False,
        "assessments": [{"start_date": "2022-01-11", "authorisation_date": "2022-02-01", "factors": ["21"]}],
    }
    return ChildRecord.model_validate(
        {
            "la_child_id": "C-1",
            "birth_date": "2016-06-01",
            "sex": "F",
            "ethnicity": "BAFR",
            "disabilities": ["NONE"],
            "episodes": [earlier, episode],
        }
    )


def _row(record: ChildRecord, as_of: dt.date = AS_OF) -> pd.Series:
    frame = build_features([record], as_of)
    assert len(frame) == 1
    return frame.iloc[0]


def test_build_features_columns_follow_the_specification() -> None:
    frame = build_features([_record()], AS_OF)
    assert list(frame.columns) == [*KEY_COLUMNS, *FEATURE_NAMES]
    for spec in FEATURES:
        if spec.kind == "categorical":
            assert list(frame[spec.name].cat.categories) == list(spec.categories)
        else:
            assert frame[spec.name].dtype == np.float64


def test_build_features_reads_the_case_as_it_stood() -> None:
    row = _row(_record())
    assert row["days_open"] == (AS_OF - dt.date(2023, 10, 1)).days
    assert row["prior_episodes"] == 1
    assert (row["referrals_12m"], row["referrals_24m"], row["referrals_36m"]) == (0, 0, 1)  # 781 days before
    assert row["factor_neglect"] == 1
    assert row["parental_factor_count"] == 1
    assert row["parenting_completed"] == 1
    assert row["counselling_offered"] == 1
    assert row["counselling_started"] == 0
    assert row["counselling_days_waiting"] == (AS_OF - dt.date(2023, 11, 12)).days
    assert row["services_pending"] == 1
    assert row["police_only_strategy"] == 1
    assert row["health_involved"] == 1
    assert row["visits_90d"] == 2
    assert row["child_seen_share_90d"] == 0.5
    assert row["goals_met_share"] == 0.75
    assert row["goals_met_change"] == 0.5
    assert row["in_scope"]  # N1 with neglect found at assessment


def test_build_features_one_row_per_open_episode_only() -> None:
    record = _record()
    assert len(build_features([record], dt.date(2022, 12, 15))) == 0  # between episodes: nothing open
    assert len(build_features([record], dt.date(2021, 1, 1))) == 0  # before any referral
    assert current_episode(record, dt.date(2022, 12, 1)) == 0  # closing today still counts as open


def test_build_features_takes_one_date_per_record() -> None:
    record = _record()
    frame = build_features([record, record], [dt.date(2022, 6, 1), AS_OF])
    assert list(frame["as_of"]) == [dt.date(2022, 6, 1), AS_OF]
    assert list(frame["prior_episodes"]) == [0, 1]
    with pytest.raises(ValueError, match="2 dates for 1 records"):
        build_features([record], [AS_OF, AS_OF])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record=child_records(), data=st.data())
def test_build_features_never_sees_events_after_as_of(record: ChildRecord, data: st.DataObject) -> None:
    # The full record is the record as it stood on as_of plus later events: the row must not move.
    episode = data.draw(st.sampled_from(record.episodes))
    as_of = episode.referral_date + dt.timedelta(days=data.draw(st.integers(-5, 500)))
    view = record_as_of(record, as_of)
    full = build_features([record], as_of)
    seen = build_features([view], as_of) if view is not None else full.iloc[0:0]
    assert_frame_equal(full, seen)


@pytest.mark.parametrize(
    "later",
    [
        {"visits": [{"date": "2024-03-02"}]},
        {"services": [{"service": "family_support", "referred_date": "2024-03-05"}]},
        {"agencies": [{"agency": "health", "forum": "strategy_discussion", "date": "2024-03-02"}]},
        {"plan_reviews": [{"date": "2024-04-01", "goals_set": 4, "goals_met": 4}]},
        {"cin_plans": [{"start_date": "2023-11-10", "end_date": "2024-05-01"}]},
        {
            "closure_date": "2024-06-01",
            "closure_reason": "RC7",
            "cin_plans": [{"start_date": "2023-11-10", "end_date": "2024-05-01"}],
        },
    ],
)
def test_build_features_unchanged_by_a_later_event(later: dict[str, Any]) -> None:
    base = _record()
    current = base.episodes[1].model_dump(exclude_none=True)
    # Later items are added to what the episode already holds; dated fields are replaced.
    merged = {k: [*current.get(k, []), *v] if k in ("services", "agencies", "visits", "plan_reviews") else v
              for k, v in later.items()}  # fmt: skip
    changed = _record(**{**current, **merged})
    assert_frame_equal(build_features([changed], AS_OF), build_features([base], AS_OF))


def test_build_features_ignore_the_closure_of_the_episode_closing_on_as_of() -> None:
    closing = {"closure_date": "2024-03-01", "cin_plans": [{"start_date": "2023-11-10", "end_date": "2024-03-01"}]}
    as_rc7 = _row(_record(**closing, closure_reason="RC7"))
    as_rc9 = _record(**closing, closure_reason="RC7").episodes[1].model_copy(update={"closure_reason": "RC9"})
    open_case = _row(_record(cin_plans=[{"start_date": "2023-11-10", "end_date": "2024-03-01"}]))
    record = _record(**closing, closure_reason="RC7")
    other = record.model_copy(update={"episodes": [record.episodes[0], as_rc9]})
    pd.testing.assert_series_equal(_row(other), as_rc7)
    pd.testing.assert_series_equal(as_rc7, open_case)
    assert not any("closure" in name and name != "days_since_last_closure" for name in FEATURE_NAMES)


def test_build_features_do_not_depend_on_the_child_id() -> None:
    record = _record()
    renamed = record.model_copy(update={"la_child_id": "ZZZ-999"})
    a, b = build_features([record], AS_OF), build_features([renamed], AS_OF)
    assert_frame_equal(a[list(FEATURE_NAMES)], b[list(FEATURE_NAMES)])


def test_build_features_keep_ethnicity_for_audit_only() -> None:
    record = _record()
    other = record.model_copy(update={"ethnicity": Ethnicity.WBRI})
    a, b = build_features([record], AS_OF), build_features([other], AS_OF)
    assert_frame_equal(a[list(FEATURE_NAMES)], b[list(FEATURE_NAMES)])
    assert (a["ethnic_group"].iloc[0], b["ethnic_group"].iloc[0]) == ("black", "white")
    assert not any("ethnic" in name for name in FEATURE_NAMES)


def test_build_features_keep_missing_extension_missing() -> None:
    missing = _row(_record(services=None, agencies=None, visits=None, plan_reviews=None))
    assert missing[EXTENSION_COLUMNS].isna().all()
    recorded_none = _row(_record(services=[], agencies=[], visits=[], plan_reviews=[]))
    assert recorded_none["services_offered"] == 0
    assert recorded_none["partner_agencies"] == 0
    assert recorded_none["visits_90d"] == 0
    assert recorded_none["plan_reviews"] == 0
    assert recorded_none["days_since_visit"] == (AS_OF - dt.date(2023, 10, 1)).days


def test_build_features_hide_factors_of_an_assessment_not_yet_authorised() -> None:
    row = _row(_record(), dt.date(2023, 10, 20))
    assert row["assessment_in_progress"] == 1
    assert row["factor_count"] == 0
    assert row["factor_neglect"] == 0
    assert not row["in_scope"]


def test_feature_specification_is_readable_and_complete() -> None:
    labels = [f.label for f in FEATURES]
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    assert len(set(labels)) == len(labels)
    assert all(f.label and f.label[0].isupper() for f in FEATURES)
    assert all(f.direction in (-1, 0, 1) for f in FEATURES)
    assert feature_spec("counselling_days_waiting").label == "Counselling: days waiting, not yet started"
    assert feature_spec("counselling_days_waiting").actionable
    with pytest.raises(KeyError):
        feature_spec("ethnicity")


def test_build_features_in_worker_processes_equals_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    import features.build

    monkeypatch.setattr(features.build, "PARALLEL_FROM", 10)
    base = _record()
    records = [base.model_copy(update={"la_child_id": f"C-{i}"}) for i in range(60)]
    dates = [AS_OF - dt.timedelta(days=7 * i) for i in range(60)]  # some before the second episode opened
    one = build_features(records, dates)
    assert 0 < len(one) < 60
    assert_frame_equal(build_features(records, dates, workers=2), one)
