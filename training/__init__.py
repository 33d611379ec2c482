"""Synthetic cohort, labels, splits, fit, calibration, evaluation, fairness and model card."""

from training.frame import TrainingFrame, build_training_frame, load_training_frame
from training.labels import ELIGIBLE_REASONS, FOLLOW_UP_DAYS, LabelledClosure, LabelSummary, label_closures

__all__ = [
    "ELIGIBLE_REASONS",
    "FOLLOW_UP_DAYS",
    "LabelSummary",
    "LabelledClosure",
    "TrainingFrame",
    "build_training_frame",
    "label_closures",
    "load_training_frame",
]
