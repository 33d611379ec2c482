"""The audit store on SQLite and PostgreSQL: exact round trips, atomic writes, decisions, keys, the queue, sessions."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from audit import ApiKey, AuditStore, DecisionExists, DecisionRow, ScoreNotFound, StoreError
from features import Band, Decision, Role
from tests.audit.stores import INPUTS, count_rows, make_score, raw_engine, run_together

# --- scores ----------------------------------------------------------------------------------------------------


def test_score_round_trips_every_field_exactly(store: AuditStore) -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    row = make_score(created_at=datetime(2025, 3, 31, 14, 45, 2, 654321, tzinfo=india))
    store.save_scores([row])
    stored = store.get_score(row.id)
    assert stored == row
    assert stored is not None
    assert stored.created_at.utcoffset() == timedelta(0)
    assert stored.created_at == datetime(2025, 3, 31, 9, 15, 2, 654321, tzinfo=UTC)
    for name in ("probability", "raw_score", "base_value"):
        assert getattr(stored, name).hex() == getattr(row, name).hex()
    assert {k: v.hex() for k, v in stored.features.items() if isinstance(v, float)} == {
        k: v.hex() for k, v in row.features.items() if isinstance(v, float)
    }


def test_rows_read_back_hold_the_vocabulary_members(store: AuditStore) -> None:
    score = make_score(band=Band.HIGH)
    store.save_scores([score])
    store.record_decision(score_id=score.id, decided_by="m1", decision=Decision.CLOSE, reason="plan met")
    plaintext, _ = store.create_key(name="manager", role=Role.MANAGER)
    stored, queued, found = store.get_score(score.id), store.queue()[0][0], store.verify_key(plaintext)
    assert stored is not None
    assert found is not None
    assert {type(r.band) for r in (stored, queued.score, *store.scores_between())} == {Band}
    decisions = [queued.decision, *(d.decision for d in store.decisions(score.id))]
    decisions += [d.decision for d in store.current_decisions([score.id]).values()]
    assert {type(d) for d in decisions} == {Decision}
    assert {type(k.role) for k in (found, *store.list_keys())} == {Role}


def test_get_score_unknown_id_is_none(store: AuditStore) -> None:
    assert store.get_score("no-such-score") is None


def test_save_scores_batch_with_a_duplicate_stores_none(store: AuditStore, store_url: str) -> None:
    first, second = make_score(), make_score()
    with pytest.raises(StoreError):
        store.save_scores([first, second, dataclasses.replace(first, band=Band.HIGH)])
    assert store.get_score(first.id) is None
    assert store.get_score(second.id) is None
    store.save_scores([first])
    third = make_score()
    with pytest.raises(StoreError):
        store.save_scores([third, first])  # clashes with a stored row this time
    assert store.get_score(third.id) is None
    assert count_rows(store_url, "scores") == 1


@pytest.mark.parametrize(
    "change",
    [
        {"probability": float("nan")},
        {"probability": 1.5},
        {"raw_score": float("inf")},
        {"features": {"age_years": float("nan")}},
        {"created_at": datetime(2025, 3, 31, 9, 15)},
        {"band": "severe"},
    ],
    ids=["nan-probability", "probability-above-one", "infinite-raw-score", "nan-feature", "naive-timestamp", "band"],
)
def test_save_scores_invalid_row_stores_none(store: AuditStore, store_url: str, change: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="score"):
        store.save_scores([make_score(), make_score(**change)])
    assert count_rows(store_url, "scores") == 0


def _chain_of(exc: BaseException | None) -> str:
    """The exception and every one it was raised from, as a log's traceback would print them."""
    text = ""
    while exc is not None:
        text += f"{exc}\n"
        exc = exc.__cause__ if exc.__cause__ is not None or exc.__suppress_context__ else exc.__context__
    return text


@pytest.mark.parametrize("clash", ["duplicate", "not-null"])
def test_save_scores_refused_keeps_the_case_out_of_the_error(store: AuditStore, clash: str) -> None:
    row = make_score(case_id="case-7f3a-private", features={"note": "private detail"})
    store.save_scores([row])
    refused = row if clash == "duplicate" else make_score(case_id=row.case_id, features=row.features, caller=None)
    with pytest.raises(StoreError, match="none of 1 scores saved") as raised:
        store.save_scores([refused])
    told = _chain_of(raised.value)
    assert "case-7f3a-private" not in told
    assert "private detail" not in told


