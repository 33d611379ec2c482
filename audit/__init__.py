"""The audit store: every score, decision, API key and page session, kept as personal data (imports only features)."""

from audit.pseudonym import Pseudonymiser, load_or_create_key
from audit.rows import ApiKey, DecisionExists, DecisionRow, QueueRow, ScoreNotFound, ScoreRow, StoreError, UiSession
from audit.store import AuditStore

__all__ = [
    "ApiKey",
    "AuditStore",
    "DecisionExists",
    "DecisionRow",
    "Pseudonymiser",
    "QueueRow",
    "ScoreNotFound",
    "ScoreRow",
    "StoreError",
    "UiSession",
    "load_or_create_key",
]
