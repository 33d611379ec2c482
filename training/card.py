"""The model card (Markdown) and the algorithmic transparency record (JSON and Markdown) of a trained version."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import jinja2

from features import FEATURES
from models import Bands
from outcomes.evaluate import Evaluation, Interval
from training.gate import GateDecision

__all__ = ["CardFacts", "render_model_card", "render_transparency_record", "transparency_record"]

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


def _fmt(interval: Interval | None) -> str:
    if interval is None or math.isnan(interval.value):
        return "n/a"
    return f"{interval.value:.3f} ({interval.low:.3f} to {interval.high:.3f})"


def _num(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


def render_model_card(facts: CardFacts) -> str:
    template = _TEMPLATES.get_template("model_card.md.j2")
    context = {f.name: getattr(facts, f.name) for f in fields(facts)}
    return template.render(**context, metric_labels=METRIC_LABELS, n_features=len(FEATURES), fmt=_fmt, num=_num,
                           pct=_pct)  # fmt: skip


def transparency_record(facts: CardFacts) -> dict[str, Any]:
    """Tier 1 and tier 2 of the UK Algorithmic Transparency Recording Standard, filled from the run."""
    test = facts.test
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
                "test_performance": f"ROC AUC {_fmt(test.metrics.roc_auc)}; calibration error "
                f"{_fmt(test.metrics.ece)}; test year {facts.split['test_year']}",
            },
            "data": {
                "source": "The authority's annual Children in Need census returns plus case-management records "
                "(services, partner agencies, visits, plan progress)",
                "data_window": f"returns up to {facts.data_end}",
                "personal_data": "Pseudonymised case identifiers in the audit store; no names; ethnicity is used "
                "only to audit fairness, never as an input",
                "synthetic": facts.synthetic,
            },
            "risks_and_mitigations": {
                "surveillance_bias": "Re-referral partly measures how closely a family is watched: reported in the "
                "model card; calibration and error rates audited by group",
                "automation_bias": "Report states that the score does not decide; reasons and caveats shown",
                "unfairness": "Calibration error, flag rate and error rates by sex, ethnicity, disability and age "
                "band; promotion refused when a group's calibration error exceeds the set bound",
                "drift": "Outcome monitoring against later returns; out-of-distribution cases flagged",
            },
        },
    }


def render_transparency_record(record: dict[str, Any]) -> str:
    return _TEMPLATES.get_template("transparency_record.md.j2").render(record=record)