def test_save_scores_unavailable_keeps_the_case_out_of_the_error(tmp_path: Path) -> None:
    store = AuditStore(f"sqlite:///{tmp_path / 'audit.db'}", inputs=INPUTS)
    try:
        store.migrate()
        with store.engine.begin() as connection:  # a database that fails the insert itself, not a constraint
            connection.exec_driver_sql("DROP TABLE decisions")
            connection.exec_driver_sql("DROP TABLE scores")
        with pytest.raises(StoreError, match="unavailable") as raised:
            store.save_scores([make_score(case_id="case-7f3a-private", features={"note": "private detail"})])
    finally:
        store.close()
    told = _chain_of(raised.value)
    assert "case-7f3a-private" not in told
    assert "private detail" not in told


# --- decisions -------------------------------------------------------------------------------------------------


def test_record_decision_first_then_refuses_a_second(store: AuditStore) -> None:
    score = make_score()
    store.save_scores([score])
    first = store.record_decision(score_id=score.id, decided_by="manager-1", decision=Decision.CLOSE, reason="Plan met")
    assert (first.score_id, first.decision, first.supersedes) == (score.id, Decision.CLOSE, None)
    assert first.created_at.utcoffset() == timedelta(0)
    with pytest.raises(DecisionExists):
        store.record_decision(score_id=score.id, decided_by="manager-2", decision=Decision.KEEP_OPEN, reason="Not yet")
    assert store.decisions(score.id) == [first]


def test_record_decision_supersede_builds_a_chain(store: AuditStore) -> None:
    score, other = make_score(), make_score()
    store.save_scores([score, other])
    first = store.record_decision(score_id=score.id, decided_by="m1", decision=Decision.CLOSE, reason="a")
    second = store.record_decision(
        score_id=score.id, decided_by="m2", decision=Decision.KEEP_OPEN, reason="b", supersede=True
    )
    third = store.record_decision(
        score_id=score.id, decided_by="m1", decision=Decision.STEP_DOWN_EARLY_HELP, reason="c", supersede=True
    )
    assert (second.supersedes, third.supersedes) == (first.id, second.id)
    assert store.decisions(score.id) == [first, second, third]
    assert store.decisions(other.id) == []
    with pytest.raises(DecisionExists):
        store.record_decision(score_id=score.id, decided_by="m3", decision=Decision.CLOSE, reason="d")
    # supersede on an undecided score just records the first decision
    only = store.record_decision(
        score_id=other.id, decided_by="m1", decision=Decision.CLOSE, reason="e", supersede=True
    )
    assert only.supersedes is None


def test_record_decision_unknown_score_raises(store: AuditStore) -> None:
    with pytest.raises(ScoreNotFound):
        store.record_decision(score_id="no-such-score", decided_by="m1", decision=Decision.CLOSE, reason="a")
    with pytest.raises(ScoreNotFound):
        store.record_decision(
            score_id="no-such-score", decided_by="m1", decision=Decision.CLOSE, reason="a", supersede=True
        )


def test_record_decision_unknown_value_raises(store: AuditStore) -> None:
    score = make_score()
    store.save_scores([score])
    with pytest.raises(ValueError, match="unknown decision"):
        store.record_decision(score_id=score.id, decided_by="m1", decision=cast(Decision, "delete"), reason="a")
    assert store.decisions(score.id) == []


def test_record_decision_racing_first_decisions_one_wins(store: AuditStore) -> None:
    score = make_score()
    store.save_scores([score])
    results = run_together(
        8,
        lambda i: store.record_decision(score_id=score.id, decided_by=f"m{i}", decision=Decision.CLOSE, reason="race"),
    )
    winners = [r for r in results if isinstance(r, DecisionRow)]
    assert len(winners) == 1
    assert all(isinstance(r, DecisionExists) for r in results if r not in winners), results
    assert store.decisions(score.id) == winners


def test_record_decision_racing_supersedes_form_one_chain(store: AuditStore) -> None:
    score = make_score()
    store.save_scores([score])
    first = store.record_decision(score_id=score.id, decided_by="m0", decision=Decision.CLOSE, reason="first")
    results = run_together(
        6,
        lambda i: store.record_decision(
            score_id=score.id, decided_by=f"m{i}", decision=Decision.KEEP_OPEN, reason="race", supersede=True
        ),
    )
    assert all(isinstance(r, DecisionRow) for r in results), results
    chain = store.decisions(score.id)
    assert chain[0] == first
    assert len(chain) == 7
    assert [d.supersedes for d in chain[1:]] == [d.id for d in chain[:-1]]


