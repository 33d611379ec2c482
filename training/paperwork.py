"""The statutory paperwork drafted for each model version from what the system knows: a data protection impact
assessment, an equality impact assessment with the ablation of sex and disability, a privacy-notice paragraph for
families, and an Algorithmic Transparency Recording Standard (ATRS v3.0) record with every tier 1 and tier 2 field.

Each field is either filled from the run (metrics, groups, inputs, the routes that exist) or says, in so many words,
``TO_COMPLETE``: the authority's own facts (its name, its lawful basis, its contacts) are never guessed. Written as
Markdown and PDF into the run's folder and logged with the version (``training.run_log``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from features import FEATURES
from training.ablation import Ablation
from training.card import CardFacts

__all__ = [
    "ATRS_FIELDS",
    "ATRS_SOURCES",
    "DOCUMENTS",
    "DPIA_SECTIONS",
    "EQUALITY_SECTIONS",
    "OTHER_SENSITIVE",
    "SPECIAL_CATEGORY",
    "TO_COMPLETE",
    "atrs_record",
    "write_paperwork",
]

TO_COMPLETE = "For the authority to complete."
# Inputs that are special category data (UK GDPR article 9: health, including disability and substance misuse).
SPECIAL_CATEGORY = (
    "disability", "primary_need", "parental_factor_count", "factor_parent_mental_health", "factor_parent_alcohol",
    "factor_parent_drugs", "factor_child_mental_health", "factor_child_learning_disability", "counselling_offered",
    "counselling_started", "counselling_completed", "counselling_days_waiting",
)  # fmt: skip
# Not special category in law, but as sensitive in practice: abuse found, protected characteristics, police.
OTHER_SENSITIVE = (
    "sex", "age_years", "factor_sexual_abuse", "factor_physical_abuse", "factor_emotional_abuse", "factor_neglect",
    "factor_domestic_abuse_parent", "factor_domestic_abuse_child", "factor_exploitation", "police_only_strategy",
)  # fmt: skip
# The routes a family or worker really has; nothing else may be claimed.
ROUTES = {
    "subject_access": "`closure-risk subject --child LAchildID` or `POST /v1/admin/subject` (JSON) and "
    "`POST /v1/admin/subject.pdf` (readable PDF), run by the authority's data protection officer: every score about "
    "the child, its inputs, reasons, what-ifs, decisions and annotations",
    "rectification": "`closure-risk annotate` or `POST /v1/admin/scores/{score_id}/annotations`: a score based on "
    "wrong input is annotated (never edited) and, given the corrected record, scored again",
    "erasure": "`closure-risk retention plan` then `apply --confirm`: records past the retention schedule are erased, "
    "each leaving a tombstone in the audit chain",
}

# ATRS v3.0: every tier 1 and tier 2 field, by its number in the template. (id, section, field)
# Checked against the official sources (stored copies read on 2026-11-30):
# - the template, "Algorithmic Transparency Recording Standard v3.0 for browser":
#   https://docs.google.com/spreadsheets/d/1mZbQoT4RkE84RMx-ENTcPM22DOWLcQy-Vwga18Bieyk/edit
#   (tier 1 is one section, "Overview"; tier 2 has five sections; the metadata tab and the optional dataset card are
#   neither tier and are left to the authority's publication);
# - the section-by-section guidance, whose numbers in brackets are the template's field numbers (1.2, 1.3, 1.4,
#   2.1.1 to 2.1.3, 2.1.4 and its parts 2.1.4.1 to 2.1.4.5):
#   https://www.gov.uk/government/publications/guidance-for-organisations-using-the-algorithmic-transparency-recording-standard
# The tool specification (2.4) holds the tool's own fields (2.4.1 to 2.4.4), then one model specification per model
# listed in 2.4.4 (2.4.4.x) and the data specification (2.4.5.x).
ATRS_SOURCES = (
    "https://docs.google.com/spreadsheets/d/1mZbQoT4RkE84RMx-ENTcPM22DOWLcQy-Vwga18Bieyk/edit",
    "https://www.gov.uk/government/publications/guidance-for-organisations-using-the-algorithmic-transparency-"
    "recording-standard",
)
_T1 = "Tier 1 - Overview"
_OWNER = "Tier 2 - Owner and Responsibility"
_RATIONALE = "Tier 2 - Description and Rationale"
_PROCESS = "Tier 2 - Decision Making Process"
_TOOL = "Tier 2 - Tool Specification"
_MODEL = "Tier 2 - Tool Specification: Model Specification"
_DATA = "Tier 2 - Tool Specification: Data Specification"
_RISKS = "Tier 2 - Risks, Mitigations and Impact Assessments"
ATRS_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("1.1", _T1, "Name"),
    ("1.2", _T1, "Description"),
    ("1.3", _T1, "Website URL"),
    ("1.4", _T1, "Contact email"),
    ("2.1.1", _OWNER, "Organisation"),
    ("2.1.2", _OWNER, "Team"),
    ("2.1.3", _OWNER, "Senior responsible owner"),
    ("2.1.4", _OWNER, "External supplier involvement"),
    ("2.1.4.1", _OWNER, "External supplier"),
    ("2.1.4.2", _OWNER, "Companies House number"),
    ("2.1.4.3", _OWNER, "External supplier role"),
    ("2.1.4.4", _OWNER, "Procurement procedure type"),
    ("2.1.4.5", _OWNER, "Data access terms"),
    ("2.2.1", _RATIONALE, "Detailed description"),
    ("2.2.2", _RATIONALE, "Scope"),
    ("2.2.3", _RATIONALE, "Benefit"),
    ("2.2.4", _RATIONALE, "Previous process"),
    ("2.2.5", _RATIONALE, "Alternatives considered"),
    ("2.3.1", _PROCESS, "Process integration"),
    ("2.3.2", _PROCESS, "Provided information"),
    ("2.3.3", _PROCESS, "Frequency and scale of usage"),
    ("2.3.4", _PROCESS, "Human decisions and review"),
    ("2.3.5", _PROCESS, "Required training"),
    ("2.3.6", _PROCESS, "Appeals and review"),
    ("2.4.1", _TOOL, "System architecture"),
    ("2.4.2", _TOOL, "Phase"),
    ("2.4.3", _TOOL, "Maintenance"),
    ("2.4.4", _TOOL, "Models"),
    ("2.4.4.1", _MODEL, "Model name"),
    ("2.4.4.2", _MODEL, "Model version"),
    ("2.4.4.3", _MODEL, "Model task"),
    ("2.4.4.4", _MODEL, "Model input"),
    ("2.4.4.5", _MODEL, "Model output"),
    ("2.4.4.6", _MODEL, "Model architecture"),
    ("2.4.4.7", _MODEL, "Model performance"),
    ("2.4.4.8", _MODEL, "Datasets"),
    ("2.4.4.9", _MODEL, "Dataset purposes"),
    ("2.4.5.1", _DATA, "Source data name"),
    ("2.4.5.2", _DATA, "Data modality"),
    ("2.4.5.3", _DATA, "Data description"),
    ("2.4.5.4", _DATA, "Data quantities"),
    ("2.4.5.5", _DATA, "Sensitive attributes"),
    ("2.4.5.6", _DATA, "Data completeness and representativeness"),
    ("2.4.5.7", _DATA, "Source data URL"),
    ("2.4.5.8", _DATA, "Data collection"),
    ("2.4.5.9", _DATA, "Data cleaning"),
    ("2.4.5.10", _DATA, "Data sharing agreements"),
    ("2.4.5.11", _DATA, "Data access and storage"),
    ("2.5.1", _RISKS, "Impact assessments"),
    ("2.5.2", _RISKS, "Risks and mitigations"),
)
DPIA_SECTIONS = (
    "Processing", "Data categories", "Special category inputs", "Lawful basis and special category condition",
    "Necessity and proportionality", "Risks and measured mitigations", "Fairness results", "Data subjects' rights",
    "Retention", "Residual risks a person must judge",
)  # fmt: skip
EQUALITY_SECTIONS = (
    "Groups", "Measured gaps", "Protected characteristics used as inputs", "Ablation", "For the authority to judge",
)  # fmt: skip
DOCUMENTS = ("dpia", "equality_impact", "privacy_notice", "atrs_record")

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates" / "paperwork"),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,  # Markdown, not HTML
)


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _labels(names: tuple[str, ...]) -> list[str]:
    by_name = {spec.name: spec.label for spec in FEATURES}
    return [f"{by_name[n]} (`{n}`)" for n in names if n in by_name]


@dataclass(frozen=True)
class PaperworkFacts:
    card: CardFacts
    ablation: Ablation | None
    retention_source: str


def atrs_record(facts: PaperworkFacts) -> dict[str, str]:
    """Every ATRS field's text, by its number: filled from the run, or ``TO_COMPLETE``."""
    card, test = facts.card, facts.card.test
    metrics = test.metrics
    inputs = ", ".join(spec.label for spec in FEATURES)
    filled = {
        "1.1": "Case closure re-referral risk",
        "1.2": "Before a manager approves closing a child in need case, the tool estimates how likely the child is to "
        "be referred to children's social care again within 12 months, and shows what pushes that estimate up or "
        "down and what could still change it. The manager decides; the estimate is advisory.",
        "2.1.4": "None: built and run by the authority (open-source Python: LightGBM, scikit-learn, SHAP, FastAPI, "
        "MLflow).",
        "2.1.4.1": "Not applicable: no external supplier.",
        "2.1.4.2": "Not applicable: no external supplier.",
        "2.1.4.3": "Not applicable: no external supplier.",
        "2.1.4.4": "Not applicable: no procurement.",
        "2.1.4.5": "Not applicable: no supplier has access to the data.",
        "2.2.1": f"A gradient-boosted tree model (LightGBM) with {len(FEATURES)} inputs built from the Children in "
        "Need census and case-management records scores an open case on request; the probability is calibrated, each "
        "input's contribution is exact (TreeSHAP), and what-ifs re-score the case with one actionable thing changed. "
        "Every score, decision and read is kept in a hash-chained audit store.",
        "2.2.2": "Open child in need episodes, reported on the neglect population; not for looked-after children, "
        "not for decisions other than closure.",
        "2.2.3": "Fewer premature closures of neglect cases; services and partner involvement put in place before "
        "closure.",
        "2.2.4": "The manager's judgement at closure, with case-file audit afterwards.",
        "2.2.5": "Manager judgement alone; a checklist of unresolved factors; a logistic regression (reported beside "
        "the model in every training run).",
        "2.3.1": "Scored when closure is proposed; the report is read before the decision form is completed.",
        "2.3.2": "A report: the estimate in words and as a percentage, its band and what the band has meant, every "
        "factor's contribution, what-ifs, the model's test performance and its record for the child's groups, and "
        "what the estimate is not.",
        "2.3.4": "Every decision is made by a manager and recorded with its reason, the manager's view of the "
        "estimate (agree, higher, lower), the grounds weighed (the child's voice, family strengths, partner "
        "agencies' views, multi-agency discussion) and the time the report was open; leads see a review of decisions "
        "with agreement and override rates by band, team and group.",
        "2.3.6": "Subject access: " + ROUTES["subject_access"] + ". Rectification: " + ROUTES["rectification"] + ".",
        "2.4.1": "A FastAPI service with a PostgreSQL or SQLite audit store, an MLflow registry of model versions, "
        "batch scoring (local or Spark) through the same code.",
        "2.4.2": "Pre-deployment" if card.synthetic else TO_COMPLETE,
        "2.4.3": "Retrained on each new census return; each version passes a promotion gate (calibration by chance "
        "bounds, group calibration, against the champion) and a person promotes it; monitoring joins later returns "
        "to past scores. Once the tool is in use (its date set in the gate's policy), every retrained version is also "
        "judged on a pre-deployment hold-out and refused when worse there than the champion beyond chance.",
        "2.4.4": "One model per version: gradient-boosted trees with a calibrator (Platt or isotonic).",
        "2.4.4.1": card.name,
        "2.4.4.2": card.version,
        "2.4.4.3": "Binary classification: re-referral within 365 days of closure, as a calibrated probability.",
        "2.4.4.4": inputs,
        "2.4.4.5": "Probability, band (low, medium, high), each input's contribution, what-ifs.",
        "2.4.4.6": "LightGBM gradient-boosted trees with monotone constraints where the direction is known; calibrated "
        f"by {card.calibrator} scaling on out-of-fold scores.",
        "2.4.4.7": f"Test year {card.split.get('test_year')}: ROC AUC {_num(metrics.roc_auc.value)} "
        f"({_num(metrics.roc_auc.low)} to {_num(metrics.roc_auc.high)}), calibration error {_num(metrics.ece.value)}, "
        f"Brier score {_num(metrics.brier.value)}; {test.n} closures.",
        "2.4.4.8": f"Training years {card.split.get('train_years')}, validation year "
        f"{card.split.get('validation_year')}, test year {card.split.get('test_year')}"
        + (" (a synthetic authority)" if card.synthetic else ""),
        "2.4.4.9": "Training: fit the trees; validation: stop early, choose the setting, fit the calibrator and bands; "
        "test: every reported figure.",
        "2.4.5.1": "Children in Need census returns (DfE) and the authority's case-management extension"
        + (" — here a synthetic authority generated by the project" if card.synthetic else ""),
        "2.4.5.2": "Tabular",
        "2.4.5.3": "One row per closed episode: the child's characteristics, the episode's assessments, plans, "
        "enquiries, services, partner agencies, visits and plan progress, and whether the child was referred again "
        "within 365 days of closure.",
        "2.4.5.4": f"{test.n} test closures; data up to {card.data_end}.",
        "2.4.5.5": "Special category (health): "
        + "; ".join(_labels(SPECIAL_CATEGORY))
        + ". Also sensitive: "
        + "; ".join(_labels(OTHER_SENSITIVE))
        + ". Ethnicity is never an input; it is used only to audit fairness.",
        "2.4.5.6": "Re-referrals to another authority are invisible; re-referral also measures how closely a family is "
        "watched; outcomes after deployment are observed only for the cases managers chose to close.",
        "2.4.5.8": "Statutory census returns and case records kept in the course of children's social care.",
        "2.4.5.9": "Returns are validated against the census rules; a broken child is reported and left out, never "
        "guessed; linking across years reports what a later return changes.",
        "2.4.5.11": "Pseudonymous case ids (HMAC with a key outside the store); stored inputs kept for reproduction "
        "and contest; every row hash-chained; records past the retention schedule erased with a tombstone.",
        "2.5.1": "A DPIA draft and an equality impact draft are generated with this record for this version; the "
        "authority completes and signs them.",
        "2.5.2": "Automation bias: the report says the score does not decide, and the review of decisions measures "
        "deference. Surveillance bias: stated, audited by group. Unfairness: calibration by group, gated. Drift and "
        "selective outcomes: monitoring against later returns with a warning that only closed cases show outcomes.",
    }
    return {field_id: filled.get(field_id, TO_COMPLETE) for field_id, _, _ in ATRS_FIELDS}


