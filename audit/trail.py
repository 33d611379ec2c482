"""``closure-risk audit``: verify the hash chain against every audited row, or export its head to anchor elsewhere.

The head (entry number and hash) is written to a file and logged as one line; kept somewhere the store's writers
cannot reach (a daily job that mails it, a ticket, a write-once bucket), it lets a later ``verify`` prove that the
chain up to that entry is the one that was there, even against someone who rebuilt the chain after rewriting rows.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from audit.rows import StoreError
from audit.store import AuditStore

__all__ = ["EXIT_BROKEN", "run_audit_command"]

EXIT_BROKEN = 4  # the chain does not verify
log = logging.getLogger("case_closure_risk.audit")


def run_audit_command(action: str, database_url: str, *, out: Path) -> int:
    """``verify``: print the report (problems name rows by table and id) and exit 4 when the chain does not verify;
    ``head``: write the head to ``out`` (mode 0600) and log it."""
    store = AuditStore(database_url)
    try:
        store.migrate()
        if action == "verify":
            report = store.verify_chain()
            summary = {"verified": report.verified, "entries": report.entries, "head": report.head,
                       "problems": report.problems}  # fmt: skip
            print(json.dumps(summary, sort_keys=True))
            return 0 if report.verified else EXIT_BROKEN
        head = store.chain_head()
        exported = {"entries": head.entries, "head": head.head, "exported_at": datetime.now(UTC).isoformat()}
        text = json.dumps(exported, sort_keys=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text + "\n")
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        log.info("audit chain head %s", text)
        print(text)
        return 0
    except StoreError as exc:
        print(f"closure-risk audit {action}: {exc}", file=sys.stderr)
        return 3
    finally:
        store.close()
