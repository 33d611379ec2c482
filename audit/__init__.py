"""The audit store: every score, decision, API key and page session, kept as personal data (imports only features)."""

from audit.chain import ChainHead, ChainReport, chain_summary
from audit.pseudonym import Pseudonymiser, load_or_create_key
from audit.rows import (
    Annotation,
    ApiKey,
    DecisionExists,
    DecisionReview,
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
    "Annotation",
    "ApiKey",
    "AuditStore",
    "ChainHead",
    "ChainReport",
    "DecisionExists",
    "DecisionReview",
    "DecisionRow",
    "KeyNameTaken",
    "Pseudonymiser",
    "QueueRow",
    "ScoreNotFound",
    "ScoreRow",
    "StoreError",
    "UiSession",
    "chain_summary",
    "load_or_create_key",
]
