"""The audit store: every score, decision, API key and page session, kept as personal data (imports only features)."""

from audit.access import (
    ALL_TEAMS,
    TeamNotAllowed,
    check_team,
    is_lead,
    may_read,
    scoring_team,
    serves_all_teams,
    visible_teams,
)
from audit.chain import ChainHead, ChainReport, chain_summary
from audit.crypto import InputsCipher, InputsUnavailable, load_inputs_cipher, rotate_inputs_key
from audit.files import create_private_sqlite, open_files, sqlite_files
from audit.pseudonym import Pseudonymiser, load_or_create_key
from audit.queue import QueueSort
from audit.reloads import Generations, ModelReload
from audit.rows import (
    Annotation,
    ApiKey,
    DecisionExists,
    DecisionReview,
    DecisionRow,
    KeyNameTaken,
    QueueRow,
    ReadKind,
    ReadRow,
    ScoreNotFound,
    ScoreRow,
    StoreError,
    UiSession,
)
from audit.store import AuditStore

__all__ = [
    "ALL_TEAMS",
    "Annotation",
    "ApiKey",
    "AuditStore",
    "ChainHead",
    "ChainReport",
    "DecisionExists",
    "DecisionReview",
    "DecisionRow",
    "Generations",
    "InputsCipher",
    "InputsUnavailable",
    "KeyNameTaken",
    "ModelReload",
    "Pseudonymiser",
    "QueueRow",
    "QueueSort",
    "ReadKind",
    "ReadRow",
    "ScoreNotFound",
    "ScoreRow",
    "StoreError",
    "TeamNotAllowed",
    "UiSession",
    "chain_summary",
    "check_team",
    "create_private_sqlite",
    "is_lead",
    "load_inputs_cipher",
    "load_or_create_key",
    "may_read",
    "open_files",
    "rotate_inputs_key",
    "scoring_team",
    "serves_all_teams",
    "sqlite_files",
    "visible_teams",
]
