"""Retention on SQLite and PostgreSQL: the schedule's dates, the plan, and erasure that leaves tombstones so the
chain still verifies, while a delete without a tombstone is still refused and a forged tombstone is found."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from audit import AuditStore, DecisionReview, ScoreRow
from audit.retention import RetentionSchedule, apply_retention, plan_retention
from features import Agreement, Decision
from tests.audit.stores import count_rows, make_score, raw_engine
from tests.audit.test_chain import triggers_off

SCHEDULE = RetentionSchedule.load()


def _aged(age: float | None, as_of: dt.date) -> ScoreRow:
    score = make_score(as_of=as_of)
    return make_score(id=score.id, as_of=as_of, features={**score.features, "age_years": age})


def test_schedule_keeps_until_the_latest_possible_birthday() -> None:
    as_of = dt.date(2020, 6, 30)
    assert SCHEDULE.due(_aged(10.9, as_of))[0] == dt.date(2035, 6, 30)
    assert SCHEDULE.due(_aged(17.2, as_of))[0] == dt.date(2029, 6, 30)  # the 26th
    assert SCHEDULE.due(_aged(None, as_of))[0] == dt.date(2045, 6, 30)
    assert "IRMS" in SCHEDULE.source


def test_schedule_file_refuses_a_missing_or_silly_field(tmp_path: Path) -> None:
    path = tmp_path / "schedule.toml"
    path.write_text('name = "x"\nuntil_birthday = 25\nuntil_birthday_if_17 = 26\nwithout_age_years = 0\nsource = "s"\n')
    with pytest.raises(ValueError, match="without_age_years"):
        RetentionSchedule.load(path)
    path.write_text('name = "x"\n')
    with pytest.raises(ValueError, match="until_birthday"):
        RetentionSchedule.load(path)


def test_retention_erases_what_is_due_and_the_chain_still_verifies(store: AuditStore, store_url: str) -> None:
    old = _aged(16.0, dt.date(2010, 3, 31))  # 25th birthday by 2019: due
    young = _aged(3.0, dt.date(2024, 3, 31))  # kept
    store.save_scores([old, young])
    store.record_decision(score_id=old.id, decided_by="m", decision=Decision.CLOSE, reason="done",
                                  review=DecisionReview(Agreement.AGREE, True, True, True, True))  # fmt: skip
    store.record_decision(score_id=old.id, decided_by="m", decision=Decision.KEEP_OPEN, reason="no", supersede=True)
    store.annotate_score(old.id, annotated_by="dpo", wrong_inputs=["age_years"], note="typo")
    store.record_decision(score_id=young.id, decided_by="m", decision=Decision.CLOSE, reason="done")

    plan = plan_retention(store, SCHEDULE, today=dt.date(2025, 6, 1))
    assert list(plan.due) == [old.id]
    assert plan.kept == 1
    assert count_rows(store_url, "scores") == 2  # planning erases nothing

    erased = apply_retention(store, plan, erased_by="command line")
    assert erased == {"decision_reviews": 1, "decisions": 2, "score_annotations": 1, "score_reads": 0, "scores": 1}
    assert store.get_score(old.id) is None
    assert store.get_score(young.id) == young
    assert store.decisions(young.id)[0].reason == "done"
    assert count_rows(store_url, "tombstones") == 5
    report = store.verify_chain()
    assert report.problems == []
    assert plan_retention(store, SCHEDULE, today=dt.date(2025, 6, 1)).due == {}

    # Without a tombstone a delete is still refused; a tombstone that names another hash is found.
    engine = raw_engine(store_url)
    try:
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(text("DELETE FROM scores"))
    finally:
        engine.dispose()
    with triggers_off(store_url) as connection:
        connection.execute(text("DELETE FROM decisions"))
        connection.execute(text("DELETE FROM scores"))
    problems = store.verify_chain().problems
    assert any(young.id in p and "deleted" in p for p in problems)
    assert not any(old.id in p for p in problems)
