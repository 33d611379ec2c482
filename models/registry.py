"""The only module that touches MLflow: the pyfunc wrapper, logging, the model registry and its aliases."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.pyfunc.model import PythonModel, PythonModelContext
from pydantic import BaseModel, ValidationError, create_model

from features import FEATURES
from models.bundle import MODEL_NAME, RiskModel
from models.performance import MonitoringReport, MonitoringSummary
from models.scoring import stored_features

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "MODEL_NAME",
    "MONITORING_REPORT",
    "CaseFeatures",
    "RegisteredVersion",
    "RiskPrediction",
    "RiskPythonModel",
    "champion_version",
    "configure_tracking",
    "latest_monitoring",
    "load_model",
    "load_model_uri",
    "log_and_register",
    "log_artifacts",
    "log_metrics",
    "log_monitoring",
    "log_params",
    "model_card",
    "monitoring_run",
    "pyfunc_input",
    "pyfunc_records",
    "set_alias",
    "set_run_tags",
    "start_run",
    "tag_version",
    "use_store",
    "version_tags",
]

CHAMPION = "champion"
CHALLENGER = "challenger"
_PACKAGES = Path(__file__).resolve().parents[1]


def configure_tracking(tracking_uri: str, *, experiment: str, artifact_location: str | None = None) -> None:
    """Point MLflow at a tracking store (embedded default: ``sqlite:///mlflow.db``) and an experiment.

    A new experiment keeps its artifacts at ``artifact_location`` (MLflow's default, ``./mlruns``, when None).
    """
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment, artifact_location=artifact_location)
    mlflow.set_experiment(experiment)


def use_store(tracking_uri: str) -> None:
    """Read models from this tracking and registry store (no experiment needed, nothing is created)."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)


def pyfunc_input(frame: pd.DataFrame) -> pd.DataFrame:
    """Features as the pyfunc model takes them: numbers as float, categoricals as plain strings."""
    model_input = RiskModel.model_input(frame)
    for spec in FEATURES:
        if spec.kind == "categorical":
            model_input[spec.name] = model_input[spec.name].astype("object").where(model_input[spec.name].notna(), None)
    return model_input


def pyfunc_records(frame: pd.DataFrame) -> list[dict[str, float | str | None]]:
    """Features as JSON rows (``mlflow models serve``'s ``inputs``): missing values are None."""
    return [stored_features(row) for _, row in RiskModel.model_input(frame).iterrows()]


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


class RiskPythonModel(PythonModel):
    """Calibrated probability, band and raw score (log-odds) for each row of features.

    A registered version of ``case-closure-risk`` is the bundle (``models/bundle.py``) wrapped as an MLflow pyfunc
    model, so ``mlflow.pyfunc.load_model("models:/case-closure-risk@champion")``, ``mlflow models serve`` and Spark's
    ``spark_udf`` all return calibrated probabilities (the stock LightGBM flavour's pyfunc returns class labels). The
    model carries this project's ``features`` and ``models`` code, so it loads where the project is not installed.

    Its ``predict`` is type-hinted (``list[CaseFeatures] -> list[RiskPrediction]``, pydantic models), the fastest way
    MLflow 3 serves a Python model: the signature comes from the hints, and ``mlflow models serve`` hands the request's
    ``{"inputs": [{feature: value, ...}, ...]}`` rows to ``predict`` validated but without building a DataFrame.
    """

    def __init__(self) -> None:
        self.model: RiskModel | None = None

    def load_context(self, context: PythonModelContext) -> None:
        self.model = RiskModel.load(Path(context.artifacts["bundle"]))

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
        # One thread per call: the server runs requests side by side.
        raw = np.asarray(self.model.booster.predict(matrix, raw_score=True, num_threads=1), dtype=float)
        probability = self.model.calibrator.apply(raw)
        bands = self.model.bands.assign(probability).tolist()
        return [
            RiskPrediction(probability=p, band=b, raw_score=r)
            for p, b, r in zip(probability.tolist(), bands, raw.tolist(), strict=True)
        ]


@dataclass(frozen=True)
class RegisteredVersion:
    run_id: str
    version: str
    model_uri: str


def log_and_register(model: RiskModel, example: pd.DataFrame) -> RegisteredVersion:
    """Log the bundle as a pyfunc model in the active run and register it as a new version of ``MODEL_NAME``."""
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_and_register needs an active MLflow run")
    with tempfile.TemporaryDirectory(prefix="ccr-bundle-") as tmp:
        bundle_dir = Path(tmp) / "bundle"
        model.save(bundle_dir)
        with warnings.catch_warnings():
            # MLflow's input-example writer does arithmetic with a range that pandas 3 deprecates.
            warnings.filterwarnings("ignore", message="Operation with range is deprecated", category=DeprecationWarning)
            info = _log_pyfunc(model_dir=bundle_dir, example=pyfunc_records(example))
    version = str(info.registered_model_version)
    return RegisteredVersion(run_id=run.info.run_id, version=version, model_uri=f"models:/{MODEL_NAME}/{version}")


def _log_pyfunc(*, model_dir: Path, example: list[dict[str, float | str | None]]) -> Any:
    # The signature comes from predict's type hints (MLflow checks the example against them).
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=RiskPythonModel(),
        artifacts={"bundle": str(model_dir)},
        code_paths=[str(_PACKAGES / "features"), str(_PACKAGES / "models")],
        input_example=example,
        registered_model_name=MODEL_NAME,
        pip_requirements=_requirements(),
    )


def _requirements() -> list[str]:
    from importlib.metadata import version

    names = ("lightgbm", "mlflow", "numpy", "pandas", "pydantic", "lxml", "scikit-learn", "numba")
    return [f"{name}=={version(name)}" for name in names]


def champion_version() -> str | None:
    """The version the ``champion`` alias points to, or None when there is no champion yet."""
    try:
        return str(MlflowClient().get_model_version_by_alias(MODEL_NAME, CHAMPION).version)
    except MlflowException:
        return None


def set_alias(alias: str, version: str) -> None:
    MlflowClient().set_registered_model_alias(MODEL_NAME, alias, version)


def tag_version(version: str, tags: dict[str, str]) -> None:
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(MODEL_NAME, version, key, value)


def version_tags(version: str) -> dict[str, str]:
    return dict(MlflowClient().get_model_version(MODEL_NAME, version).tags)


def load_model(version_or_alias: str) -> RiskModel:
    """The bundle of a registered version (``"3"``) or alias (``"champion"``)."""
    reference = f"{MODEL_NAME}/{version_or_alias}" if version_or_alias.isdigit() else f"{MODEL_NAME}@{version_or_alias}"
    loaded = mlflow.pyfunc.load_model(f"models:/{reference}")
    wrapper = loaded.unwrap_python_model()
    if not isinstance(wrapper, RiskPythonModel) or wrapper.model is None:
        raise TypeError(f"models:/{reference} is not a case-closure-risk bundle")
    client = MlflowClient()
    version = (
        client.get_model_version(MODEL_NAME, version_or_alias)
        if version_or_alias.isdigit()
        else client.get_model_version_by_alias(MODEL_NAME, version_or_alias)
    )
    wrapper.model.metadata = wrapper.model.metadata.model_copy(
        update={"name": MODEL_NAME, "version": str(version.version), "run_id": version.run_id}
    )
    return wrapper.model


def load_model_uri(uri: str) -> RiskModel:
    """A bundle from ``models:/case-closure-risk@alias``, ``models:/case-closure-risk/3`` or a local bundle folder."""
    prefix = f"models:/{MODEL_NAME}"
    if uri.startswith(prefix + "@"):
        return load_model(uri[len(prefix) + 1 :])
    if uri.startswith(prefix + "/"):
        return load_model(uri[len(prefix) + 1 :])
    if uri.startswith("models:/"):
        raise ValueError(f"{uri}: only {MODEL_NAME} models can be served")
    model = RiskModel.load(Path(uri))
    if "version" not in model.metadata.model_fields_set:
        model.metadata = model.metadata.model_copy(update={"version": f"local:{Path(uri).name}"})
    return model


def model_card(model: RiskModel) -> str | None:
    """The Markdown model card logged with the model's training run (None for a local bundle); its "Performance
    in use" section points to the version's latest monitoring report when there is one."""
    run_id = model.metadata.run_id
    if not run_id:
        return None
    try:
        path = mlflow.artifacts.download_artifacts(run_id=str(run_id), artifact_path="report/model_card.md")
    except MlflowException:
        return None
    card = Path(path).read_text(encoding="utf-8")
    latest = latest_monitoring(model.version) if model.version.isdigit() else None
    return card if latest is None else _with_performance_in_use(card, latest)


_IN_USE_HEADING = "## Performance in use"


def _with_performance_in_use(card: str, summary: MonitoringSummary) -> str:
    """The card with its "Performance in use" section replaced by a pointer to the latest monitoring report."""
    ece, auc, largest = summary.calibration_error, summary.auc, summary.largest_drift
    lines = [
        _IN_USE_HEADING,
        f"Latest monitoring report: MLflow run `{summary.run_id}`, artifact `{summary.report_artifact}`"
        f" ({summary.created_at}; scores as of {summary.period_since} to {summary.period_until}, outcomes from "
        f"returns up to {summary.data_end}).",
        f"- closures with a known outcome: {summary.outcomes.get('known')}; pending (outcome not yet "
        f"observable, never counted as 0): {summary.outcomes.get('pending')}",
        f"- realised calibration error: {ece if ece is None else round(ece, 3)}; AUC: "
        f"{auc if auc is None else round(auc, 3)}",
        f"- largest feature drift (PSI): {largest.feature if largest else None} "
        f"{round(largest.psi, 3) if largest else None}; features past the "
        f"threshold: {', '.join(summary.drift_flags) or 'none'}",
        "",
    ]
    start = card.find(_IN_USE_HEADING)
    if start < 0:
        return card.rstrip("\n") + "\n\n" + "\n".join(lines)
    end = card.find("\n## ", start + len(_IN_USE_HEADING))
    return card[:start] + "\n".join(lines) + ("\n" + card[end + 1 :] if end >= 0 else "")


# --- monitoring: runs that compare a version's past scores with what happened ----------------------------------

MONITORING_SUMMARY = "monitoring/summary.json"
MONITORING_REPORT = "monitoring/report.html"
_LATEST_MONITORING_TAG = "monitoring.latest_run_id"


@contextmanager
def monitoring_run(version: str, *, experiment: str, artifact_location: str | None) -> Iterator[str]:
    """A monitoring run of a registered version, tagged so the run and the version point to each other; yields the
    run id (the summary carries it). The version's latest-monitoring tag moves to the run when it ends cleanly."""
    found = mlflow.get_experiment_by_name(experiment)
    experiment_id = (
        found.experiment_id if found else mlflow.create_experiment(experiment, artifact_location=artifact_location)
    )
    client = MlflowClient()
    registered = client.get_model_version(MODEL_NAME, version)
    tags = {"ccr.kind": "monitoring", "ccr.model_name": MODEL_NAME, "ccr.model_version": version,
            "ccr.training_run_id": registered.run_id or ""}  # fmt: skip
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"monitor v{version}", tags=tags) as run:
        yield run.info.run_id
    client.set_model_version_tag(MODEL_NAME, version, _LATEST_MONITORING_TAG, run.info.run_id)


