"""The model card (Markdown) and the algorithmic transparency record (JSON and Markdown) of a trained version."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import jinja2

from features import FEATURES
from models import Bands
from outcomes.backtest import BOOSTER, Backtest
from outcomes.disparity import TOO_FEW, FairnessReport
from outcomes.evaluate import Evaluation, Interval
from training.card_backtest import backtest_headline, test_year_row
from training.gate import GateDecision
from training.holdout import HoldoutCheck
from training.learning import LearningCurve, learning_rows

__all__ = [
    "CardFacts",
    "fairness_rows",
    "policy_section",
    "render_model_card",
    "render_transparency_record",
    "too_few_to_judge",
    "transparency_record",
]

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,  # Markdown, not HTML
)
METRIC_LABELS = (
    ("roc_auc", "ROC AUC"),
    ("pr_auc", "PR AUC"),
    ("brier", "Brier score"),
    ("log_loss", "log loss"),
    ("ece", "expected calibration error"),
)


@dataclass(frozen=True)
class CardFacts:
    """What the model card and the transparency record say about one registered version."""

    name: str
    version: str
    run_id: str
    trained_on: str
    data_end: str
    split: dict[str, Any]  # ``Split.describe()``
    test: Evaluation
    neglect: Evaluation | None
    bands: Bands
    calibrator: str
    fairness: list[dict[str, Any]]  # the fairness table's rows
    gate: GateDecision
    min_group_cases: int
    synthetic: bool
    baselines: dict[str, Evaluation]  # the logistic regression and the base rate on the same test closures
    calibration_years: tuple[int, ...]  # out-of-fold scores the calibrator was fitted on
    calibration_folds: int = 3  # out-of-fold boosters behind those scores
    calibration_folds_learn_from_all: bool = False  # ... also learning from the children that stopped or chose
    backtest: Backtest | None = None  # the rolling-origin backtest: the headline figures
    policy_text: str = ""  # the gate's policy file as read: the card quotes its [fairness] section
    neglect_calibration: tuple[float, float] | None = None  # population-aware: (slope, intercept) in the population
    learning: LearningCurve | None = None  # the recipe refitted on less data
    min_closures: int | None = None  # the policy's [data] minimum, measured by the benchmark
    holdout: HoldoutCheck | None = None  # the pre-deployment hold-out, where a deployment date is set


def _fmt(interval: Interval | None) -> str:
    if interval is None or math.isnan(interval.value):
        return "n/a"
    return f"{interval.value:.3f} ({interval.low:.3f} to {interval.high:.3f})"


def _num(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


# --- the fairness part: the deeper audit (outcomes/disparity.py) and the policy it was judged by ------------------


def policy_section(text: str, section: str) -> str:
    """The lines of one ``[section]`` of the policy file, as written (comments included)."""
    out: list[str] = []
    inside = False
    for line in text.splitlines():
        if line.startswith("["):
            inside = line.strip() == f"[{section}]"
            continue
        if inside:
            out.append(line)
    return "\n".join(out).strip()


def _difference(row: dict[str, Any]) -> str:
    return f"{row['difference']:+.3f} ({row['difference_low']:+.3f} to {row['difference_high']:+.3f})"


def _ratio(row: dict[str, Any]) -> str:
    if not math.isfinite(row["ratio"]):
        return "n/a"
    return f"{row['ratio']:.2f} ({row['ratio_low']:.2f} to {row['ratio_high']:.2f})"


def fairness_rows(report: FairnessReport, label: str = "rereferral") -> list[dict[str, str]]:
    """One row per judged group that is not its dimension's reference: its disparities, formatted for the card."""
    table = report.disparities
    if table.empty:
        return []
    part = table[table["label"] == label]
    groups = report.groups[report.groups["label"] == label]
    sizes = {
        (str(d), str(g)): int(n) for d, g, n in zip(groups["dimension"], groups["group"], groups["n"], strict=True)
    }
    rows = []
    for (dimension, group), block in part.groupby(["dimension", "group"], sort=False):
        by_metric = {str(r["metric"]): {str(k): v for k, v in r.items()} for r in block.to_dict("records")}
        first = next(iter(by_metric.values()))
        row = {"dimension": str(dimension), "group": str(group), "reference": str(first["reference"]),
               "n": str(sizes[str(dimension), str(group)])}  # fmt: skip
        row |= {f"{m}_difference": _difference(r) for m, r in by_metric.items()}
        row |= {f"{m}_ratio": _ratio(r) for m, r in by_metric.items()}
        rows.append(row)
    return rows


def _need_rows(report: FairnessReport) -> list[dict[str, str]]:
    """Ethnic groups on the need-confirmed label, each with its gap on the re-referrals that found no need."""
    no_need = {r["group"]: r for r in fairness_rows(report, "no_need")}
    return [
        r | {"no_need_gap_difference": no_need.get(r["group"], {}).get("calibration_gap_difference", "n/a")}
        for r in fairness_rows(report, "need_confirmed")
        if r["dimension"] == "ethnic_group"
    ]


def too_few_to_judge(report: FairnessReport) -> dict[str, int]:
    """Groups under the policy's minimum, by dimension (re-referral label)."""
    groups = report.groups
    small = groups[(groups["label"] == "rereferral") & (groups["status"] == TOO_FEW)]
    return {str(k): int(v) for k, v in small.groupby("dimension").size().items()}


