"""The case record: census rules name their path and rule; point-in-time views hide later events."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError

from features.record import ChildRecord, record_as_of


def _episode(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "referral_date": "2021-01-10",
        "referral_source": "2A",
        "primary_need": "N1",
        "closure_date": "2021-09-30",
        "closure_reason": "RC7",
        "referral_nfa": False,
        "assessments": [{"start_date": "2021-01-12", "authorisation_date": "2021-02-20", "factors": ["16A", "4B"]}],
        "cin_plans": [{"start_date": "2021-03-01", "end_date": "2021-09-15"}],
        "section47s": [],
        "protection_plans": [],
        "services": [
            {"service": "parenting_programme", "referred_date": "2021-03-05", "start_date": "2021-04-01",
             "end_date": "2021-06-10", "completed": True}
        ],
        "agencies": [{"agency": "health", "forum": "plan_meeting", "date": "2021-06-01"}],
        "visits": [{"date": "2021-03-10", "child_seen": True}, {"date": "2021-08-20"}],
        "plan_reviews": [{"date": "2021-06-01", "goals_set": 4, "goals_met": 3}],
    }  # fmt: skip
    base.update(overrides)
    return base


def _child(*episodes: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    child: dict[str, Any] = {
        "la_child_id": "C0001",
        "birth_date": "2014-05-02",
        "sex": "F",
        "ethnicity": "WBRI",
        "disabilities": ["NONE"],
        "episodes": list(episodes) or [_episode()],
    }
    child.update(overrides)
    return child


def _violations(data: dict[str, Any]) -> set[tuple[tuple[int | str, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        ChildRecord.model_validate(data)
    return {(tuple(e["loc"]), e["type"]) for e in caught.value.errors()}


def test_record_accepts_a_consistent_history() -> None:
    second = _episode(referral_date="2022-02-01", closure_date=None, closure_reason=None, cin_plans=[],
                      assessments=[], services=None, agencies=None, visits=None, plan_reviews=None)  # fmt: skip
    record = ChildRecord.model_validate(_child(second, _episode()))
    assert [e.referral_date for e in record.episodes] == [dt.date(2021, 1, 10), dt.date(2022, 2, 1)]
    assert record.open_episode is record.episodes[1]


def test_record_round_trips_through_its_json_form() -> None:
    record = ChildRecord.model_validate(_child())
    assert ChildRecord.model_validate_json(record.model_dump_json(exclude_none=True)) == record


def test_record_keeps_missing_extension_missing_not_empty() -> None:
    record = ChildRecord.model_validate(_child(_episode(services=None, visits=[])))
    assert record.episodes[0].services is None
    assert record.episodes[0].visits == []
    assert "services" not in record.model_dump(exclude_none=True)["episodes"][0]


@pytest.mark.parametrize(
    ("episode", "loc", "rule"),
    [
        (_episode(closure_date="2020-12-01"), ("episodes", 0, "closure_date"), "before_referral"),
        (_episode(closure_reason=None), ("episodes", 0, "closure_reason"), "closure_incomplete"),
        (
            _episode(assessments=[{"start_date": "2021-01-12", "authorisation_date": "2021-10-20"}]),
            ("episodes", 0, "assessments", 0, "authorisation_date"),
            "after_closure",
        ),
        (
            _episode(assessments=[{"start_date": "2021-02-12", "authorisation_date": "2021-01-20"}]),
            ("episodes", 0, "assessments", 0, "authorisation_date"),
            "date_order",
        ),
        (
            _episode(assessments=[{"start_date": "2021-01-12", "factors": ["21", "4B"]}]),
            ("episodes", 0, "assessments", 0, "factors"),
            "factor_21_alone",
        ),
        (_episode(referral_nfa=True), ("episodes", 0, "assessments"), "nfa_with_activity"),
        (_episode(closure_reason="RC8"), ("episodes", 0, "cin_plans"), "plan_on_closure_after_assessment"),
        (
            _episode(cin_plans=[{"start_date": "2021-03-01"}]),
            ("episodes", 0, "cin_plans", 0, "end_date"),
            "open_plan_on_closed_episode",
        ),
        (
            _episode(services=[{"service": "counselling", "referred_date": "2021-03-01", "completed": True}]),
            ("episodes", 0, "services", 0, "completed"),
            "completed_without_end",
        ),
        (
            _episode(visits=[{"date": "2021-10-02"}]),
            ("episodes", 0, "visits", 0, "date"),
            "after_closure",
        ),
        (
            _episode(plan_reviews=[{"date": "2021-06-01", "goals_set": 2, "goals_met": 3}]),
            ("episodes", 0, "plan_reviews", 0, "goals_met"),
            "goals_met_exceeds_set",
        ),
    ],
)
def test_record_rejects_episode_breaking_a_census_rule(
    episode: dict[str, Any], loc: tuple[int | str, ...], rule: str
) -> None:
    assert (loc, rule) in _violations(_child(episode))


def test_record_rejects_overlapping_episodes() -> None:
    inside = _episode(referral_date="2021-05-01", closure_date="2021-06-01", cin_plans=[], services=None,
                      plan_reviews=None, visits=None, agencies=None,
                      assessments=[{"start_date": "2021-05-02"}])  # fmt: skip
    assert (("episodes", 1, "referral_date"), "episodes_overlap") in _violations(_child(_episode(), inside))


def test_record_rejects_two_open_episodes() -> None:
    first = _episode(closure_date=None, closure_reason=None, cin_plans=[])
    second = _episode(referral_date="2022-01-01", closure_date=None, closure_reason=None, cin_plans=[],
                      services=None, agencies=None, visits=None, plan_reviews=None, assessments=[])  # fmt: skip
    found = _violations(_child(first, second))
    assert (("episodes",), "multiple_open_episodes") in found
    assert (("episodes", 1, "referral_date"), "episodes_overlap") in found


def test_record_reports_every_violation_of_an_object_at_once() -> None:
    episode = _episode(closure_reason="RC8", visits=[{"date": "2020-01-01"}], closure_date="2021-09-30")
    found = {rule for _, rule in _violations(_child(episode))}
    assert {"plan_on_closure_after_assessment", "before_referral"} <= found


@pytest.mark.parametrize(
    ("overrides", "rule"),
    [
        ({"birth_date": None}, "birth_date_missing"),
        ({"disabilities": ["NONE", "AUT"]}, "disability_none_alone"),
        ({"sex": "1"}, "enum"),
        ({"la_child_id": ""}, "string_too_short"),
        ({"episodes": []}, "too_short"),
        ({"nickname": "x"}, "extra_forbidden"),
    ],
)
def test_record_rejects_bad_child_fields(overrides: dict[str, Any], rule: str) -> None:
    assert rule in {r for _, r in _violations(_child(**overrides))}


def test_record_messages_name_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        ChildRecord.model_validate(_child(_episode(visits=[{"date": "2021-10-02"}])))
    (error,) = caught.value.errors()
    assert "visits[0].date" in error["msg"]
    assert "closure_date" in error["msg"]


def test_record_as_of_hides_everything_after_the_date() -> None:
    record = ChildRecord.model_validate(_child())
    view = record_as_of(record, dt.date(2021, 4, 15))
    assert view is not None
    (episode,) = view.episodes
    assert episode.closure_date is None
    assert episode.closure_reason is None
    assert episode.cin_plans[0].end_date is None
    assert episode.services is not None
    assert episode.services[0].start_date == dt.date(2021, 4, 1)
    assert episode.services[0].end_date is None
    assert episode.services[0].completed is None
    assert episode.agencies == []
    assert episode.plan_reviews == []
    assert [v.date for v in episode.visits or []] == [dt.date(2021, 3, 10)]
    assert all(when <= dt.date(2021, 4, 15) for _, when in episode.dated_events())


def test_record_as_of_hides_factors_until_the_assessment_is_authorised() -> None:
    record = ChildRecord.model_validate(_child())
    during = record_as_of(record, dt.date(2021, 2, 1))
    after = record_as_of(record, dt.date(2021, 2, 20))
    assert during is not None
    assert after is not None
    assert during.episodes[0].assessments[0].factors == []
    assert after.episodes[0].assessments[0].factors == ["16A", "4B"]


def test_record_as_of_before_the_first_referral_is_none() -> None:
    assert record_as_of(ChildRecord.model_validate(_child()), dt.date(2020, 12, 31)) is None


def test_record_as_of_keeps_missing_extension_missing() -> None:
    record = ChildRecord.model_validate(_child(_episode(services=None)))
    view = record_as_of(record, dt.date(2021, 4, 15))
    assert view is not None
    assert view.episodes[0].services is None


def test_record_as_of_after_closure_returns_the_record_unchanged() -> None:
    record = ChildRecord.model_validate(_child())
    assert record_as_of(record, dt.date(2022, 1, 1)) == record
