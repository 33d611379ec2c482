"""The only module that touches MLflow: the pyfunc wrapper, logging, the model registry and its aliases."""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from pydantic import ValidationError

from features import FEATURE_NAMES, FEATURES
from models.bundle import MODEL_NAME, BundleDigestError, RiskModel, bundle_digests
from models.performance import MonitoringReport, MonitoringSummary
from models.scoring import stored_features

__all__ = [
    "BUNDLE_ARTIFACT",
    "CHALLENGER",
    "CHAMPION",
    "DIGEST_PARAM",
    "MODEL_NAME",
    "MONITORING_REPORT",
    "ModelRefusedError",
    "ModelUnavailableError",
    "RegisteredVersion",
    "champion_version",
    "configure_tracking",
    "example_features",
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
BUNDLE_ARTIFACT = "bundle"  # the artifact key (and folder under the logged model's ``artifacts/``) of the bundle
DIGEST_PARAM = "bundle_sha256."  # + file name: a run parameter holding that bundle file's SHA-256 at training
_PACKAGES = Path(__file__).resolve().parents[1]
_MODEL_CODE = Path(__file__).resolve().with_name("mlflow_model.py")


def _private_store(tracking_uri: str) -> None:
    """An embedded SQLite store that does not exist yet is created readable by its owner only: it names model
    versions and runs of an authority's data. MLflow's artifact download bars are not the user's business."""
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri.removeprefix("sqlite:///"))
        if str(path) != ":memory:" and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def configure_tracking(tracking_uri: str, *, experiment: str, artifact_location: str | None = None) -> None:
    """Point MLflow at a tracking store (embedded default: ``sqlite:///mlflow.db``) and an experiment.

    A new experiment keeps its artifacts at ``artifact_location`` (MLflow's default, ``./mlruns``, when None).
    """
    _private_store(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment, artifact_location=artifact_location)
    mlflow.set_experiment(experiment)


def use_store(tracking_uri: str) -> None:
    """Read models from this tracking and registry store (no experiment needed, nothing is created).

    A process that reads models (the service, scoring, monitoring) also forbids MLflow to unpickle any model: the
    registry's own models are loaded from their files (``load_model``), and a pickle found in the store is never run.
    """
    os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"
    _private_store(tracking_uri)
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


class ModelUnavailableError(RuntimeError):
    """The registry could not be read, or has no such version or alias: nothing was loaded."""


class ModelRefusedError(ValueError):
    """A registered version's files fail their checks (changed since training, missing, or without recorded
    digests): it is refused and nothing of it is used."""


@dataclass(frozen=True)
class RegisteredVersion:
    run_id: str
    version: str
    model_uri: str


def log_and_register(model: RiskModel) -> RegisteredVersion:
    """Log the bundle as a model from code (``models/mlflow_model.py``) in the active run, record the SHA-256 of each
    of its files as run parameters (immutable once logged), and register it as a new version of ``MODEL_NAME``.

    The input example is made up (``example_features``), never a training child's row."""
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_and_register needs an active MLflow run")
    with tempfile.TemporaryDirectory(prefix="ccr-bundle-") as tmp:
        bundle_dir = Path(tmp) / BUNDLE_ARTIFACT
        model.save(bundle_dir)
        mlflow.log_params({f"{DIGEST_PARAM}{name}": digest for name, digest in bundle_digests(bundle_dir).items()})
        with warnings.catch_warnings():
            # MLflow's input-example writer does arithmetic with a range that pandas 3 deprecates.
            warnings.filterwarnings("ignore", message="Operation with range is deprecated", category=DeprecationWarning)
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(_MODEL_CODE),
                artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
                code_paths=[str(_PACKAGES / "features"), str(_PACKAGES / "models")],
                input_example=example_features(model),
                pip_requirements=_requirements(),
            )
    version = _register(info.model_id, run.info.run_id)
    return RegisteredVersion(run_id=run.info.run_id, version=version, model_uri=f"models:/{MODEL_NAME}/{version}")


def _register(model_id: str, run_id: str) -> str:
    """A new version of ``MODEL_NAME`` (made on first use) from the logged model, as ``log_model`` with
    ``registered_model_name`` does, through the client: that one prints its steps to standard error whatever the
    logging level, and the command line reports the version itself."""
    client = MlflowClient()
    try:
        client.create_registered_model(MODEL_NAME)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    created = client.create_model_version(MODEL_NAME, source=f"models:/{model_id}", run_id=run_id, model_id=model_id)
    return str(created.version)


