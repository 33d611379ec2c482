"""What happened after a closure and how well it was predicted: labels, evaluation and the fairness audit."""

from outcomes.labels import (
    ELIGIBLE_REASONS,
    FOLLOW_UP_DAYS,
    ClosureOutcome,
    LabelledClosure,
    LabelSummary,
    closure_outcome,
    label_closures,
)

__all__ = [
    "ELIGIBLE_REASONS",
    "FOLLOW_UP_DAYS",
    "ClosureOutcome",
    "LabelSummary",
    "LabelledClosure",
    "closure_outcome",
    "label_closures",
]
