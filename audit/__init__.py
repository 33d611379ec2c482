"""The audit store: every score, decision, API key and page session, kept as personal data (imports only features)."""

from audit.chain import ChainHead, ChainReport, chain_summary
from audit.pseudonym import Pseudonymiser, load_or_create_key
from audit.queue import QueueSort
from audit.rows import (
    ApiKey,
    DecisionExists,
    DecisionRow,
    KeyNameTaken,
    QueueRow,
    ScoreNotFound,
    ScoreRow,
    StoreError,
    UiSession,
)
from audit.store import AuditStore

__all__ = [
    "ApiKey",
    "AuditStore",
    "ChainHead",
    "ChainReport",
    "DecisionExists",
    "DecisionRow",
    "KeyNameTaken",
    "Pseudonymiser",
    "QueueRow",
    "QueueSort",
    "ScoreNotFound",
    "ScoreRow",
    "StoreError",
    "UiSession",
    "chain_summary",
    "load_or_create_key",
]
