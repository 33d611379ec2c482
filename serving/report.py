"""The manager's explanation report: a stored score turned into what a team manager reads before a closure."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from audit import DecisionRow, ScoreRow
from features import FEATURES, AbuseCategory, Band, FeatureGroup, PrimaryNeed, ReferralSource, Sex, feature_spec
from features.numbers import in_words, percent, percent_points, whole_percent
from models import RiskModel

__all__ = [
    "Chart",
    "FactView",
    "ReportView",
    "build_report",
    "format_value",
    "in_words",
    "percent",
]

_CODE_LISTS: dict[str, Any] = {
    "sex": Sex,
    "referral_source": ReferralSource,
    "primary_need": PrimaryNeed,
    "protection_plan_category": AbuseCategory,
}
_METRIC_NAMES = {
    "roc_auc": "Discrimination (ROC AUC: 0.5 is chance, 1 is perfect)",
    "ece": "Calibration error (mean gap between predicted and observed rates)",
    "brier": "Brier score (lower is better)",
}
_DIMENSIONS = {"sex": "Sex", "ethnic_group": "Ethnic group", "disability": "Disability", "age_band": "Age band"}
CHART_REASONS = 8  # bars before "all other factors"


# An extension group's list was not sent at all when its count is missing too; otherwise a missing value means
# there was nothing to measure (no visit yet, no review yet), which is "none", not "not recorded".
_GROUP_COUNTS = {FeatureGroup.SERVICES: "services_offered", FeatureGroup.PARTNERS: "partner_agencies",
                 FeatureGroup.VISITS: "visits_90d", FeatureGroup.PROGRESS: "plan_reviews"}  # fmt: skip
# What a missing value of a core feature means: the record always holds these facts when they exist.
_NONE_WORDS = {
    "days_since_last_closure": "none: no earlier episode",
    "days_since_assessment": "none: no assessment authorised yet",
    "protection_plan_category": "none: no child protection plan",
}


def _missing(feature: str, features: Mapping[str, object] | None) -> str:
    spec = feature_spec(feature)
    if not spec.extension:
        return _NONE_WORDS.get(feature, "none")
    count = _GROUP_COUNTS.get(spec.group)
    if features is None or count is None or features.get(count) is None:
        return "not recorded"
    return "none"


def format_value(feature: str, value: float | str | None, features: Mapping[str, object] | None = None) -> str:
    """A feature's value as the report shows it: yes/no, whole numbers, shares as percentages, code labels; a missing
    value reads "not recorded" only when the case file did not record it (``features``: all of the case's values)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return _missing(feature, features)
    spec = feature_spec(feature)
    if spec.kind == "binary":
        return "yes" if float(value) >= 0.5 else "no"
    if spec.kind == "categorical":
        codes = _CODE_LISTS.get(feature)
        try:
            return f"{codes(str(value)).label} ({value})" if codes is not None else str(value)
        except (ValueError, KeyError):
            return str(value)
    number = float(value)
    if feature.endswith("_change"):
        return percent_points(number).replace("percentage point", "point").replace("about the same as now", "none")
    if "share" in feature:
        return f"{whole_percent(min(max(number, 0.0), 1.0))}%"
    if feature == "age_years":
        return f"{math.floor(number)}"
    return f"{number:.0f}" if number == round(number) else f"{number:.1f}"


@dataclass(frozen=True)
class FactView:
    feature: str
    label: str
    value: str
    contribution: float
    direction: str
    actionable: bool


@dataclass(frozen=True)
class Bar:
    """One row of the chart, in SVG user units."""

    label: str
    value: str
    contribution: float
    x: float
    width: float
    y: float
    direction: str
    points: str  # the bar's move in percentage points


@dataclass(frozen=True)
class Chart:
    """A waterfall from the model's average case to this case's probability, on the probability scale."""

    width: int
    height: int
    plot_left: float
    plot_right: float
    row_height: int
    bars: list[Bar]
    ticks: list[tuple[float, str]]  # (x, probability)
    base_x: float
    final_x: float
    base_label: str
    final_label: str
    description: str
    calibrated: bool  # False: the model version's calibration was unavailable, so the plain logistic curve is used


@dataclass
class ReportView:
    score: ScoreRow
    probability_words: str
    probability_percent: str
    band: Band
    band_rate: float | None
    band_cases: int | None
    band_observed_on: str
    band_thresholds: tuple[float, float] | None
    summary: list[str]
    raising: list[FactView]
    lowering: list[FactView]
    chart: Chart
    what_ifs: list[dict[str, object]] | None
    warnings: list[str]
    missing: list[str]
    model_version: str
    model_matches: bool  # the score's model version is the one whose facts are shown
    # The headline: the rolling-origin backtest pooled over its years, each closure predicted by the recipe refitted
    # on the years before it; bundles without one show this version's test year instead.
    metrics: list[tuple[str, float, float | None, float | None]]  # (what, value, low, high)
    backtest_cases: int | None
    backtest_years: list[int]
    test_metrics: list[tuple[str, float, float | None, float | None]]  # this version on its own test year
    test_cases: int | None
    test_year: object
    fairness: list[dict[str, object]]
    decisions: list[DecisionRow]
    current_decision: DecisionRow | None
    # The case's latest decision when it was recorded on another score of the same child and episode (a case scored
    # again keeps its decision): None when this score's own decision is the latest, or the case has none.
    case_decision: DecisionRow | None
    calibrator_method: str | None


def _facts(row: ScoreRow) -> list[FactView]:
    facts = []
    for reason in row.reasons:
        name = str(reason["feature"])
        spec = feature_spec(name)
        raw = reason.get("value")
        facts.append(
            FactView(
                feature=name,
                label=str(reason["label"]),
                value=format_value(
                    name, raw if isinstance(raw, float | int | str) or raw is None else None, row.features
                ),
                contribution=float(reason["contribution"]),  # type: ignore[arg-type]
                direction=str(reason["direction"]),
                actionable=spec.actionable,
            )
        )
    return facts


def _calibrated(model: RiskModel | None) -> Callable[[Sequence[float]], list[float]]:
    """The model version's calibration of a raw score; without the model, the plain logistic curve."""

    def apply(raw: Sequence[float]) -> list[float]:
        values = np.asarray(raw, dtype=float)
        out = model.calibrator.apply(values) if model is not None else 1.0 / (1.0 + np.exp(-values))
        return [float(v) for v in out]

    return apply


_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)


