"""The registered model as MLflow's "model from code": this file, not a pickle, is what MLflow stores and runs.

``models.registry`` logs this file with ``mlflow.pyfunc.log_model(python_model=<this file>, ...)``; MLflow keeps a
copy beside the bundle's files and, to load the model, runs it (``set_model`` below names the model), so nothing of
this project is ever unpickled, by MLflow or by the service. The service itself never runs this file: it reads the
bundle's JSON and LightGBM text directly (``registry.load_model``) after checking their SHA-256.

``mlflow.pyfunc.load_model``, ``mlflow models serve`` and ``mlflow.pyfunc.spark_udf`` then give, for each row of
features, the calibrated probability, the band, the raw score (log-odds), the base value and every feature's exact
TreeSHAP contribution (``base_value + sum(contributions) = raw_score``), the same numbers as the service's
``models.assess``. This is the one module besides ``registry`` that imports MLflow: MLflow needs ``set_model``
called in the file it logs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.pyfunc.model import PythonModel, PythonModelContext
from pydantic import BaseModel, create_model

from features import FEATURE_NAMES, FEATURES
from models.bundle import RiskModel
from models.registry import BUNDLE_ARTIFACT

__all__ = ["CaseFeatures", "RiskPrediction", "RiskPythonModel"]


# The model's input row, one field per feature of the specification (None where missing).
CaseFeatures = create_model(  # type: ignore[call-overload]
    "CaseFeatures",
    **{spec.name: (str | None if spec.kind == "categorical" else float | None, None) for spec in FEATURES},
)
_CATEGORY_CODES = {spec.name: {c: float(i) for i, c in enumerate(spec.categories)} for spec in FEATURES}


class RiskPrediction(BaseModel):
    probability: float  # calibrated probability of re-referral within 365 days of closure
    band: str
    raw_score: float  # log-odds before calibration
    base_value: float  # the raw score of a case the model knows nothing about (the explanations' starting point)
    contributions: dict[str, float]  # every feature's exact TreeSHAP share of the raw score, in log-odds


class RiskPythonModel(PythonModel):
    """Calibrated probability, band, raw score and exact explanation of each row of features.

    Its ``predict`` is type-hinted (``list[CaseFeatures] -> list[RiskPrediction]``, pydantic models): MLflow 3 derives
    the signature from the hints, and ``mlflow models serve`` hands the request's rows (``{"inputs": [{feature:
    value}, ...]}``) to ``predict`` validated, without building a DataFrame.
    """

    def __init__(self) -> None:
        self.model: RiskModel | None = None

    def load_context(self, context: PythonModelContext) -> None:
        model = RiskModel.load(Path(context.artifacts[BUNDLE_ARTIFACT]))
        model.explainer.explain(np.full((1, len(FEATURES)), np.nan))  # built (and compiled) once, before the first call
        self.model = model

    def predict(self, model_input: list[CaseFeatures], params: dict[str, Any] | None = None  # type: ignore[override]
                ) -> list[RiskPrediction]:  # fmt: skip
        if self.model is None:
            raise RuntimeError("the model bundle was not loaded")
        matrix = np.full((len(model_input), len(FEATURES)), np.nan)
        for i, row in enumerate(model_input):
            for j, spec in enumerate(FEATURES):
                value = getattr(row, spec.name)
                if value is None:
                    continue
                if spec.kind == "categorical":
                    matrix[i, j] = _CATEGORY_CODES[spec.name].get(value, np.nan)
                else:
                    matrix[i, j] = value
        # What models.assess computes: the raw score as LightGBM sums it, with its exact TreeSHAP decomposition.
        raw, contributions = self.model.explainer.explain(matrix)
        probability = self.model.calibrated(raw, matrix)
        bands = self.model.bands.assign(probability).tolist()
        base = float(self.model.explainer.base_value)
        explained = [dict(zip(FEATURE_NAMES, row, strict=True)) for row in contributions.tolist()]
        return [
            RiskPrediction(probability=p, band=b, raw_score=r, base_value=base, contributions=c)
            for p, b, r, c in zip(probability.tolist(), bands, raw.tolist(), explained, strict=True)
        ]


mlflow.models.set_model(RiskPythonModel())