def example_features(model: RiskModel) -> list[dict[str, float | str | None]]:
    """Two made-up rows of features for MLflow's input example: the middle of each number's range among training
    closures (rounded), each category list's first value and "no" for every flag; then a row with nothing known.
    No child's row: the example is stored in clear beside the model."""
    row: dict[str, float | str | None] = {}
    for spec in FEATURES:
        if spec.kind == "categorical":
            row[spec.name] = spec.categories[0]
        elif spec.kind == "numeric" and spec.name in model.reference.numeric:
            low, high = model.reference.numeric[spec.name]
            row[spec.name] = float(round((low + high) / 2))
        else:
            row[spec.name] = 0.0
    return [row, dict.fromkeys(FEATURE_NAMES)]


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
    """The bundle of a registered version (``"3"``) or alias (``"champion"``), read from its own files.

    No code of the registered model runs and nothing is unpickled: the bundle's JSON and LightGBM text are downloaded
    into a temporary folder (removed after), each checked against the SHA-256 its training run recorded, and the
    bundle is built from the bytes checked. Raises ``ModelUnavailableError`` when the registry cannot be read or has no
    such version, and ``ModelRefusedError`` when a file is missing or differs from training (or the version was
    registered without digests); nothing is returned then, so a caller keeps the model it has.
    """
    reference = f"{MODEL_NAME}/{version_or_alias}" if version_or_alias.isdigit() else f"{MODEL_NAME}@{version_or_alias}"
    client = MlflowClient()
    try:
        version = (
            client.get_model_version(MODEL_NAME, version_or_alias)
            if version_or_alias.isdigit()
            else client.get_model_version_by_alias(MODEL_NAME, version_or_alias)
        )
        params = client.get_run(version.run_id).data.params if version.run_id else {}
    except MlflowException as exc:
        raise ModelUnavailableError(f"models:/{reference} could not be read from the registry: {exc.message}") from exc
    digests = {k.removeprefix(DIGEST_PARAM): v for k, v in params.items() if k.startswith(DIGEST_PARAM)}
    if not digests:
        raise ModelRefusedError(
            f"models:/{reference} (version {version.version}) has no file digests recorded by its training run: it "
            "was registered before bundles were checked, or not by training; retrain it"
        )
    with tempfile.TemporaryDirectory(prefix="ccr-load-") as tmp:
        try:
            files = f"{_model_artifacts(client, str(version.source))}/artifacts/{BUNDLE_ARTIFACT}"
            folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=files, dst_path=tmp))
            model = RiskModel.load(folder, digests=digests)
        except BundleDigestError as exc:
            raise ModelRefusedError(f"models:/{reference} (version {version.version}) refused: {exc}") from exc
        except (MlflowException, OSError) as exc:
            raise ModelRefusedError(
                f"models:/{reference} (version {version.version}): the bundle's files could not be read ({exc})"
            ) from exc
    model.metadata = model.metadata.model_copy(
        update={"name": MODEL_NAME, "version": str(version.version), "run_id": version.run_id}
    )
    return model


def _model_artifacts(client: MlflowClient, source: str) -> str:
    """Where a registered version's logged model keeps its files (``source`` is ``models:/m-...`` in MLflow 3)."""
    if source.startswith("models:/m-"):
        return str(client.get_logged_model(source.removeprefix("models:/").split("/")[0]).artifact_location)
    return source


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
    card = _read_artifact(str(run_id), "report/model_card.md")
    if card is None:
        return None
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
    except MlflowException:
        return None
    summary = _read_artifact(run_id, MONITORING_SUMMARY)
    if summary is None:
        return None
    try:
        return MonitoringReport.model_validate_json(summary)
    except ValidationError:
        return None


def _read_artifact(run_id: str, artifact_path: str) -> str | None:
    """A run's text artifact, or None when it has none. Downloaded into a temporary folder removed at once (MLflow's
    own default keeps one folder per download for ever: one per ``GET /v1/model``)."""
    with tempfile.TemporaryDirectory(prefix="ccr-artifact-") as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path, dst_path=tmp)
        except MlflowException:
            return None
        return Path(path).read_text(encoding="utf-8")


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