def log_monitoring(
    report: MonitoringReport,
    *,
    params: dict[str, Any],
    metrics: dict[str, float],
    folder: Path,
    report_html: str,
) -> None:
    """Log, into the active ``monitoring_run``, its params and metrics (also on the version's logged model) and every
    file in ``folder`` with the summary (``summary.json``) and the HTML report, under ``monitoring/``."""
    (folder / "summary.json").write_text(report.model_dump_json(indent=2), encoding="utf-8")
    (folder / "report.html").write_text(report_html, encoding="utf-8")
    mlflow.log_params(params)
    mlflow.log_metrics(metrics)
    registered = MlflowClient().get_model_version(MODEL_NAME, report.model_version)
    if registered.model_id:  # MLflow 3: the same figures appear on the version's logged model
        mlflow.log_metrics(metrics, model_id=registered.model_id)
    mlflow.log_artifacts(str(folder), artifact_path="monitoring")


def latest_monitoring(version: str) -> MonitoringReport | None:
    """The summary of the latest monitoring run of a registered version, or None when it has none (or one written
    in a shape this code no longer reads)."""
    try:
        run_id = MlflowClient().get_model_version(MODEL_NAME, version).tags.get(_LATEST_MONITORING_TAG)
        if not run_id:
            return None
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=MONITORING_SUMMARY)
    except MlflowException:
        return None
    try:
        return MonitoringReport.model_validate_json(Path(path).read_bytes())
    except ValidationError:
        return None


# --- tracking: the run a training job logs into -----------------------------------------------------------------


def start_run(name: str) -> Any:
    """A new MLflow run in the configured experiment (a context manager; ``.info.run_id`` names it)."""
    return mlflow.start_run(run_name=name)


def log_params(params: dict[str, Any]) -> None:
    mlflow.log_params(params)


def log_metrics(metrics: dict[str, float]) -> None:
    mlflow.log_metrics(metrics)


def log_artifacts(folder: Path, *, artifact_path: str) -> None:
    mlflow.log_artifacts(str(folder), artifact_path=artifact_path)


def set_run_tags(tags: dict[str, str]) -> None:
    mlflow.set_tags(tags)
