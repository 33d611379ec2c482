"""Synthetic cohort, labels, splits, fit, calibration, evaluation, fairness and model card."""