def test_schema_refuses_a_second_current_decision(store: AuditStore) -> None:
    score, other = make_score(), make_score()
    store.save_scores([score, other])
    first = store.record_decision(score_id=score.id, decided_by="m1", decision=Decision.CLOSE, reason="a")
    second = store.record_decision(
        score_id=score.id, decided_by="m1", decision=Decision.CLOSE, reason="b", supersede=True
    )
    insert = text(
        "INSERT INTO decisions (id, score_id, created_at, decided_by, decision, reason, supersedes) "
        "VALUES (:id, :score_id, CURRENT_TIMESTAMP, 'writer', 'close', 'bypassing the store', :supersedes)"
    )
    for score_id, supersedes in [
        (score.id, None),  # a second first decision
        (score.id, first.id),  # superseding an already superseded decision
        (other.id, second.id),  # superseding another score's decision
    ]:
        with store.engine.connect() as connection, pytest.raises(IntegrityError):
            connection.execute(insert, {"id": str(uuid.uuid4()), "score_id": score_id, "supersedes": supersedes})
    assert store.decisions(score.id) == [first, second]


# --- API keys --------------------------------------------------------------------------------------------------


def test_create_key_returns_the_plaintext_once_and_stores_only_its_digest(store: AuditStore, store_url: str) -> None:
    plaintext, key = store.create_key(name="case system", role=Role.SYSTEM)
    other, _ = store.create_key(name="case system 2", role=Role.SYSTEM)
    assert plaintext.startswith("ccr_")
    assert len(plaintext) >= 4 + 43
    assert other != plaintext
    assert key.role is Role.SYSTEM
    assert key.revoked_at is None
    assert key.created_at.utcoffset() == timedelta(0)
    engine = raw_engine(store_url)
    try:
        with engine.connect() as connection:
            rows = [dict(r._mapping) for r in connection.execute(text("SELECT * FROM api_keys"))]
    finally:
        engine.dispose()
    stored = next(r for r in rows if r["id"] == key.id)
    assert stored["digest"] == hashlib.sha256(plaintext.encode()).hexdigest()
    secret = plaintext.removeprefix("ccr_")
    assert not any(secret in str(value) for row in rows for value in row.values())


def test_verify_key_accepts_the_key_and_refuses_others(store: AuditStore) -> None:
    plaintext, key = store.create_key(name="Team manager", role=Role.MANAGER)
    assert store.verify_key(plaintext) == key
    assert store.verify_key(plaintext + "x") is None
    assert store.verify_key("ccr_" + "A" * 43) is None
    assert store.verify_key("") is None


def test_verify_key_refuses_a_revoked_key(store: AuditStore) -> None:
    plaintext, key = store.create_key(name="admin", role=Role.ADMIN)
    kept, kept_key = store.create_key(name="other admin", role=Role.ADMIN)
    assert store.revoke_key(key.id) is True
    assert store.verify_key(plaintext) is None
    assert store.verify_key(kept) == kept_key
    revoked = next(k for k in store.list_keys() if k.id == key.id)
    assert revoked.revoked_at is not None
    assert store.revoke_key(key.id) is True  # revoking again keeps the first time
    assert next(k for k in store.list_keys() if k.id == key.id).revoked_at == revoked.revoked_at
    assert store.revoke_key("no-such-key") is False


@pytest.mark.parametrize(("name", "role"), [("robot", "superuser"), ("robot", ""), ("  ", "admin"), ("", "system")])
def test_create_key_rejects_unknown_role_or_empty_name(store: AuditStore, name: str, role: str) -> None:
    with pytest.raises(ValueError, match=r"role|name"):
        store.create_key(name=name, role=cast(Role, role))  # as a caller that ignores the types might
    assert store.list_keys() == []


def test_list_keys_oldest_first_with_revoked(store: AuditStore) -> None:
    made = [store.create_key(name=f"key {i}", role=role)[1] for i, role in enumerate(Role)]
    store.revoke_key(made[1].id)
    listed = store.list_keys()
    assert [k.id for k in listed] == [k.id for k in made]
    assert [k.revoked_at is not None for k in listed] == [False, True, False]
    assert all(isinstance(k, ApiKey) for k in listed)


# --- the manager's queue and page sessions -------------------------------------------------------------------


