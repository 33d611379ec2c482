"""The model bundle: everything needed to score, band and check a case, saved as plain files (no pickle)."""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from features import FEATURE_NAMES, FEATURES, Band, spec_as_dicts
from features.numbers import approximately
from models.drift import Distribution
from models.treeshap import TreeShap

__all__ = [
    "BAND_NAMES",
    "BUNDLE_FILES",
    "MODEL_NAME",
    "Bands",
    "BundleDigestError",
    "Calibrator",
    "ModelMetadata",
    "Reference",
    "RiskModel",
    "bundle_digests",
    "neglect_population",
]

BAND_NAMES = tuple(b.value for b in Band)
MODEL_NAME = "case-closure-risk"
FloatArray = np.ndarray[Any, np.dtype[np.float64]]
FeatureValue = float | str | None  # a model input value as stored and shown: None where missing


BUNDLE_FILES = ("booster.txt", "bundle.json")  # every file of a saved bundle: all of them are read, all are digested


class BundleDigestError(ValueError):
    """A bundle file's SHA-256 differs from the one recorded for it (or none was recorded): it was not loaded."""


def bundle_digests(folder: Path) -> dict[str, str]:
    """The SHA-256 (hex) of each file of a saved bundle, by file name."""
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in BUNDLE_FILES}


def _sigmoid(x: FloatArray) -> FloatArray:
    out: FloatArray = 1.0 / (1.0 + np.exp(-x))
    return out


def _outside(label: str, value: float, low: float, high: float) -> str:
    """An unusual value in a manager's numbers: rounded, and which side of the usual range it lies."""
    side = "above" if value > high else "below"
    return (
        f"{label}: {approximately(value)}, {side} the range of 99% of closed cases "
        f"({approximately(low)} to {approximately(high)})"
    )


