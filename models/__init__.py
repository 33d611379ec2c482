"""The model bundle: score, calibrate, band and check cases; ``registry`` is the only MLflow code."""

from models.bundle import BAND_NAMES, Bands, Calibrator, Reference, RiskModel
from models.drift import Distribution, population_stability
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
from models.whatif import WhatIf, what_could_change, what_could_change_many

__all__ = [
    "BAND_NAMES",
    "Bands",
    "Calibrator",
    "CaseScore",
    "Distribution",
    "Reason",
    "Reference",
    "RiskModel",
    "ScoredBatch",
    "WhatIf",
    "explain",
    "population_stability",
    "rescore_stored",
    "score_batch",
    "score_frame",
    "score_records",
    "stored_features",
    "what_could_change",
    "what_could_change_many",
]