def _chart(row: ScoreRow, facts: Sequence[FactView], model: RiskModel | None) -> Chart:
    """The waterfall on the probability scale end to end: each bar runs between the calibrated probabilities of the
    running sum before and after its contribution, from the average case to this case's probability (the last
    running sum is the raw score, whose calibration is the probability), so the bars meet both ends."""
    shown = [f for f in facts if f.contribution != 0.0][:CHART_REASONS]
    rest = sum(f.contribution for f in facts) - sum(f.contribution for f in shown)
    steps = [(f.label, f.value, f.contribution) for f in shown]
    if len(facts) > len(shown):
        steps.append((f"All other factors ({len(facts) - len(shown)})", "", rest))
    running = [row.base_value]
    for _, _, c in steps:
        running.append(running[-1] + c)
    probability = _calibrated(model)(running)
    if model is not None:
        probability[-1] = row.probability  # the stored score: equal to the calibrated raw score up to rounding
    low, high = min(probability), max(probability)
    pad = max(0.02, (high - low) * 0.08)
    low, high = max(0.0, low - pad), min(1.0, high + pad)
    width, row_height, plot_left, plot_right = 760, 30, 330.0, 740.0
    top = 36

    def x_of(p: float) -> float:
        return plot_left + (p - low) / (high - low) * (plot_right - plot_left)

    bars = []
    for i, (label, value, c) in enumerate(steps):
        start, end = probability[i], probability[i + 1]
        bars.append(
            Bar(
                label=label if len(label) <= 48 else label[:46] + "…",
                value=value,
                contribution=c,
                x=min(x_of(start), x_of(end)),
                width=max(abs(x_of(end) - x_of(start)), 1.5),
                y=top + i * row_height,
                direction="raises" if c > 0 else "lowers",
                points=percent_points(end - start).replace(" as now", ""),
            )
        )
    ticks = [(x_of(t), percent(t)) for t in _TICKS if low < t < high]
    base_p = probability[0]
    raising = [s for s in steps if s[2] > 0][:3]
    lowering = [s for s in steps if s[2] < 0][:3]
    description = (
        f"Starting from the model's average case ({percent(base_p)}), the factors move the estimate to "
        f"{percent(row.probability)}. "
        + (f"Largest upward: {'; '.join(s[0] for s in raising)}. " if raising else "")
        + (f"Largest downward: {'; '.join(s[0] for s in lowering)}." if lowering else "")
    )
    return Chart(
        width=width,
        height=top + len(steps) * row_height + 30,
        plot_left=plot_left,
        plot_right=plot_right,
        row_height=row_height,
        bars=bars,
        ticks=ticks,
        base_x=x_of(base_p),
        final_x=x_of(probability[-1]),
        base_label=f"average case {percent(base_p)}",
        final_label=f"this case {percent(row.probability)}",
        description=description,
        calibrated=model is not None,
    )


def _summary(row: ScoreRow, raising: list[FactView], lowering: list[FactView], band_rate: float | None,
             band_cases: int | None) -> list[str]:  # fmt: skip
    lines = [
        f"If this case were closed on {row.as_of:%d %B %Y}, the model estimates the chance that the child is "
        f"referred to children's social care again within 12 months at {in_words(row.probability)} "
        f"({percent(row.probability)})."
    ]
    if band_rate is not None and band_cases:
        lines.append(
            f"That puts it in the {row.band} band: of {band_cases:,} past closures the model placed in this band, "
            f"{percent(band_rate)} were referred again within a year."
        )
    if raising:
        listed = "; ".join(f"{f.label.lower()} ({f.value})" for f in raising[:3])
        lines.append(f"What pushes the estimate up most: {listed}.")
    if lowering:
        listed = "; ".join(f"{f.label.lower()} ({f.value})" for f in lowering[:3])
        lines.append(f"What pulls it down most: {listed}.")
    return lines


