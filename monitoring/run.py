"""``closure-risk monitor``: newer returns joined to stored scores; a report and an MLflow run per model version."""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from audit import AuditStore, InputsCipher, Pseudonymiser, load_inputs_cipher
from audit.review import review_from_store
from features import ingest
from models import registry
from models.performance import MonitoringReport
from monitoring.outcomes import join_outcomes
from monitoring.report import build_summary, render_report
from monitoring.settings import MonitoringSettings

__all__ = ["MonitoringError", "monitor", "run_metrics"]


class MonitoringError(Exception):
    """The monitor cannot run on these inputs (the message says why)."""


def run_metrics(summary: MonitoringReport) -> dict[str, float]:
    """The summary's headline figures as flat MLflow metrics (undefined ones left out)."""
    out: dict[str, float | None] = {
        "realised_calibration_error": summary.calibration_error,
        "realised_auc": summary.auc,
        "flag_rate_scored": summary.flag_rate_scored,
        "flag_rate_known": summary.flag_rate_known,
        "scores": summary.scores,
        "cases": summary.cases,
        **{f"outcomes_{k}": v for k, v in summary.outcomes.items()},
        "largest_psi": summary.largest_drift.psi if summary.largest_drift else None,
        "features_drifting": len(summary.drift_flags),
    }
    for band in summary.bands:
        out[f"band_{band.band}_realised_rate"] = band.realised_rate
        out[f"band_{band.band}_closures"] = band.closures
    for drift in summary.drift:
        out[f"psi_{drift.feature}"] = drift.psi
    return {k: float(v) for k, v in out.items() if v is not None}


def _pseudonymiser(settings: MonitoringSettings) -> Pseudonymiser:
    path = Path(settings.pseudonym_key_file)
    if not path.exists():  # a new key would match no stored case: refuse rather than report nothing
        raise MonitoringError(f"{path}: no pseudonym key; the monitor needs the key the service scored with")
    return Pseudonymiser(path.read_bytes())


def _inputs(settings: MonitoringSettings) -> InputsCipher:
    path = settings.inputs_key_path
    if not path.exists():  # the stored inputs (drift, fairness) open only with the key the service sealed them with
        raise MonitoringError(f"{path}: no inputs key; the monitor needs the key the service sealed scores with")
    return load_inputs_cipher(path)


def monitor(
    returns: Sequence[Path],
    *,
    settings: MonitoringSettings,
    extension: Path | None = None,
    since: dt.date | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Monitor every registered model version that scored cases (as of ``since`` or later); returns what the CLI
    prints: per version its run id, report path and headline figures.

    Ingest the returns with the same reader as training, compute every episode's pseudonymous case id with the service's
    key, join the stored scores (``--since``: scores as of that date or later), apply the training label rules, and for
    each registered model version that made scores: build the summary, log the monitoring run linked to the version, and
    write the self-contained HTML report.
    """
    result = ingest(returns, extension=extension)
    if result.data_end is None:
        raise MonitoringError("no return states its reference date, so outcomes cannot be censored")
    data_end = result.data_end
    pseudonymiser = _pseudonymiser(settings)
    store = AuditStore(settings.database_url, inputs=_inputs(settings))
    try:
        scores = store.scores_between(since=since)
        decisions = store.current_decisions([s.id for s in scores])
        review = review_from_store(store, since=since)
    finally:
        store.close()
    if not scores:
        raise MonitoringError(f"the audit store holds no scores{f' as of {since} or later' if since else ''}")
    outcomes = join_outcomes(scores, result.records, data_end=data_end, pseudonymiser=pseudonymiser,
                             decisions=decisions)  # fmt: skip
    registry.use_store(settings.tracking_uri)
    now = now or dt.datetime.now(dt.UTC)
    report_dir = Path(settings.report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    versions: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for version in sorted({s.model_version for s in scores}, key=lambda v: (not v.isdigit(), v.zfill(12))):
        if not version.isdigit():
            skipped[version] = "not a registered version (a local bundle): nothing to link a run to"
            continue
        model = registry.load_model(version)
        created_at = now.isoformat(timespec="seconds")
        with (
            tempfile.TemporaryDirectory(prefix="ccr-monitor-") as tmp,
            registry.monitoring_run(
                version, experiment=settings.monitoring_experiment, artifact_location=settings.artifact_location
            ) as run_id,
        ):
            folder = Path(tmp)
            summary = build_summary(
                model,
                outcomes,
                data_end=data_end.isoformat(),
                since=since.isoformat() if since else None,
                drift_threshold=settings.drift_threshold,
                n_boot=settings.bootstrap,
                seed=settings.seed,
                plots=folder,
                run_id=run_id,
                created_at=created_at,
            )
            registry.log_monitoring(
                summary,
                params={
                    "data_end": data_end.isoformat(),
                    "since": since.isoformat() if since else "all",
                    "returns": len(returns),
                    "drift_threshold": settings.drift_threshold,
                    "bootstrap": settings.bootstrap,
                },
                metrics=run_metrics(summary),
                folder=folder,
                report_html=render_report(summary, plots=folder, generated_at=created_at, review=review),
            )
            report = report_dir / f"monitoring-{registry.MODEL_NAME}-v{version}-{now:%Y%m%dT%H%M%S}.html"
            shutil.copyfile(folder / "report.html", report)
        versions.append(
            {
                "model_version": version,
                "run_id": summary.run_id,
                "report": str(report),
                "outcomes": summary.outcomes,
                "calibration_error": summary.calibration_error,
                "auc": summary.auc,
                "largest_drift": summary.largest_drift.model_dump() if summary.largest_drift else None,
                "drift_flags": summary.drift_flags,
                "bands": {
                    b.band: {"stated": b.stated_rate, "realised": b.realised_rate, "n": b.closures}
                    for b in summary.bands
                },
            }
        )
    # ingest's counts: a child with problems is left out (its scores then show as not found), and extension
    # lines for episodes outside these returns are listed as extension_unmatched without leaving anyone out
    return {"data_end": data_end.isoformat(), "scores": len(scores), "ingest": result.summary(),
            "versions": versions, "skipped": skipped}  # fmt: skip
