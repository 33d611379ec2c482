"""Need-to-know in the store, on SQLite and PostgreSQL: keys and scores carry a team, the queue keeps a manager to
the key's team, every read is recorded in the chain, and a page session ends when it sits idle."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from audit import (
    ALL_TEAMS,
    AuditStore,
    ReadKind,
    TeamNotAllowed,
    check_team,
    may_read,
    scoring_team,
    visible_teams,
)
from features import Role
from tests.audit.stores import make_score, raw_engine
from tests.audit.test_chain import triggers_off


def test_keys_carry_their_team(store: AuditStore) -> None:
    plaintext, key = store.create_key(name="north manager", role=Role.MANAGER, team="North")
    lead = store.create_key(name="lead", role=Role.MANAGER)[1]
    assert (key.team, lead.team) == ("North", ALL_TEAMS)
    assert store.verify_key(plaintext) == key
    assert [k.team for k in store.list_keys()] == ["North", ALL_TEAMS]
    with pytest.raises(ValueError, match="a team is"):
        store.create_key(name="bad", role=Role.MANAGER, team="North;DROP")
    assert store.verify_chain().problems == []


def test_team_rules_for_scoring_and_reading(store: AuditStore) -> None:
    north = store.create_key(name="north system", role=Role.SYSTEM, team="North")[1]
    lead = store.create_key(name="lead system", role=Role.SYSTEM)[1]
    assert scoring_team(north, None) == scoring_team(north, "North") == "North"
    with pytest.raises(TeamNotAllowed):
        scoring_team(north, "South")
    assert scoring_team(lead, "South") == "South"
    for asked in (None, " ", ALL_TEAMS, "../x"):
        with pytest.raises(ValueError, match="team"):
            scoring_team(lead, asked)
    legacy = dataclasses.replace(north, team=None)  # a key made before teams existed
    assert visible_teams(legacy) is None
    assert visible_teams(lead) is None
    assert visible_teams(north) == frozenset({"North"})
    assert may_read(north, make_score(team="North"))
    assert not may_read(north, make_score(team="South"))
    assert not may_read(north, make_score(team=None))
    assert may_read(lead, make_score(team=None))
    assert check_team("  Child Protection 2 ") == "Child Protection 2"


def test_queue_shows_a_manager_the_key_teams_cases_only(store: AuditStore) -> None:
    north, south, untagged = make_score(team="North"), make_score(team="South"), make_score(team=None)
    for row in (north, south, untagged):
        store.save_scores([dataclasses.replace(row, case_id=row.id)])
    everyone, total = store.queue()
    assert total == 3
    assert {r.score.id for r in everyone} == {north.id, south.id, untagged.id}
    rows, total = store.queue(teams=frozenset({"North"}))
    assert (total, [r.score.id for r in rows]) == (1, [north.id])
    # A case scored later for another team is that team's now: it leaves the first team's queue.
    moved = dataclasses.replace(make_score(team="South"), case_id=north.id, as_of=north.as_of + timedelta(days=1))
    store.save_scores([moved])
    assert store.queue(teams=frozenset({"North"})) == ([], 0)
    assert {r.score.id for r in store.queue(teams=frozenset({"South"}))[0]} == {south.id, moved.id}


def test_reads_are_recorded_chained_and_listed(store: AuditStore, store_url: str) -> None:
    score = make_score(team="North")
    store.save_scores([score])
    key = store.create_key(name="north manager", role=Role.MANAGER, team="North")[1]
    other = store.create_key(name="lead", role=Role.MANAGER)[1]
    first = store.record_read(key_id=key.id, what=ReadKind.REPORT, score_id=score.id)
    store.record_read(key_id=key.id, what=ReadKind.QUEUE)
    last = store.record_read(key_id=other.id, what=ReadKind.SCORE, score_id=score.id)
    assert [r.id for r in store.reads(score_id=score.id)] == [last.id, first.id]
    assert [r.what for r in store.reads(key_id=key.id)] == [ReadKind.QUEUE, ReadKind.REPORT]
    assert store.reads(since=datetime.now(UTC) + timedelta(minutes=1)) == []
    assert store.verify_chain().problems == []
    with triggers_off(store_url) as connection:
        connection.execute(text("DELETE FROM score_reads WHERE id = :id"), {"id": first.id})
    assert any(f"score_reads row {first.id}" in problem and "deleted" in problem
               for problem in store.verify_chain().problems)  # fmt: skip


def test_reads_refuse_update_and_delete(store: AuditStore, store_url: str) -> None:
    key = store.create_key(name="m", role=Role.MANAGER)[1]
    read = store.record_read(key_id=key.id, what=ReadKind.QUEUE)
    engine = raw_engine(store_url)
    try:
        for statement in ("UPDATE score_reads SET key_id = 'x'", "DELETE FROM score_reads"):
            with engine.begin() as connection, pytest.raises(Exception, match="append-only"):
                connection.execute(text(statement))
    finally:
        engine.dispose()
    assert store.reads() == [read]


def test_an_idle_session_ends_and_a_used_one_stays(store: AuditStore, store_url: str) -> None:
    key = store.create_key(name="m", role=Role.MANAGER, team="North")[1]
    token, session = store.create_session(key, lifetime_s=8 * 3600)
    assert session.team == "North"
    assert store.verify_session(token, idle_s=1800) is not None
    engine = raw_engine(store_url)
    try:
        with engine.begin() as connection:  # the session was last used 20 minutes ago
            connection.execute(text("UPDATE ui_sessions SET last_seen_at = :at"),
                               {"at": (datetime.now(UTC) - timedelta(minutes=20)).replace(tzinfo=None)})  # fmt: skip
        assert store.verify_session(token, idle_s=1800) is not None  # and used now: its last use moves on ...
        assert store.verify_session(token, idle_s=900) is not None  # ... so 15 minutes' idling is not reached
        with engine.begin() as connection:  # now idle for 31 minutes
            connection.execute(text("UPDATE ui_sessions SET last_seen_at = :at"),
                               {"at": (datetime.now(UTC) - timedelta(minutes=31)).replace(tzinfo=None)})  # fmt: skip
        assert store.verify_session(token, idle_s=1800) is None
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM ui_sessions")).scalar_one() == 0  # ended
    finally:
        engine.dispose()


def test_command_line_makes_team_keys_and_lists_reads(
    store: AuditStore,
    store_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from closure_risk import main
    from serving.settings import get_settings

    monkeypatch.setenv("CCR_DATABASE_URL", store_url)
    monkeypatch.setenv("CCR_PSEUDONYM_KEY_FILE", str(tmp_path / "var" / "pseudonym.key"))
    get_settings.cache_clear()
    try:
        assert main(["keys", "create", "--role", "manager", "--name", "north manager", "--team", "North"]) == 0
        made = json.loads(capsys.readouterr().out)
        assert (made["team"], store.verify_key(made["key"]).team) == ("North", "North")  # type: ignore[union-attr]
        assert main(["keys", "create", "--role", "manager", "--name", "bad", "--team", "North/South"]) == 2
        read = store.record_read(key_id=made["id"], what=ReadKind.QUEUE)
        capsys.readouterr()
        assert main(["audit", "reads", "--key", made["id"]]) == 0
        listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [(r["id"], r["what"], r["key_id"]) for r in listed] == [(read.id, "queue", made["id"])]
        assert main(["audit", "migrate"]) == 0
        assert main(["keys", "rotate-inputs"]) == 0
        rotated = json.loads(capsys.readouterr().out)
        assert (tmp_path / "var" / "inputs.key.retired" / f"{rotated['retired']}.key").exists()
    finally:
        get_settings.cache_clear()
