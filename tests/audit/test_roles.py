"""PostgreSQL: the service runs as a role with INSERT and SELECT only, separate from the role that owns and migrates
the schema; TRUNCATE is refused to both (the grant, and a trigger that binds the owner too)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, make_url, text
from sqlalchemy.exc import DBAPIError

from audit import AuditStore, ReadKind
from audit.tables import APPEND_ONLY
from features import Decision, Role
from tests.audit.stores import INPUTS, POSTGRES_ADMIN_URL, make_score, raw_engine


@dataclass(frozen=True)
class Roles:
    owner_url: str
    service_url: str
    service: str


@pytest.fixture(scope="module")
def roles(postgres_admin: Engine) -> Iterator[Roles]:
    """Two login roles (owner and service) and a database the owner owns, on the local server; dropped after."""
    suffix = secrets.token_hex(4)
    owner, service, database = f"ccr_owner_{suffix}", f"ccr_service_{suffix}", f"ccr_roles_{suffix}"
    with postgres_admin.connect() as connection:
        for role in (owner, service):
            connection.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN')
        connection.exec_driver_sql(f'CREATE DATABASE "{database}" OWNER "{owner}"')
    base = make_url(POSTGRES_ADMIN_URL).set(database=database)
    try:
        yield Roles(
            owner_url=base.set(username=owner).render_as_string(hide_password=False),
            service_url=base.set(username=service).render_as_string(hide_password=False),
            service=service,
        )
    finally:
        with postgres_admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            for role in (service, owner):
                connection.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture(scope="module")
def migrated(roles: Roles) -> Roles:
    owner = AuditStore(roles.owner_url)
    try:
        owner.migrate(service_role=roles.service)
        assert owner.privilege_warning() is not None  # the owner may change rows: not a role to serve with
    finally:
        owner.close()
    return roles


def _refused(url: str, statement: str) -> str:
    engine = raw_engine(url)
    try:
        with pytest.raises(DBAPIError) as refused, engine.begin() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()
    return str(refused.value.orig)


def test_the_service_role_does_its_work_with_insert_and_select(migrated: Roles) -> None:
    store = AuditStore(migrated.service_url, inputs=INPUTS)
    try:
        store.migrate()  # at the head already: reads the version, changes nothing
        assert store.privilege_warning() is None
        score = make_score(team="North")
        store.save_scores([score])
        plaintext, key = store.create_key(name=f"manager-{secrets.token_hex(3)}", role=Role.MANAGER, team="North")
        store.record_decision(score_id=score.id, decided_by=key.name, decided_by_key=key.id, decision=Decision.CLOSE,
                              reason="plan met")  # fmt: skip
        store.record_decision(score_id=score.id, decided_by=key.name, decided_by_key=key.id,
                              decision=Decision.KEEP_OPEN, reason="new concern", supersede=True)  # fmt: skip
        token, _ = store.create_session(key, lifetime_s=60)
        assert store.verify_session(token, idle_s=60) is not None
        store.end_session(token)
        store.record_read(key_id=key.id, what=ReadKind.REPORT, score_id=score.id)
        assert store.revoke_key(key.id, revoked_by="command line")
        reload = store.record_reload(reloaded_by=key.id, model_name="case-closure-risk", model_version="2",
                                     bundle_digest="0" * 64)  # fmt: skip
        assert store.latest_reload() == reload
        assert store.generations().models == reload.generation
        assert store.get_score(score.id) == score
        assert store.verify_key(plaintext) is None
        assert store.verify_chain().problems == []
        assert store.unready_reason() is None
    finally:
        store.close()


@pytest.mark.parametrize("table", APPEND_ONLY)
def test_the_service_role_may_not_change_delete_or_truncate_audited_rows(migrated: Roles, table: str) -> None:
    column = {"audit_chain": "seq", "key_revocations": "key_id", "decision_reviews": "decision_id"}.get(table, "id")
    for statement in (f"UPDATE {table} SET {column} = {column}", f"DELETE FROM {table}", f"TRUNCATE {table}"):
        assert "permission denied" in _refused(migrated.service_url, statement)


def test_the_service_role_may_not_change_the_schema(migrated: Roles) -> None:
    assert "permission denied" in _refused(migrated.service_url, "CREATE TABLE forged (id text)")
    assert "permission denied" in _refused(migrated.service_url, "UPDATE alembic_version SET version_num = '0001'")
    assert "must be owner" in _refused(migrated.service_url, "ALTER TABLE scores DROP COLUMN team")


@pytest.mark.parametrize("table", APPEND_ONLY)
def test_truncate_is_refused_to_the_owner_too(migrated: Roles, table: str) -> None:
    assert "append-only" in _refused(migrated.owner_url, f"TRUNCATE {table} CASCADE")
