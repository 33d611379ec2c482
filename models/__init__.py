"""The model bundle: score, calibrate, band and check cases; ``registry`` is the only MLflow code."""

from models.bundle import BAND_NAMES, Bands, Calibrator, Reference, RiskModel
from models.scoring import (
    CaseScore,
    Reason,
    ScoredBatch,
    explain,
    rescore_stored,
    score_batch,
    score_frame,
    score_records,
    stored_features,
)

__all__ = [
    "BAND_NAMES",
    "Bands",
    "Calibrator",
    "CaseScore",
    "Reason",
    "Reference",
    "RiskModel",
    "ScoredBatch",
    "explain",
    "rescore_stored",
    "score_batch",
    "score_frame",
    "score_records",
    "stored_features",
]
