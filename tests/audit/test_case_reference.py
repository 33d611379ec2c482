"""The calling system's case reference at rest, on SQLite and PostgreSQL: sealed with the other inputs, never in plain
in a row or the chain, found by a keyed blind index (exactly that case's scores), chained alike by the driver writer
and the ORM path, erased with its score; a reference stored in plain before revision 0010 still reads, verifies and
is found."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import insert, select, text

from audit import AuditStore, InputsCipher, InputsUnavailable, Pseudonymiser, ScoreRow
from audit.chain import append_to_chain, canonical, link
from audit.crypto import normalise_reference, seal_score
from audit.subject import export_subject
from audit.tables import AuditBase, alembic_config, migration_transaction
from audit.writer import ScoreWriter
from tests.audit.stores import INPUTS, make_score, postgres_database, raw_engine
from tests.audit.test_chain import triggers_off

REFERENCE = "CMS-2025/00417"
SCORES = AuditBase.metadata.tables["scores"]


def _raw_rows(url: str, table: str) -> list[dict[str, Any]]:
    engine = raw_engine(url)
    try:
        with engine.connect() as connection:
            return [dict(row) for row in connection.execute(text(f"SELECT * FROM {table}")).mappings()]
    finally:
        engine.dispose()


def _raw_score(url: str, score_id: str) -> dict[str, Any]:
    (row,) = [r for r in _raw_rows(url, "scores") if r["id"] == score_id]
    return row


def _case(n: int, **changes: Any) -> ScoreRow:
    return make_score(case_id=f"case_{n:032x}", **changes)


def test_the_stored_row_and_chain_never_hold_the_reference_in_plain(store: AuditStore, store_url: str) -> None:
    score = _case(1, case_reference=REFERENCE)
    store.save_scores([score])
    everything = json.dumps([_raw_rows(store_url, t) for t in ("scores", "audit_chain")], default=str)
    # The sealed blob is base64, which has no "-": the reference cannot appear in it by chance.
    for shown in (REFERENCE, "00417", REFERENCE.lower()):
        assert shown not in everything
    raw = _raw_score(store_url, score.id)
    assert raw["case_reference"] is None
    assert raw["case_reference_index"] == INPUTS.reference_index(REFERENCE)
    assert store.get_score(score.id) == score  # opened with the inputs key, exactly as sent


def test_the_blind_index_is_keyed_not_a_plain_hash() -> None:
    index = INPUTS.reference_index(REFERENCE)
    assert len(index) == 64
    assert int(index, 16) >= 0
    for unkeyed in (REFERENCE, normalise_reference(REFERENCE)):
        assert index not in (
            hashlib.sha256(unkeyed.encode()).hexdigest(),
            hashlib.sha3_256(unkeyed.encode()).hexdigest(),
        )
    assert InputsCipher(secrets.token_bytes(32)).reference_index(REFERENCE) != index  # another key, another index
    assert INPUTS.reference_index(f"  {REFERENCE}\t") == index  # normalised: spaces at the ends do not count
    assert INPUTS.reference_index(REFERENCE.lower()) != index  # the case does: the reference is the caller's


def test_search_by_reference_finds_that_case_and_no_other(store: AuditStore) -> None:
    first, later = _case(1, case_reference=REFERENCE), _case(1, case_reference=REFERENCE, as_of=dt.date(2025, 4, 30))
    alike = [_case(2, case_reference="CMS-2025/0041"), _case(3, case_reference=f"{REFERENCE}7"), _case(4)]
    other = _case(5, case_reference="B 3")
    store.save_scores([first, later, *alike, other])
    rows, total = store.queue(case_reference=REFERENCE)
    assert ([r.score.id for r in rows], total) == ([later.id], 1)  # the case's latest score, with its reference
    assert rows[0].score.case_reference == REFERENCE
    assert [r.score.id for r in store.queue(case_reference="B 3")[0]] == [other.id]
    assert store.queue(case_reference="CMS-2025")[1] == 0
    assert store.queue()[1] == 5


def test_a_reference_indexed_before_a_key_rotation_is_still_found(store_url: str) -> None:
    old_key, new_key = secrets.token_bytes(32), secrets.token_bytes(32)
    before = AuditStore(store_url, inputs=InputsCipher(old_key))
    score = _case(1, case_reference=REFERENCE)
    try:
        before.save_scores([score])
    finally:
        before.close()
    after = AuditStore(store_url, inputs=InputsCipher(new_key, [old_key]))
    try:
        newer = _case(2, case_reference=REFERENCE)  # another case that the caller gave the same reference
        after.save_scores([newer])
        assert sorted(r.score.id for r in after.queue(case_reference=REFERENCE)[0]) == sorted([score.id, newer.id])
        assert {_raw_score(store_url, s.id)["case_reference_index"] for s in (score, newer)} == {
            InputsCipher(old_key).reference_index(REFERENCE),
            InputsCipher(new_key).reference_index(REFERENCE),
        }
    finally:
        after.close()
    without = AuditStore(store_url)
    try:
        with pytest.raises(InputsUnavailable):
            without.queue(case_reference=REFERENCE)
    finally:
        without.close()


def test_the_chain_covers_the_sealed_reference_and_its_index(store: AuditStore, store_url: str) -> None:
    score, plain = _case(1, case_reference=REFERENCE), _case(2)
    store.save_scores([score, plain])
    assert store.verify_chain().problems == []
    assert _raw_score(store_url, plain.id)["case_reference_index"] is None  # not given: no index, not hashed
    with triggers_off(store_url) as connection:  # point the row at another case's reference
        connection.execute(text("UPDATE scores SET case_reference_index = :other WHERE id = :id"),
                           {"other": INPUTS.reference_index("B 3"), "id": score.id})  # fmt: skip
    assert store.verify_chain().problems == [f"scores row {score.id} (chain entry 1) was changed after it was written"]


@pytest.mark.parametrize("reference", [REFERENCE, None])
def test_driver_writer_and_orm_path_hash_the_row_alike(
    store: AuditStore, store_url: str, reference: str | None
) -> None:
    """The writer's canonical bytes are those the ORM path (``append_to_chain`` with the inserted values) hashes,
    and those ``audit verify`` recomputes from the row read back."""
    driver, orm = _case(1, case_reference=reference), _case(2, case_reference=reference)
    writer = ScoreWriter(store.engine)
    values = seal_score(driver, INPUTS)
    assert writer.encode(driver, values).canonical == canonical("scores", values)
    store.save_scores([driver])
    engine = raw_engine(store_url)
    try:
        with engine.begin() as connection:
            found = connection.execute(select(SCORES).where(SCORES.c.id == driver.id)).mappings().one()
            read = dict(found)
            (entry,) = connection.execute(text("SELECT prev_hash, row_hash FROM audit_chain")).all()
            assert writer.encode(driver, read).canonical == canonical("scores", read)
            assert link(entry.prev_hash, "scores", read) == entry.row_hash
            assert ("case_reference_index" in json.loads(canonical("scores", read))[1]) == (reference is not None)
            orm_values = seal_score(orm, INPUTS)
            connection.execute(insert(SCORES).values(orm_values))
            append_to_chain(connection, [("scores", orm_values)])
    finally:
        engine.dispose()
    assert store.verify_chain().problems == []
    assert store.get_score(orm.id) == orm


def test_erasing_a_score_erases_its_sealed_reference_and_index(store: AuditStore, store_url: str) -> None:
    erased, kept = _case(1, case_reference=REFERENCE), _case(2, case_reference="B 3")
    store.save_scores([erased, kept])
    index = _raw_score(store_url, erased.id)["case_reference_index"]
    assert store.erase_scores({erased.id: "test: due"}, erased_by="command line")["scores"] == 1
    left = _raw_rows(store_url, "scores")
    assert [r["id"] for r in left] == [kept.id]
    assert index not in json.dumps(left, default=str)
    assert store.queue(case_reference=REFERENCE)[1] == 0
    assert [r.score.id for r in store.queue(case_reference="B 3")[0]] == [kept.id]
    assert store.verify_chain().problems == []


def test_the_subject_export_shows_the_reference_opened(store: AuditStore) -> None:
    pseudonyms = Pseudonymiser(b"k" * 32)
    score = make_score(case_id=pseudonyms.case_id("CH1", dt.date(2024, 11, 2)), case_reference=REFERENCE)
    store.save_scores([score])
    export = export_subject(store, pseudonyms, "CH1", birth_date=None, today=dt.date(2025, 6, 1))
    assert [s.score.case_reference for s in export.scores] == [REFERENCE]
    assert REFERENCE in json.dumps(export.as_json(), default=str)


def _old_style(row: ScoreRow) -> dict[str, Any]:
    """The values a score with a reference was stored as by revisions 0007 to 0009: the reference in plain, the
    other personal inputs sealed without it."""
    values: dict[str, Any] = {name: getattr(row, name) for name in ScoreRow.__dataclass_fields__}
    sealed = ("features", "reasons", "what_ifs", "warnings", "ethnic_group")
    values["sealed_inputs"] = INPUTS.seal({name: values[name] for name in sealed}, row_id=row.id)
    values.update(dict.fromkeys(sealed), inputs_key=INPUTS.key_id)
    return values


def _migrate_to(store: AuditStore, revision: str, *, down: bool = False) -> None:
    config = alembic_config()
    with migration_transaction(store.engine.execution_options(audit_write=True)) as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_reference_stored_in_plain_before_0010_still_reads_verifies_and_is_found(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    def check(url: str) -> None:
        store = AuditStore(url, inputs=INPUTS)
        try:
            _migrate_to(store, "0008")
            old, unreferenced = _case(1, case_reference=REFERENCE), _case(2)
            with store.engine.begin() as connection:
                rows: list[tuple[str, Mapping[str, Any]]] = [("scores", _old_style(s)) for s in (old, unreferenced)]
                connection.execute(insert(AuditBase.metadata.tables["scores"]), [dict(v) for _, v in rows])
                append_to_chain(connection, rows)
            store.migrate()
            new = _case(3, case_reference="B 3")
            store.save_scores([new])
            assert [store.get_score(s.id) for s in (old, unreferenced, new)] == [old, unreferenced, new]
            assert _raw_score(url, old.id)["case_reference"] == REFERENCE  # not rewritten: it stays as it was
            assert [r.score.id for r in store.queue(case_reference=REFERENCE)[0]] == [old.id]
            assert [r.score.id for r in store.queue(case_reference="B 3")[0]] == [new.id]
            assert store.verify_chain().problems == []
            with pytest.raises(RuntimeError, match="cannot be undone"):  # the new row's hash holds its index
                _migrate_to(store, "0008", down=True)
        finally:
            store.close()

    if backend == "sqlite":
        check(f"sqlite:///{tmp_path / 'used.db'}")
    else:
        with postgres_database(request.getfixturevalue("postgres_admin")) as url:
            check(url)


def test_0010_comes_back_when_no_score_holds_an_index(tmp_path: Path) -> None:
    store = AuditStore(f"sqlite:///{tmp_path / 'audit.db'}", inputs=INPUTS)
    try:
        store.migrate()
        store.save_scores([_case(1)])
        _migrate_to(store, "0008", down=True)
        with store.engine.connect() as connection:
            columns = [row[1] for row in connection.exec_driver_sql("PRAGMA table_info(scores)")]
            assert connection.exec_driver_sql("SELECT count(*) FROM scores").scalar_one() == 1
        assert "case_reference_index" not in columns
        assert "case_reference" in columns
        store.migrate()
        assert store.verify_chain().problems == []  # the row was chained without an index: nothing lost
    finally:
        store.close()
