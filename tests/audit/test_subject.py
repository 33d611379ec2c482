"""Subject access and rectification on SQLite and PostgreSQL: the export finds every score of a child through the
pseudonym key and nothing of another child; an annotation is a chained row, never an edit; reviews come along."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from audit import ALL_TEAMS, AuditStore, Pseudonymiser, ReadKind, ScoreNotFound
from audit.rows import DecisionReview
from audit.subject import candidate_case_ids, export_subject
from features import Agreement, Decision, Role
from tests.audit.stores import make_score, raw_engine

TODAY = dt.date(2025, 6, 1)
KEY = b"k" * 32


def _score_for(pseudonyms: Pseudonymiser, child: str, referral: dt.date, as_of: dt.date) -> object:
    return make_score(case_id=pseudonyms.case_id(child, referral), as_of=as_of)


def test_candidate_case_ids_cover_every_referral_date_from_before_birth_to_today() -> None:
    pseudonyms = Pseudonymiser(KEY)
    birth = dt.date(2015, 5, 4)
    start, ids = candidate_case_ids(pseudonyms, "CH1", birth_date=birth, today=TODAY)
    assert start == birth - dt.timedelta(days=280)
    assert len(ids) == (TODAY - start).days + 1
    assert pseudonyms.case_id("CH1", start) == ids[0]
    assert pseudonyms.case_id("CH1", TODAY) == ids[-1]
    assert pseudonyms.case_id("CH1", start - dt.timedelta(days=1)) not in ids
    with pytest.raises(ValueError, match="empty"):
        candidate_case_ids(pseudonyms, " ", birth_date=None, today=TODAY)


def test_export_finds_every_score_of_the_child_and_nothing_of_another(store: AuditStore) -> None:
    pseudonyms = Pseudonymiser(KEY)
    mine = [
        _score_for(pseudonyms, "CH1", dt.date(2016, 1, 10), dt.date(2016, 9, 1)),  # an early episode
        _score_for(pseudonyms, "CH1", dt.date(2024, 11, 2), dt.date(2025, 3, 31)),  # the current one, twice
        _score_for(pseudonyms, "CH1", dt.date(2024, 11, 2), dt.date(2025, 5, 31)),
    ]
    others = [
        _score_for(pseudonyms, "CH2", dt.date(2024, 11, 2), dt.date(2025, 3, 31)),  # same referral date
        _score_for(pseudonyms, "CH10", dt.date(2016, 1, 10), dt.date(2016, 9, 1)),  # an id that starts alike
        _score_for(Pseudonymiser(b"x" * 32), "CH1", dt.date(2024, 11, 2), dt.date(2025, 3, 31)),  # another key
    ]
    store.save_scores([*mine, *others])  # type: ignore[list-item]
    decision = store.record_decision(
        score_id=mine[1].id,  # type: ignore[attr-defined]
        decided_by="m1",
        decision=Decision.KEEP_OPEN,
        reason="plan not finished",
        review=DecisionReview(Agreement.HIGHER, True, False, True, False, "school worried", 312.5),
    )
    _, reader = store.create_key(name="reader", role=Role.MANAGER, created_by="test", team=ALL_TEAMS)
    read = store.record_read(key_id=reader.id, what=ReadKind.REPORT, score_id=mine[1].id)  # type: ignore[attr-defined]
    store.record_read(key_id=reader.id, what=ReadKind.SCORE, score_id=others[0].id)  # type: ignore[attr-defined]

    export = export_subject(store, pseudonyms, "CH1", today=TODAY)
    assert sorted(s.score.id for s in export.scores) == sorted(s.id for s in mine)  # type: ignore[attr-defined]
    found = {s.score.id: s for s in export.scores}
    # Who read the child's score is in the export; another child's reads are not.
    assert found[mine[1].id].reads == [read]  # type: ignore[attr-defined]
    assert sum(len(s.reads) for s in export.scores) == 1
    assert found[decision.score_id].decisions == [decision]
    assert found[decision.score_id].reviews[decision.id].agreement is Agreement.HIGHER
    document = json.loads(json.dumps(export.as_json()))
    assert {s["id"] for s in document["scores"]} == {s.id for s in mine}  # type: ignore[attr-defined]
    decided = next(s for s in document["scores"] if s["decisions"])
    assert decided["decisions"][0]["review"]["report_open_s"] == 312.5
    assert decided["features"] == found[decision.score_id].score.features
    assert decided["reads"][0]["what"] == "report"

    # A birth date narrows the search to the referral dates the child could have had.
    late = export_subject(store, pseudonyms, "CH1", birth_date=dt.date(2020, 1, 1), today=TODAY)
    assert sorted(s.score.id for s in late.scores) == sorted(s.id for s in mine[1:])  # type: ignore[attr-defined]
    assert export_subject(store, pseudonyms, "CH3", today=TODAY).scores == []


def test_annotation_is_a_chained_row_never_an_edit(store: AuditStore, store_url: str) -> None:
    wrong, corrected = make_score(), make_score(probability=0.12)
    store.save_scores([wrong, corrected])
    note = store.annotate_score(
        wrong.id, annotated_by="dpo", wrong_inputs=["referrals_12m"], note="two referrals were another child's",
        rescored_as=corrected.id,
    )  # fmt: skip
    assert store.get_score(wrong.id) == wrong  # unchanged
    assert store.annotations([wrong.id, corrected.id]) == {wrong.id: [note]}
    report = store.verify_chain()
    assert report.problems == []
    assert report.entries == 3
    with pytest.raises(ScoreNotFound):
        store.annotate_score("nope", annotated_by="dpo", wrong_inputs=["x"], note="n")
    with pytest.raises(ScoreNotFound):
        store.annotate_score(wrong.id, annotated_by="dpo", wrong_inputs=["x"], note="n", rescored_as="nope")
    with pytest.raises(ValueError, match="inputs"):
        store.annotate_score(wrong.id, annotated_by="dpo", wrong_inputs=[], note="n")
    engine = raw_engine(store_url)
    try:
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(text("UPDATE score_annotations SET note = 'changed'"))
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(text("DELETE FROM score_annotations"))
    finally:
        engine.dispose()
    assert dataclasses.replace(note) == store.annotations([wrong.id])[wrong.id][0]