def _child_groups(row: ScoreRow, fairness: Sequence[dict[str, Any]]) -> dict[str, str]:
    features = row.features
    groups: dict[str, str] = {}
    if isinstance(features.get("sex"), str):
        groups["sex"] = str(features["sex"])
    disability = features.get("disability")
    groups["disability"] = "unknown" if disability is None else ("yes" if float(disability) >= 0.5 else "no")
    if row.ethnic_group:
        groups["ethnic_group"] = row.ethnic_group
    age = features.get("age_years")
    groups["age_band"] = "unknown"
    if age is not None:
        for entry in fairness:  # the audit's own bands ("0-4", "5-9", ...)
            group = str(entry.get("group", ""))
            if entry.get("dimension") == "age_band" and "-" in group:
                first, last = group.split("-", 1)
                if first.isdigit() and last.isdigit() and int(first) <= max(float(age), 0.0) < int(last) + 1:
                    groups["age_band"] = group
    return groups


def _fairness(row: ScoreRow, model: RiskModel | None) -> list[dict[str, object]]:
    if model is None:
        return []
    audit: list[dict[str, Any]] = list(model.metadata.fairness)
    mine = _child_groups(row, audit)
    out = []
    for entry in audit:
        dimension = str(entry.get("dimension"))
        if mine.get(dimension) == str(entry.get("group")):
            out.append({**entry, "dimension_label": _DIMENSIONS.get(dimension, dimension)})
    return out


def _metrics(found: dict[str, Any]) -> list[tuple[str, float, float | None, float | None]]:
    out = []
    for name, label in _METRIC_NAMES.items():
        metric = found.get(name)
        if isinstance(metric, dict) and metric.get("value") is not None:
            out.append((label, float(metric["value"]), metric.get("low"), metric.get("high")))
    return out


def build_report(
    row: ScoreRow,
    decisions: list[DecisionRow],
    model: RiskModel | None,
    *,
    case_decisions: Sequence[DecisionRow] = (),
) -> ReportView:
    """The report of a stored score; ``model`` is the version that made it (None when it cannot be loaded).

    Everything shown comes from the audit store's row (the score, every feature's exact TreeSHAP contribution, the
    what-ifs computed when the case was scored, the warnings the caller was given) and from the model version that
    made it (its bands, test performance, calibration and fairness audit). Nothing is recomputed from the record: the
    store does not keep it. ``case_decisions`` are the decisions on every score of the case, oldest first.
    """
    latest = case_decisions[-1] if case_decisions else None
    facts = _facts(row)
    raising = [f for f in facts if f.contribution > 0]
    lowering = [f for f in facts if f.contribution < 0]
    bands = model.bands if model is not None else None
    band_rate = bands.observed_rate.get(row.band) if bands is not None else None
    band_cases = bands.cases.get(row.band) if bands is not None else None
    extension = {spec.name for spec in FEATURES if spec.extension}
    missing = [spec_label for name, spec_label in ((f.feature, f.label) for f in facts)
               if name in extension and row.features.get(name) is None]  # fmt: skip
    return ReportView(
        score=row,
        probability_words=in_words(row.probability),
        probability_percent=percent(row.probability),
        band=row.band,
        band_rate=band_rate,
        band_cases=band_cases,
        band_observed_on=bands.observed_on if bands is not None else "",
        band_thresholds=(bands.low_below, bands.high_from) if bands is not None else None,
        summary=_summary(row, raising, lowering, band_rate, band_cases),
        raising=raising,
        lowering=lowering,
        chart=_chart(row, facts, model),
        what_ifs=row.what_ifs,
        warnings=list(row.warnings or []),
        missing=missing,
        model_version=row.model_version,
        model_matches=model is not None and model.version == row.model_version,
        metrics=_metrics(dict(model.metadata.backtest_metrics) if model is not None else {}),
        backtest_cases=model.metadata.backtest_cases if model is not None else None,
        backtest_years=list(model.metadata.backtest_years) if model is not None else [],
        test_metrics=_metrics(dict(model.metadata.test_metrics) if model is not None else {}),
        test_cases=model.metadata.test_cases if model is not None else None,
        test_year=model.metadata.test_year if model is not None else None,
        fairness=_fairness(row, model),
        decisions=decisions,
        current_decision=decisions[-1] if decisions else None,
        case_decision=latest if latest is not None and latest.score_id != row.id else None,
        calibrator_method=model.calibrator.method if model is not None else None,
    )
