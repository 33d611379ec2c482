"""The product's own vocabulary, typed once: risk bands, a manager's decisions and agreement with the estimate, and
the API keys' roles.

They live here, in the lowest room, because every other room speaks them: the model assigns bands, the audit store
generates its CHECK constraints from them, the API's schemas, the pages' filters, the command line's choices and
monitoring all use these same members.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Agreement", "Band", "Decision", "Role"]


class Band(StrEnum):
    """Risk band of a calibrated probability (thresholds are the bundle's, chosen on validation)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Decision(StrEnum):
    """What the manager decided on a scored case."""

    CLOSE = "close"
    KEEP_OPEN = "keep_open"
    STEP_DOWN_EARLY_HELP = "step_down_early_help"

    @property
    def label(self) -> str:
        """The decision in a manager's words."""
        return _DECISION_LABELS[self]


_DECISION_LABELS = {
    Decision.CLOSE: "Close the case",
    Decision.KEEP_OPEN: "Keep the case open",
    Decision.STEP_DOWN_EARLY_HELP: "Step down to early help",
}


class Agreement(StrEnum):
    """Whether the manager, having read the report, thinks the risk is about what the model estimates, or higher or
    lower: a record that the estimate was weighed rather than deferred to."""

    AGREE = "agree"
    HIGHER = "higher"
    LOWER = "lower"

    @property
    def label(self) -> str:
        return _AGREEMENT_LABELS[self]


_AGREEMENT_LABELS = {
    Agreement.AGREE: "About right",
    Agreement.HIGHER: "I judge the risk higher",
    Agreement.LOWER: "I judge the risk lower",
}


class Role(StrEnum):
    """What an API key may do: a case-management system scores, a manager reads and decides, an admin manages."""

    SYSTEM = "system"
    MANAGER = "manager"
    ADMIN = "admin"
