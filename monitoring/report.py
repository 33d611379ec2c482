"""How one model version is really doing, as a typed summary and a self-contained HTML report."""

from __future__ import annotations

import base64
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from audit.review import ReviewSummary
from features import FEATURES, Band, Decision, feature_spec
from models import RiskModel, population_stability
from models.performance import BandInUse, DecisionInUse, MonitoringReport
from models.registry import MONITORING_REPORT
from monitoring.outcomes import STATUSES, ScoredOutcome
from outcomes.evaluate import Evaluation, Interval, calibration_plot, evaluate
from outcomes.fairness import fairness_audit, fairness_plot

__all__ = ["MODERATE_DRIFT", "build_summary", "feature_drift", "render_report", "wilson_interval"]

MODERATE_DRIFT = 0.1
_Z = 1.959963984540054
_TEMPLATES = Path(__file__).resolve().with_name("templates")
_NO_INTERVAL = Interval(math.nan, math.nan, math.nan)  # no known outcome yet: None in the summary


def wilson_interval(events: int, n: int) -> tuple[float | None, float | None]:
    """Wilson score 95% interval of a proportion; (None, None) for no cases."""
    if n == 0:
        return None, None
    p = events / n
    centre = (p + _Z**2 / (2 * n)) / (1 + _Z**2 / n)
    half = _Z * math.sqrt(p * (1 - p) / n + _Z**2 / (4 * n * n)) / (1 + _Z**2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _clean(value: Any) -> Any:
    """NaN and numpy scalars as plain JSON (NaN -> None), recursively."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _rate(events: int, n: int) -> dict[str, Any]:
    low, high = wilson_interval(events, n)
    return {"rate": events / n if n else None, "low": low, "high": high}


def feature_drift(
    model: RiskModel, cases: Sequence[Mapping[str, float | str | None]], *, threshold: float
) -> list[dict[str, Any]]:
    """PSI of every feature between the model's training closures and ``cases`` (model input values as the audit
    store keeps them), largest first, each flagged when above ``threshold``; empty without reference distributions."""
    distributions = model.reference.distributions
    if not distributions or not cases:
        return []
    frame = pd.DataFrame(list(cases))
    rows = []
    for spec in FEATURES:
        reference = distributions.get(spec.name)
        if reference is None or spec.name not in frame:
            continue
        actual = reference.shares_of(frame[spec.name])
        psi = population_stability(reference.shares, actual)
        rows.append({"feature": spec.name, "label": spec.label, "psi": psi, "flagged": psi > threshold,
                     "moderate": MODERATE_DRIFT < psi <= threshold, "bins": list(reference.bins),
                     "expected": list(reference.shares), "actual": [float(a) for a in actual]})  # fmt: skip
    return sorted(rows, key=lambda r: -float(r["psi"]))


def _known_frame(known: Sequence[ScoredOutcome], model: RiskModel) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "y": np.array([o.label for o in known], dtype=np.int64),
            "p": np.array([o.score.probability for o in known], dtype=float),
            "band": np.array([o.score.band for o in known], dtype=object),
            "high": np.array([o.score.band == Band.HIGH for o in known], dtype=bool),
            "sex": np.array([o.sex for o in known], dtype=object),
            "ethnic_group": np.array([o.ethnic_group for o in known], dtype=object),
            "disability": np.array([np.nan if o.disability is None else o.disability for o in known], dtype=float),
            "age_years": np.array([np.nan if o.age_years is None else o.age_years for o in known], dtype=float),
            "in_scope": np.array([o.score.in_scope for o in known], dtype=bool),
        }
    )


def build_summary(
    model: RiskModel,
    outcomes: Sequence[ScoredOutcome],
    *,
    data_end: str,
    since: str | None,
    drift_threshold: float,
    n_boot: int,
    seed: int,
    plots: Path | None = None,
    run_id: str = "",
    created_at: str = "",
) -> MonitoringReport:
    """Everything the report shows for one model version (``run_id``: the monitoring run it is logged in); PNG
    plots go to ``plots`` when given.

    The metrics are training's own (``outcomes.evaluate.evaluate``, ``outcomes.fairness.fairness_audit``), computed on
    the closures whose outcome is known, one score per case: the last one on or before its closure. Pending outcomes are
    counted and shown, never scored as 0. Band rates carry Wilson 95% intervals (a band is a binomial proportion);
    everything else carries training's bootstrap intervals. Drift compares each feature's distribution among the
    period's scored cases (one row per case: its latest score) with the model's training closures.
    """
    version = model.version
    mine = [o for o in outcomes if o.score.model_version == version]
    if not mine:
        raise ValueError(f"no stored scores of model version {version}")
    at_closure = [o for o in mine if o.at_closure]
    statuses = Counter(o.status for o in at_closure)
    known = [o for o in at_closure if o.status == "known"]
    frame = _known_frame(known, model)
    bands = []
    for band in Band:
        part = frame[frame["band"] == band]
        events, n = int(part["y"].sum()), len(part)
        rate = _rate(events, n)
        bands.append(BandInUse(band=band.value, stated_rate=model.bands.observed_rate.get(band),
                               stated_on=model.bands.observed_on, realised_rate=rate["rate"], low=rate["low"],
                               high=rate["high"], closures=n, re_referred=events,
                               mean_predicted=float(part["p"].mean()) if n else None))  # fmt: skip
    evaluation: Evaluation | None = None
    fairness: list[dict[str, Any]] = []
    if len(known):
        evaluation = evaluate(frame["y"], frame["p"], high=frame["high"], band=frame["band"].astype(str),
                              n_boot=n_boot, seed=seed)  # fmt: skip
        audit = fairness_audit(frame, n_boot=n_boot // 2, seed=seed)
        fairness = [{str(k): v for k, v in row.items()} for row in audit.to_dict(orient="records")]
        if plots is not None:
            calibration_plot(frame["y"], frame["p"], plots / "calibration.png",
                             title=f"Realised calibration, version {version}")  # fmt: skip
            fairness_plot(pd.DataFrame(fairness), plots / "fairness.png")
    decisions = []
    for decision in Decision:
        decided = [o for o in mine if o.decision == decision]
        outcome_known = [o for o in decided if o.status == "known"]
        events, n = sum(int(o.label or 0) for o in outcome_known), len(outcome_known)
        decisions.append(DecisionInUse(decision=decision.value, scores=len(decided), outcome_known=n,
                                       re_referred=events, pending=sum(o.status == "pending" for o in decided),
                                       still_open=sum(o.status == "open" for o in decided),
                                       **_rate(events, n)))  # fmt: skip
    latest: dict[str, ScoredOutcome] = {}
    for o in mine:
        held = latest.get(o.score.case_id)
        if held is None or (o.score.as_of, o.score.created_at) > (held.score.as_of, held.score.created_at):
            latest[o.score.case_id] = o
    drift = feature_drift(model, [o.score.features for o in latest.values()], threshold=drift_threshold)
    if plots is not None and drift:
        _drift_plot(drift, plots / "drift.png", threshold=drift_threshold)
    ece = evaluation.metrics.ece if evaluation else _NO_INTERVAL
    auc = evaluation.metrics.roc_auc if evaluation else _NO_INTERVAL
    flagged_share = sum(o.score.band == Band.HIGH for o in latest.values()) / len(latest)
    return MonitoringReport.model_validate(
        _clean(
            {
                "model_name": model.name,
                "model_version": version,
                "run_id": run_id,
                "report_artifact": MONITORING_REPORT,
                "created_at": created_at,
                "period_since": since or min(o.score.as_of for o in mine).isoformat(),
                "period_until": max(o.score.as_of for o in mine).isoformat(),
                "data_end": data_end,
                "scores": len(mine),
                "cases": len(latest),
                "outcomes": {
                    "known": len(known),
                    **{s: statuses.get(s, 0) for s in STATUSES if s != "known"},
                    "re_referred": int(frame["y"].sum()),
                },
                "calibration_error": ece.value,
                "calibration_error_interval": [ece.low, ece.high],
                "auc": auc.value,
                "auc_interval": [auc.low, auc.high],
                "flag_rate_scored": flagged_share,
                "flag_rate_known": evaluation.high_band.flag_rate.value if evaluation else None,
                "evaluation": evaluation.as_dict() if evaluation else None,
                "bands": [b.model_dump() for b in bands],
                "fairness": fairness,
                "decisions": [d.model_dump() for d in decisions],
                "drift_threshold": drift_threshold,
                "drift": [{k: v for k, v in d.items() if k not in ("bins", "expected", "actual")} for d in drift],
                "drift_available": bool(model.reference.distributions),
                "drift_flags": [d["feature"] for d in drift if d["flagged"]],
                "largest_drift": {"feature": drift[0]["feature"], "psi": drift[0]["psi"]} if drift else None,
                "drift_bins": {
                    d["feature"]: {"bins": d["bins"], "expected": d["expected"], "actual": d["actual"]}
                    for d in drift[:5]
                },
            }
        )
    )


def _drift_plot(drift: list[dict[str, Any]], path: Path, *, threshold: float, top: int = 20) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shown = drift[:top][::-1]
    figure = Figure(figsize=(9.0, 0.3 * len(shown) + 1.2), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    colours = ["firebrick" if d["flagged"] else "darkorange" if d["moderate"] else "steelblue" for d in shown]
    ax.barh([feature_spec(d["feature"]).label for d in shown], [d["psi"] for d in shown], color=colours)
    ax.axvline(threshold, color="firebrick", linestyle="--", linewidth=1)
    ax.axvline(MODERATE_DRIFT, color="darkorange", linestyle=":", linewidth=1)
    ax.set(xlabel="population stability index (PSI)", title="Feature drift against the training closures")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=100)


def _embedded(path: Path) -> str | None:
    if not path.exists():
        return None
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def render_report(
    summary: MonitoringReport, *, plots: Path, generated_at: str, review: ReviewSummary | None = None
) -> str:
    """The summary as one HTML page: inline CSS, plots embedded as PNG data, no scripts, no external links."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
    )

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}%"

    def num(value: float | None, digits: int = 3) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    environment.filters.update(pct=pct, num=num)
    images = {name: _embedded(plots / f"{name}.png") for name in ("calibration", "fairness", "drift")}
    labels = {spec.name: spec.label for spec in FEATURES}
    return environment.get_template("report.html.j2").render(
        s=summary, images=images, labels=labels, generated_at=generated_at, review=review
    )