def render_model_card(facts: CardFacts) -> str:
    template = _TEMPLATES.get_template("model_card.md.j2")
    context = {f.name: getattr(facts, f.name) for f in fields(facts)}
    checks = {check.population: check for check in facts.gate.calibration}
    rows = facts.split["rows"]
    label = f"{facts.split['test_year']}, this version"
    context["backtest"] = backtest_headline(facts.backtest) | {
        "test_row": test_year_row(label, rows["refit"], facts.test, checks.get("all test closures")),
        "test_row_neglect": test_year_row(label, rows["refit"], facts.neglect, checks.get("neglect population"))
        if facts.neglect else None,
    }  # fmt: skip
    context["learning_rows"] = learning_rows(facts.learning)
    report = facts.gate.fairness
    fairness_audit = None
    if report is not None:
        fairness_audit = {
            "policy": policy_section(facts.policy_text, "fairness"),
            "rows": fairness_rows(report),
            "need_rows": _need_rows(report),
            "too_few": too_few_to_judge(report),
            "blocking": [f.text for f in report.blocking],
            "warnings": [f.text for f in report.warnings],
        }
    return template.render(**context, metric_labels=METRIC_LABELS, n_features=len(FEATURES), fmt=_fmt, num=_num,
                           pct=_pct, fairness_audit=fairness_audit,
                           whatif_policy=policy_section(facts.policy_text, "whatif"),
                           deployment_policy=policy_section(facts.policy_text, "deployment"))  # fmt: skip


def transparency_record(facts: CardFacts) -> dict[str, Any]:
    """Tier 1 and tier 2 of the UK Algorithmic Transparency Recording Standard, filled from the run."""
    return {
        "tier_1": {
            "name": "Case closure re-referral risk",
            "description": "Estimates the probability that a child whose neglect case is closed now is referred to "
            "children's social care again within 12 months, and explains the estimate.",
            "purpose": "Inspections keep finding neglect cases closed too early, without lasting change, so children "
            "come back months later. The tool gives the manager who signs off a closure a calibrated, explained "
            "second opinion while there is still time to act.",
            "how_used": "A team manager reads the score, its band and its reasons in a report before approving a "
            "closure, then records their own decision and its reason. The score never closes or keeps open a case.",
            "contact": "The local authority's children's services data team (owner of this deployment).",
        },
        "tier_2": {
            "owner_and_responsibility": {
                "owner": "Director of children's services of the deploying local authority",
                "accountable_for_decisions": "The team manager who approves or refuses each closure",
                "model_maintenance": "The authority's data team: retraining, promotion, monitoring",
            },
            "description_and_rationale": {
                "scope": "Open child in need episodes; headline population: neglect cases",
                "benefit": "Fewer premature closures; services and partner involvement targeted before closure",
                "alternatives_considered": "Manager judgement alone; a checklist of unresolved factors",
            },
            "decision_making_process": {
                "process": "Score requested when closure is proposed; manager reviews reasons and what could change "
                "the score; decision (close, keep open, step down to early help) recorded with a reason",
                "human_oversight": "Every score is advisory and every decision is made and recorded by a person; "
                "every score is stored with its inputs and explanation so it can be reproduced and contested",
                "appeals": "A family's subject access request to the data protection officer is answered with "
                "every stored score, its inputs, reasons and decisions (closure-risk subject); a score based on wrong "
                "input is annotated and scored again (closure-risk annotate)",
            },
            "technical_specification": {
                "model_version": facts.version,
                "model": "Gradient-boosted trees (LightGBM), calibrated; explanations are exact TreeSHAP values",
                "inputs": [f.label for f in FEATURES],
                "output": "Probability of re-referral within 365 days of closure; band; reasons",
                "test_performance": _performance(facts),
            },
            "data": {
                "source": "The authority's annual Children in Need census returns plus case-management records "
                "(services, partner agencies, visits, plan progress)",
                "data_window": f"returns up to {facts.data_end}",
                "personal_data": "Pseudonymised case identifiers in the audit store; no names; each score's inputs, "
                "reasons and ethnic group sealed there (AES-256-GCM) under a key kept outside it, with the "
                "pseudonym key; ethnicity is used only to audit fairness, never as an input; the training returns "
                "stay with the authority (README: Personal data, and where it lives)",
                "synthetic": facts.synthetic,
            },
            "risks_and_mitigations": {
                "surveillance_bias": "Re-referral partly measures how closely a family is watched: reported in the "
                "model card; calibration and error rates audited by group",
                "automation_bias": "Report states that the score does not decide; reasons and caveats shown",
                "unfairness": "Calibration, flag rate and error rates by sex, ethnic group and detailed ethnicity, "
                "disability, age band, parental factors and their intersections, as disparities against a reference "
                "group with intervals; promotion refused when a group's calibration or record completeness departs "
                "from the reference's beyond chance (the fairness policy, quoted in the model card)",
                "drift": "Outcome monitoring against later returns; out-of-distribution cases flagged",
            },
        },
    }


def _performance(facts: CardFacts) -> str:
    """The record's headline performance: the pooled backtest where there is one, else the test year."""
    test = facts.test
    single = (
        f"ROC AUC {_fmt(test.metrics.roc_auc)}; calibration error {_fmt(test.metrics.ece)}; test year "
        f"{facts.split['test_year']}"
    )
    if facts.backtest is None:
        return single
    booster = facts.backtest.pooled.models[BOOSTER]
    years = ", ".join(str(row.year) for row in facts.backtest.years)
    return (
        f"Rolling-origin backtest, collection years {years} (each trained on the years before it), pooled over "
        f"{booster.n} closures: ROC AUC {_fmt(booster.roc_auc)}; calibration error {_fmt(booster.ece)} (a calibrated "
        f"model shows up to {_num(booster.ece_chance)} at this size); calibration slope {_fmt(booster.slope)}. "
        f"This version's own test year: {single}"
    )


def render_transparency_record(record: dict[str, Any]) -> str:
    return _TEMPLATES.get_template("transparency_record.md.j2").render(record=record)
