"""PostgreSQL roles: the service runs as a role that may only INSERT and SELECT, separate from the role that owns
the schema and migrates it.

``closure-risk`` commands migrate with ``CCR_OWNER_DATABASE_URL`` (the owner) and then call
:func:`grant_service_role` for the user of ``CCR_DATABASE_URL``: every audit table is granted INSERT and SELECT
only (UPDATE, DELETE and TRUNCATE revoked), the working tables of ``WORKING`` (page sessions, which end) also
UPDATE and DELETE, and Alembic's version table SELECT only, so the service can check the schema is current but
never change it. The grants are made again at every migration, so tables added later get them too. The triggers
refuse UPDATE, DELETE and TRUNCATE on the audited tables even to the owner; these grants make the service unable to
try.
"""

from __future__ import annotations

import re

from sqlalchemy import text
from sqlalchemy.engine import Connection

__all__ = ["WORKING", "grant_service_role", "service_privileges"]

WORKING = ("ui_sessions",)  # working state, not evidence: rows are changed (last seen) and deleted (signed out)
_ROLE = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")


def _quoted(role: str) -> str:
    if not _ROLE.fullmatch(role):
        raise ValueError("a PostgreSQL role name here is letters, digits, '_' and '$', beginning with a letter")
    return f'"{role}"'


def grant_service_role(connection: Connection, role: str) -> None:
    """Grant ``role`` what the service needs and nothing more, in the owner's migration transaction."""
    who = _quoted(role)
    tables = [str(name) for name in connection.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = "
                                                            "current_schema()")).scalars()]  # fmt: skip
    connection.execute(text(f"GRANT USAGE ON SCHEMA public TO {who}"))
    connection.execute(text(f"REVOKE CREATE ON SCHEMA public FROM {who}"))
    for table in tables:
        connection.execute(text(f'REVOKE ALL ON TABLE "{table}" FROM {who}'))
        if table == "alembic_version":
            granted = "SELECT"
        elif table in WORKING:
            granted = "SELECT, INSERT, UPDATE, DELETE"
        else:
            granted = "SELECT, INSERT"
        connection.execute(text(f'GRANT {granted} ON TABLE "{table}" TO {who}'))


def service_privileges(connection: Connection, table: str) -> set[str]:
    """The privileges the connected role holds on ``table`` of these: SELECT, INSERT, UPDATE, DELETE, TRUNCATE."""
    held = set()
    for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"):
        query = text("SELECT has_table_privilege(current_user, :table, :privilege)")
        if connection.execute(query, {"table": table, "privilege": privilege}).scalar_one():
            held.add(privilege)
    return held