def _render(name: str, facts: PaperworkFacts, **extra: Any) -> str:
    card = facts.card
    return _TEMPLATES.get_template(f"{name}.md.j2").render(
        card=card, ablation=facts.ablation, metrics=card.test.metrics, num=_num, TO_COMPLETE=TO_COMPLETE,
        special=_labels(SPECIAL_CATEGORY), sensitive=_labels(OTHER_SENSITIVE), routes=ROUTES,
        retention_source=facts.retention_source, fields=ATRS_FIELDS, sources=ATRS_SOURCES, **extra,
    )  # fmt: skip


def write_paperwork(facts: PaperworkFacts, folder: Path, *, pdf: bool = True) -> list[Path]:
    """Write each document as Markdown (and PDF) into ``folder``; the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    texts = {
        "dpia": _render("dpia", facts),
        "equality_impact": _render("equality_impact", facts),
        "privacy_notice": _render("privacy_notice", facts),
        "atrs_record": _render("atrs_record", facts, record=atrs_record(facts)),
    }
    written = []
    for name, text in texts.items():
        path = folder / f"{name}.md"
        path.write_text(text, encoding="utf-8")
        written.append(path)
        if pdf:
            written.append(_write_pdf(text, folder / f"{name}.pdf"))
    return written


def _write_pdf(markdown: str, path: Path) -> Path:
    from markdown_it import MarkdownIt
    from weasyprint import HTML

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    style = ("@page{size:A4;margin:18mm}body{font-family:'DejaVu Sans',sans-serif;font-size:10pt;line-height:1.4}"
             "table{border-collapse:collapse}td,th{border:1px solid #98a2b3;padding:2pt 4pt}")  # fmt: skip
    HTML(string=f"<!doctype html><meta charset='utf-8'><style>{style}</style>{body}").write_pdf(str(path))
    return path