@dataclass(frozen=True)
class Calibrator:
    """Maps the booster's raw score (log-odds) to a calibrated probability.

    ``platt``: p = sigmoid(a * raw + b). ``isotonic``: a monotone step function of the raw score, stored as its
    breakpoints and interpolated linearly between them. ``neglect`` (population-aware calibration, None when pooled):
    ``(slope, intercept)`` of a logistic recalibration of that pooled probability for the cases in the neglect
    population (``neglect_population``): logit p' = intercept + slope * logit(p) for them, p for everyone else.
    """

    method: Literal["platt", "isotonic"]
    a: float = 1.0
    b: float = 0.0
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    neglect: tuple[float, float] | None = None

    def apply(self, raw: FloatArray, in_neglect: np.ndarray[Any, np.dtype[np.bool_]] | None = None) -> FloatArray:
        """Calibrated probabilities; ``in_neglect`` (each case in the neglect population, from its features) is
        needed for a population-aware calibrator to treat those cases as validated: without it, the pooled curve."""
        if self.method == "platt":
            pooled = _sigmoid(self.a * raw + self.b)
        else:
            pooled = np.clip(np.interp(raw, np.asarray(self.x), np.asarray(self.y)), 1e-6, 1 - 1e-6)
        if self.neglect is None or in_neglect is None:
            return pooled
        slope, intercept = self.neglect
        shifted = _sigmoid(intercept + slope * np.log(pooled / (1 - pooled)))
        out: FloatArray = np.where(in_neglect, np.clip(shifted, 1e-6, 1 - 1e-6), pooled)
        return out

    def to_dict(self) -> dict[str, Any]:
        out = {"method": self.method, "a": self.a, "b": self.b, "x": list(self.x), "y": list(self.y)}
        return out if self.neglect is None else out | {"neglect": list(self.neglect)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        neglect = data.get("neglect")
        return cls(data["method"], data["a"], data["b"], tuple(data["x"]), tuple(data["y"]),
                   (float(neglect[0]), float(neglect[1])) if neglect is not None else None)  # fmt: skip


def _code(feature: str, value: str) -> float:
    return float(next(f for f in FEATURES if f.name == feature).categories.index(value))


_PLAN, _NEED, _FACTOR = (FEATURE_NAMES.index(n) for n in ("protection_plan_category", "primary_need", "factor_neglect"))
_NEG, _N1 = _code("protection_plan_category", "NEG"), _code("primary_need", "N1")


def neglect_population(matrix: FloatArray) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Which rows of a model matrix (``RiskModel.model_matrix``) the population-aware calibrator treats as the
    neglect population, from the features alone (so training and serving agree on every row): the latest child
    protection plan is for neglect, or the primary need is abuse or neglect (N1) and the latest assessment found
    neglect. DESIGN.md's population (``in_scope``) also counts an earlier plan or assessment of the episode, which
    the features do not record; the two agree on most closures (measured in benchmarks/README.md)."""
    plan = matrix[:, _PLAN] == _NEG
    need = (matrix[:, _NEED] == _N1) & (matrix[:, _FACTOR] == 1.0)
    out: np.ndarray[Any, np.dtype[np.bool_]] = plan | need
    return out


@dataclass(frozen=True)
class Bands:
    """Low / medium / high risk: probability thresholds (chosen on validation) and what each band has meant."""

    low_below: float  # probability < low_below: low
    high_from: float  # probability >= high_from: high
    observed_rate: dict[str, float] = field(default_factory=dict)  # re-referral rate of past closures in the band
    cases: dict[str, int] = field(default_factory=dict)
    observed_on: str = ""  # which closures the rates come from

    def assign(self, p: FloatArray) -> np.ndarray[Any, np.dtype[np.str_]]:
        return np.where(
            p >= self.high_from, Band.HIGH.value, np.where(p < self.low_below, Band.LOW.value, Band.MEDIUM.value)
        )

    def to_dict(self) -> dict[str, Any]:
        return {"low_below": self.low_below, "high_from": self.high_from, "observed_rate": self.observed_rate,
                "cases": self.cases, "observed_on": self.observed_on}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Bands:
        return cls(data["low_below"], data["high_from"], dict(data["observed_rate"]), dict(data["cases"]),
                   data["observed_on"])  # fmt: skip


@dataclass(frozen=True)
class Reference:
    """Where the closed cases the model learned from lay: a case outside this is out of distribution."""

    numeric: dict[str, tuple[float, float]]  # feature -> (0.5th, 99.5th percentile) of training closures
    rare_values: dict[str, list[str]]  # feature -> values seen in under 0.5% of training closures (or never)
    rows: int
    # feature -> binned distribution among training closures, for drift; empty in bundles built before it existed
    distributions: dict[str, Distribution] = field(default_factory=dict)

    RARE = 0.005

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Reference:
        numeric: dict[str, tuple[float, float]] = {}
        rare: dict[str, list[str]] = {}
        for spec in FEATURES:
            column = frame[spec.name]
            if spec.kind == "numeric":
                values = column.dropna().to_numpy(dtype=float)
                if len(values):
                    low, high = np.quantile(values, [cls.RARE, 1 - cls.RARE])
                    numeric[spec.name] = (float(low), float(high))
            else:
                shares = column.astype("object").value_counts(normalize=True, dropna=True)
                options = spec.categories if spec.kind == "categorical" else (0.0, 1.0)
                rare[spec.name] = [str(v) for v in options if float(shares.get(v, 0.0)) < cls.RARE]
        distributions = {spec.name: Distribution.fit(spec, frame[spec.name]) for spec in FEATURES}
        return cls(numeric=numeric, rare_values=rare, rows=len(frame), distributions=distributions)

    def reasons(self, row: pd.Series) -> list[str]:
        """Why a case's features lie outside what the model learned from (empty when they do not)."""
        out: list[str] = []
        for spec in FEATURES:
            value = row[spec.name]
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            if spec.kind == "numeric" and spec.name in self.numeric:
                low, high = self.numeric[spec.name]
                if not low <= float(value) <= high:
                    out.append(_outside(spec.label, float(value), low, high))
            elif str(value) in self.rare_values.get(spec.name, ()):
                shown = "yes" if spec.kind == "binary" and float(value) == 1.0 else str(value)
                out.append(f"{spec.label}: '{shown}' was almost never seen at closure")
        return out

    def reasons_matrix(self, matrix: FloatArray) -> list[list[str]]:
        """``reasons`` of each row of a model matrix (``RiskModel.model_matrix``), the same messages in the same
        order, found for the whole batch at once."""
        low, high, rare = self._bounds
        with np.errstate(invalid="ignore"):
            outside = (matrix < low) | (matrix > high)
        coded = np.where(np.isnan(matrix) | (matrix < 0) | (matrix >= rare.shape[1]), 0, matrix).astype(np.intp)
        flagged = outside | (rare[np.arange(matrix.shape[1]), coded] & ~np.isnan(matrix))
        out: list[list[str]] = [[] for _ in range(len(matrix))]
        for i, j in zip(*np.nonzero(flagged), strict=True):
            spec, value = FEATURES[j], float(matrix[i, j])
            if spec.kind == "numeric":
                lo, hi = self.numeric[spec.name]
                out[i].append(_outside(spec.label, value, lo, hi))
            else:
                shown = "yes" if spec.kind == "binary" and value == 1.0 else str(value)
                if spec.kind == "categorical":
                    shown = spec.categories[int(value)]
                out[i].append(f"{spec.label}: '{shown}' was almost never seen at closure")
        return out

    @functools.cached_property
    def _bounds(self) -> tuple[FloatArray, FloatArray, np.ndarray[Any, np.dtype[np.bool_]]]:
        """Per feature: the numeric range (infinite where none), and which codes are rare (categorical, binary)."""
        low = np.full(len(FEATURES), -np.inf)
        high = np.full(len(FEATURES), np.inf)
        rare = np.zeros((len(FEATURES), max(len(f.categories) for f in FEATURES) + 2), dtype=bool)
        for j, spec in enumerate(FEATURES):
            if spec.kind == "numeric" and spec.name in self.numeric:
                low[j], high[j] = self.numeric[spec.name]
            elif spec.kind == "categorical":
                for code, category in enumerate(spec.categories):
                    rare[j, code] = category in self.rare_values.get(spec.name, ())
            elif spec.kind == "binary":
                for code in (0, 1):
                    rare[j, code] = str(float(code)) in self.rare_values.get(spec.name, ())
        return low, high, rare

    def to_dict(self) -> dict[str, Any]:
        return {"numeric": {k: list(v) for k, v in self.numeric.items()}, "rare_values": self.rare_values,
                "rows": self.rows,
                "distributions": {k: d.to_dict() for k, d in self.distributions.items()}}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reference:
        numeric = {k: (float(v[0]), float(v[1])) for k, v in data["numeric"].items()}
        distributions = {k: Distribution.from_dict(d) for k, d in data.get("distributions", {}).items()}
        return cls(numeric=numeric, rare_values={k: list(v) for k, v in data["rare_values"].items()}, rows=data["rows"],
                   distributions=distributions)  # fmt: skip


class ModelMetadata(BaseModel):
    """What a bundle says about itself: written by training, filled in by the registry on load, read by serving,
    the report, monitoring and the benchmarks. Saved in ``bundle.json`` under the same keys."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    name: str = MODEL_NAME
    version: str = Field(default="unregistered", description="registry version, or local:<folder>")
    run_id: str | None = Field(default=None, description="the MLflow run that trained it")
    split: dict[str, Any] = Field(default_factory=dict, description="the years and rows of the split by time")
    params: dict[str, Any] = Field(default_factory=dict, description="LightGBM parameters chosen")
    trees: int | None = None
    data_end: str | None = Field(default=None, description="last census reference date of the training data")
    test_metrics: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="each test metric's value with its bootstrap interval (value, low, high)"
    )
    test_cases: int | None = None
    test_year: int | None = None
    backtest_metrics: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="the rolling-origin backtest's figures, every tested year pooled (value, low, high): the headline",
    )
    backtest_neglect_metrics: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="the same on the neglect population, where it had enough cases"
    )
    backtest_cases: int | None = None
    backtest_years: list[int] = Field(default_factory=list, description="the collection years the backtest tested")
    fairness: list[dict[str, Any]] = Field(default_factory=list, description="the fairness audit's table, by group")
    trained_on_synthetic: bool | None = Field(
        default=None, description="learned from a simulated authority (None: not recorded)"
    )
    neglect_bands: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="each band's test closures and re-referral rate in the neglect population"
    )
    neglect_metrics: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="test metrics of the neglect population (value, low, high), where evaluated"
    )


@dataclass
class RiskModel:
    """The bundle: score, band and check cases exactly as at training.

    A bundle is a LightGBM booster (its raw score is the log-odds that SHAP explains), a calibrator that turns the raw
    score into a probability, the risk bands with the re-referral rate observed in each, reference distributions of the
    closed cases it learned from (for out-of-distribution checks), the feature specification it was trained on and
    metadata (data window, metrics, version). It saves to a folder of plain files (the booster's own text format and
    JSON: no pickle), and loading it back gives identical scores.
    """

    booster: lgb.Booster
    calibrator: Calibrator
    bands: Bands
    reference: Reference
    metadata: ModelMetadata = field(default_factory=ModelMetadata)
    feature_spec: list[dict[str, object]] = field(default_factory=spec_as_dicts)

    def __post_init__(self) -> None:
        trained_on = [str(f["name"]) for f in self.feature_spec]
        if trained_on != list(FEATURE_NAMES):
            raise ValueError("the bundle's features differ from this code's feature specification; retrain it")

    @functools.cached_property
    def explainer(self) -> TreeShap:
        """Exact TreeSHAP of the booster, its tables built once (about a second; serving builds it at load)."""
        return TreeShap(self.booster)

    @property
    def version(self) -> str:
        return self.metadata.version

    @property
    def name(self) -> str:
        return self.metadata.name

    @staticmethod
    def model_input(frame: pd.DataFrame) -> pd.DataFrame:
        """The feature columns in training order, with the specification's dtypes."""
        out = frame.loc[:, list(FEATURE_NAMES)].copy()
        for spec in FEATURES:
            if spec.kind == "categorical":
                out[spec.name] = pd.Categorical(out[spec.name].astype("object"), categories=list(spec.categories))
            else:
                out[spec.name] = pd.to_numeric(out[spec.name], errors="coerce").astype(float)
        return out

    @staticmethod
    def model_matrix(frame: pd.DataFrame) -> FloatArray:
        """The features as the booster reads them: floats, categoricals as their codes in the specification's
        category order (the codes it was trained on), NaN where missing. Much faster to predict on than a frame."""
        matrix = np.empty((len(frame), len(FEATURES)), dtype=float)
        for j, spec in enumerate(FEATURES):
            column = frame[spec.name]
            if spec.kind != "categorical":
                matrix[:, j] = column.to_numpy(dtype=float, na_value=np.nan)
                continue
            if isinstance(column.dtype, pd.CategoricalDtype) and tuple(column.cat.categories) == spec.categories:
                codes = column.cat.codes.to_numpy(dtype=float)
            else:
                lookup = {c: float(i) for i, c in enumerate(spec.categories)}
                codes = np.array([lookup.get(v, -1.0) if isinstance(v, str) else -1.0 for v in column.astype("object")])
            matrix[:, j] = np.where(codes < 0, np.nan, codes)
        return matrix

    def raw_score(self, frame: pd.DataFrame) -> FloatArray:
        """The booster's log-odds (before calibration): what the explanations add up to."""
        return self.raw_score_matrix(self.model_matrix(frame))

    def raw_score_matrix(self, matrix: FloatArray) -> FloatArray:
        """``raw_score`` of rows already in the booster's float layout (``model_matrix``, ``feature_rows``)."""
        # One thread per call: a server scores many requests at once, and nested thread pools only thrash.
        raw = self.booster.predict(matrix, raw_score=True, num_threads=1)
        return np.asarray(raw, dtype=float)

    def predict_proba(self, frame: pd.DataFrame) -> FloatArray:
        """Calibrated probabilities of re-referral within 365 days of closure."""
        matrix = self.model_matrix(frame)
        return self.calibrated(self.raw_score_matrix(matrix), matrix)

    def calibrated(self, raw: FloatArray, matrix: FloatArray) -> FloatArray:
        """The probabilities of raw scores of the rows of ``matrix``: every scoring path calibrates through here, so
        a population-aware calibrator sees each case's population as at training."""
        return self.calibrator.apply(raw, neglect_population(matrix) if self.calibrator.neglect else None)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "booster.txt").write_text(self.booster.model_to_string(), encoding="utf-8")
        bundle = {
            "format": 1,
            "calibrator": self.calibrator.to_dict(),
            "bands": self.bands.to_dict(),
            "reference": self.reference.to_dict(),
            "metadata": self.metadata.model_dump(mode="json", exclude_defaults=True),
            "feature_spec": self.feature_spec,
        }
        (folder / "bundle.json").write_text(json.dumps(bundle, indent=2, sort_keys=True), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path, *, digests: dict[str, str] | None = None) -> RiskModel:
        """The bundle saved in ``folder``. With ``digests`` (file name -> SHA-256, ``bundle_digests``), each file is
        checked against its digest and the bundle is built from the very bytes checked; a missing or differing
        digest raises ``BundleDigestError`` and nothing is loaded."""
        data = {name: (folder / name).read_bytes() for name in BUNDLE_FILES}
        if digests is not None:
            for name, content in data.items():
                expected = digests.get(name)
                if expected is None:
                    raise BundleDigestError(f"no SHA-256 was recorded for the bundle's {name}")
                if hashlib.sha256(content).hexdigest() != expected:
                    raise BundleDigestError(f"the bundle's {name} differs from the file recorded at training (SHA-256)")
        bundle = json.loads(data["bundle.json"].decode("utf-8"))
        if bundle.get("format") != 1:
            raise ValueError(f"{folder}: unknown bundle format {bundle.get('format')!r}")
        booster = lgb.Booster(model_str=data["booster.txt"].decode("utf-8"))
        return cls(
            booster=booster,
            calibrator=Calibrator.from_dict(bundle["calibrator"]),
            bands=Bands.from_dict(bundle["bands"]),
            reference=Reference.from_dict(bundle["reference"]),
            metadata=ModelMetadata.model_validate(bundle["metadata"]),
            feature_spec=bundle["feature_spec"],
        )
