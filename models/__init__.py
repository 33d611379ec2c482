"""The model bundle: score, calibrate, band, explain and check cases, and ``assess`` one case for every output;
``registry`` is the only MLflow code."""

from models.assess import BATCH_FIELDS, ROW_FIELDS, Assessed, Assessment, ReasonRow, assess
from models.bundle import (
    BAND_NAMES,
    MODEL_NAME,
    Bands,
    Calibrator,
    ModelMetadata,
    Reference,
    RiskModel,
    neglect_population,
)
from models.drift import Distribution, population_stability
from models.scoring import explain, rescore_stored, stored_features
from models.treeshap import compile_explainer
from models.whatif import OpenCase, WhatIf, what_ifs_of_cases

__all__ = [
    "BAND_NAMES",
    "BATCH_FIELDS",
    "MODEL_NAME",
    "ROW_FIELDS",
    "Assessed",
    "Assessment",
    "Bands",
    "Calibrator",
    "Distribution",
    "ModelMetadata",
    "OpenCase",
    "ReasonRow",
    "Reference",
    "RiskModel",
    "WhatIf",
    "assess",
    "compile_explainer",
    "explain",
    "neglect_population",
    "population_stability",
    "rescore_stored",
    "stored_features",
    "what_ifs_of_cases",
]
