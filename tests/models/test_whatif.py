"""What could still change a score: re-scored changed records, only for what raises the risk."""

from __future__ import annotations

from pathlib import Path

import pytest

from features import FEATURE_NAMES, ChildRecord, current_episode
from features.decode import record_decoder
from models import Assessment, RiskModel, assess
from models.whatif import _changes
from tests.conftest import AS_OF


@pytest.fixture(scope="module")
def model(bundle: Path) -> RiskModel:
    return RiskModel.load(bundle)


def _raising(a: Assessment) -> set[str]:
    return {name for name, share in zip(FEATURE_NAMES, a.contributions.tolist(), strict=True) if share > 0}


def test_what_ifs_rescore_each_change_with_the_same_model(model: RiskModel, open_records: list[ChildRecord]) -> None:
    offered = 0
    for a in assess(model, open_records[:60], AS_OF).assessments:
        for what in a.what_ifs:
            offered += 1
            assert set(what.addresses) <= _raising(a)  # only what pushes this case's risk up
            assert what.difference == pytest.approx(what.probability - a.probability)
            assert 0 < what.probability < 1
    assert offered > 20


def test_completing_a_pending_service_is_offered_and_does_not_raise_the_risk(
    model: RiskModel, open_records: list[ChildRecord]
) -> None:
    def waiting(record: ChildRecord) -> bool:
        services = record.episodes[current_episode(record, AS_OF) or 0].services or []
        return any(s.start_date is None for s in services)

    pending = [r for r in open_records if waiting(r)]
    found = 0
    for a in assess(model, pending, AS_OF).assessments:
        for what in (w for w in a.what_ifs if "were completed" in w.change):
            assert what.difference <= 1e-9  # monotone constraints: completing work never raises the risk
            found += 1
    assert found > 0


def test_what_ifs_offer_nothing_for_a_case_with_no_extension(model: RiskModel, open_records: list[ChildRecord]) -> None:
    record = open_records[0]
    index = current_episode(record, AS_OF)
    assert index is not None
    bare = record.episodes[index].model_copy(
        update={"services": None, "agencies": None, "visits": None, "plan_reviews": None}
    )
    record = record.model_copy(update={"episodes": [*record.episodes[:index], bare]})
    (a,) = assess(model, [record], AS_OF).assessments
    assert a.what_ifs == []


def test_what_ifs_of_a_batch_equal_the_full_score_of_each_changed_record(
    model: RiskModel, open_records: list[ChildRecord]
) -> None:
    records = open_records[:40]
    batch = assess(model, records, AS_OF).assessments
    checked = 0
    for record, a in zip(records, batch, strict=True):
        (alone,) = assess(model, [record], AS_OF).assessments
        assert a.what_ifs == alone.what_ifs  # one at a time or in a batch: the same
        index = current_episode(record, AS_OF)
        assert index is not None
        for label, _, apply in _changes(record.episodes[index], _raising(a), AS_OF):
            # The oracle: the changed record re-featurised whole (the what-ifs edit only the feature row).
            field, items = apply(record.episodes[index], AS_OF)
            changed = record.episodes[index].model_copy(update={field: items})
            episodes = [*record.episodes[:index], changed, *record.episodes[index + 1 :]]
            (full,) = assess(
                model, [record.model_copy(update={"episodes": episodes})], AS_OF, what_ifs=False
            ).assessments
            (what,) = [w for w in a.what_ifs if w.change == label]
            assert what.probability == full.probability
            checked += 1
    assert checked > 10


def test_fast_decoded_records_are_assessed_exactly_as_pydantic_ones(
    model: RiskModel, open_records: list[ChildRecord]
) -> None:
    records = open_records[:60]
    fast: list[ChildRecord] = [record_decoder().decode(r.model_dump_json().encode()) for r in records]
    assert all(not isinstance(f, ChildRecord) for f in fast)  # every one took the fast path
    ours, theirs = assess(model, fast, AS_OF).assessments, assess(model, records, AS_OF).assessments
    assert [a.to_row() for a in ours] == [a.to_row() for a in theirs]


def test_no_what_if_is_offered_when_it_already_holds(open_records: list[ChildRecord]) -> None:
    """A review that found every goal met, or a visit today with the child seen: offering it again is no change."""
    from features import PlanReview, Visit

    record = next(r for r in open_records if r.episodes[current_episode(r, AS_OF) or 0].plan_reviews is not None)
    episode = record.episodes[current_episode(record, AS_OF) or 0]
    raising = {"goals_met_share", "goals_met_change", "days_since_visit"}
    met = episode.model_copy(
        update={
            "plan_reviews": [PlanReview(date=AS_OF, goals_set=3, goals_met=3)],
            "visits": [Visit(date=AS_OF, child_seen=True)],
        }
    )
    assert [c[0] for c in _changes(met, raising, AS_OF) if "goals" in c[0] or "visited" in c[0]] == []
    unmet = met.model_copy(update={"plan_reviews": [PlanReview(date=AS_OF, goals_set=3, goals_met=2)], "visits": []})
    offered = [c[0] for c in _changes(unmet, raising, AS_OF)]
    assert "If a review today found the plan's goals met" in offered
    assert "If the child were visited and seen today" in offered
