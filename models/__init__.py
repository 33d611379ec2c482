"""The model bundle: score, calibrate, band, explain and check cases, and ``assess`` one case for every output;
``registry`` is the only MLflow code."""

from models.assess import BATCH_FIELDS, ROW_FIELDS, Assessed, Assessment, FeatureValue, assess
from models.bundle import BAND_NAMES, MODEL_NAME, Bands, Calibrator, ModelMetadata, Reference, RiskModel
from models.drift import Distribution, population_stability
from models.scoring import (
    CaseScore,
    Reason,
    explain,
    rescore_stored,
    score_frame,
    score_records,
    stored_features,
)
from models.whatif import WhatIf, what_could_change, what_could_change_many

__all__ = [
    "BAND_NAMES",
    "BATCH_FIELDS",
    "MODEL_NAME",
    "ROW_FIELDS",
    "Assessed",
    "Assessment",
    "Bands",
    "Calibrator",
    "CaseScore",
    "Distribution",
    "FeatureValue",
    "ModelMetadata",
    "Reason",
    "Reference",
    "RiskModel",
    "WhatIf",
    "assess",
    "explain",
    "population_stability",
    "rescore_stored",
    "score_frame",
    "score_records",
    "stored_features",
    "what_could_change",
    "what_could_change_many",
]
