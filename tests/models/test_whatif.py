"""What could still change a score: re-scored changed records, only for what raises the risk."""

from __future__ import annotations

from pathlib import Path

import pytest

from features import ChildRecord, current_episode
from models import RiskModel, score_records
from models.whatif import what_could_change, what_could_change_many
from tests.conftest import AS_OF


@pytest.fixture(scope="module")
def model(bundle: Path) -> RiskModel:
    return RiskModel.load(bundle)


def test_what_could_change_rescores_each_change_with_the_same_model(
    model: RiskModel, open_records: list[ChildRecord]
) -> None:
    offered = 0
    for record in open_records[:60]:
        (score,), _ = score_records(model, [record], AS_OF)
        raising = {r.feature for r in score.reasons if r.contribution > 0}
        for what in what_could_change(model, record, AS_OF, score):
            offered += 1
            assert set(what.addresses) <= raising  # only what pushes this case's risk up
            assert what.difference == pytest.approx(what.probability - score.probability)
            assert 0 < what.probability < 1
    assert offered > 20


def test_completing_a_pending_service_is_offered_and_does_not_raise_the_risk(
    model: RiskModel, open_records: list[ChildRecord]
) -> None:
    found = 0
    for record in open_records:
        episode = record.episodes[current_episode(record, AS_OF) or 0]
        if not any(s.start_date is None for s in episode.services or []):
            continue
        (score,), _ = score_records(model, [record], AS_OF)
        completions = [w for w in what_could_change(model, record, AS_OF, score) if "were completed" in w.change]
        for what in completions:
            assert what.difference <= 1e-9  # monotone constraints: completing work never raises the risk
            found += 1
    assert found > 0


def test_what_could_change_offers_nothing_for_a_case_with_no_extension(
    model: RiskModel, open_records: list[ChildRecord]
) -> None:
    record = open_records[0]
    index = current_episode(record, AS_OF)
    assert index is not None
    bare = record.episodes[index].model_copy(
        update={"services": None, "agencies": None, "visits": None, "plan_reviews": None}
    )
    record = record.model_copy(update={"episodes": [*record.episodes[:index], bare]})
    (score,), _ = score_records(model, [record], AS_OF)
    assert what_could_change(model, record, AS_OF, score) == []


def test_what_could_change_many_equals_the_full_score_of_each_changed_record(
    model: RiskModel, open_records: list[ChildRecord]
) -> None:
    from models.whatif import _changes

    records = open_records[:40]
    scores, _ = score_records(model, records, AS_OF)
    many = what_could_change_many(model, records, [AS_OF] * len(records), scores)
    checked = 0
    for record, score, found in zip(records, scores, many, strict=True):
        assert found == what_could_change(model, record, AS_OF, score)  # one at a time or in a batch: the same
        index = current_episode(record, AS_OF)
        assert index is not None
        raising = {r.feature for r in score.reasons if r.contribution > 0}
        for label, _, apply in _changes(record.episodes[index], raising, AS_OF):
            episodes = [*record.episodes[:index], apply(record.episodes[index], AS_OF), *record.episodes[index + 1 :]]
            (full,), _ = score_records(model, [record.model_copy(update={"episodes": episodes})], AS_OF)
            (what,) = [w for w in found if w.change == label]
            assert what.probability == pytest.approx(full.probability, abs=1e-12)
            checked += 1
    assert checked > 10