def test_queue_keeps_each_cases_latest_score_highest_first_with_its_current_decision(store: AuditStore) -> None:
    at = datetime(2025, 3, 31, 9, 0, tzinfo=UTC)
    old = make_score(case_id="case-a", probability=0.9, band=Band.HIGH, created_at=at)
    newer = make_score(case_id="case-a", probability=0.2, band=Band.LOW, created_at=at + timedelta(days=1))
    other = make_score(case_id="case-b", probability=0.5, band=Band.MEDIUM, created_at=at)
    third = make_score(case_id="case-c", probability=0.7, band=Band.HIGH, created_at=at,
                       what_ifs=[{"change": "If counselling were completed", "addresses": ["counselling_completed"],
                                  "probability": 0.6, "difference": -0.1}],
                       warnings=["Not recorded in the case file"], ethnic_group="white")  # fmt: skip
    store.save_scores([old, newer, other, third])
    store.record_decision(score_id=other.id, decided_by="m", decision=Decision.CLOSE, reason="work done")
    store.record_decision(
        score_id=other.id, decided_by="m", decision=Decision.KEEP_OPEN, reason="new concern", supersede=True
    )

    rows, total = store.queue()
    assert total == 3
    assert [(r.score.id, r.decision) for r in rows] == [
        (third.id, None),
        (other.id, Decision.KEEP_OPEN),
        (newer.id, None),
    ]
    assert rows[0].score == third  # what-ifs, warnings and the audit group round-trip
    assert [r.score.id for r in store.queue(band=Band.HIGH)[0]] == [third.id]  # the old high score is superseded
    assert [r.score.id for r in store.queue(decision=Decision.KEEP_OPEN)[0]] == [other.id]
    assert store.queue(decision=Decision.CLOSE)[0] == []  # "close" was superseded: not the current decision
    assert [r.score.id for r in store.queue(decision="undecided")[0]] == [third.id, newer.id]
    limited, total = store.queue(limit=1)
    assert ([r.score.id for r in limited], total) == ([third.id], 3)


def test_page_session_round_trip_expiry_revocation_and_end(store: AuditStore) -> None:
    plaintext, key = store.create_key(name="manager-a", role=Role.MANAGER)
    token, session = store.create_session(key, lifetime_s=3600)
    found = store.verify_session(token)
    assert found is not None
    assert (found.key.id, found.csrf_token) == (key.id, session.csrf_token)
    assert store.verify_session(token + "x") is None
    assert store.verify_session("") is None
    store.end_session(token)
    assert store.verify_session(token) is None

    expired, _ = store.create_session(key, lifetime_s=0)
    assert store.verify_session(expired) is None
    live, _ = store.create_session(key, lifetime_s=3600)
    store.revoke_key(key.id)
    assert store.verify_session(live) is None  # revoking the key ends its sessions
    assert plaintext not in {token, live}


def test_scores_between_filters_by_as_of_oldest_first(store: AuditStore) -> None:
    rows = [make_score(as_of=date(2024, month, 1)) for month in (5, 1, 3)]
    store.save_scores(rows)
    assert [r.as_of for r in store.scores_between()] == [date(2024, 1, 1), date(2024, 3, 1), date(2024, 5, 1)]
    assert [r.as_of for r in store.scores_between(since=date(2024, 3, 1))] == [date(2024, 3, 1), date(2024, 5, 1)]
    assert [r.as_of for r in store.scores_between(until=date(2024, 2, 1))] == [date(2024, 1, 1)]
    assert store.scores_between(since=date(2024, 3, 1))[0] == next(r for r in rows if r.as_of == date(2024, 3, 1))


def test_current_decisions_returns_the_end_of_each_chain(store: AuditStore) -> None:
    kept, superseded, undecided = make_score(), make_score(), make_score()
    store.save_scores([kept, superseded, undecided])
    store.record_decision(score_id=kept.id, decided_by="m1", decision=Decision.KEEP_OPEN, reason="plan not finished")
    store.record_decision(score_id=superseded.id, decided_by="m1", decision=Decision.CLOSE, reason="goals met")
    latest = store.record_decision(
        score_id=superseded.id,
        decided_by="m2",
        decision=Decision.STEP_DOWN_EARLY_HELP,
        reason="on review",
        supersede=True,
    )
    current = store.current_decisions([kept.id, superseded.id, undecided.id, kept.id])
    assert set(current) == {kept.id, superseded.id}
    assert current[kept.id].decision is Decision.KEEP_OPEN
    assert current[superseded.id] == latest


def test_queue_shows_each_case_by_its_latest_as_of_not_its_last_made_score(store: AuditStore) -> None:
    newer = make_score(case_id="case-a", as_of=date(2025, 3, 31), band=Band.MEDIUM, probability=0.4)
    backfilled = make_score(
        case_id="case-a", as_of=date(2021, 3, 31), band=Band.LOW, probability=0.05,
        created_at=newer.created_at + timedelta(days=1),
    )  # fmt: skip
    store.save_scores([newer])
    store.save_scores([backfilled])
    rows, total = store.queue()
    assert total == 1
    assert rows[0].score.id == newer.id
