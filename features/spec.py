"""The feature specification: what each model input is, in words a team manager understands.

Shipped with the code and, later, inside every model bundle. ``build_features`` produces exactly these columns,
in this order. ``actionable`` marks what the team could still change before closing the case; ``direction`` is
the domain's expectation (+1 raises the risk of re-referral, -1 lowers it, 0 where the evidence does not say),
which the explanation report and monotone constraints can lean on. Ethnicity is never a feature.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Literal

from features.codes import AbuseCategory, PrimaryNeed, ReferralSource, Sex

__all__ = ["FEATURES", "FEATURE_NAMES", "FeatureGroup", "FeatureSpec", "feature_spec", "spec_as_dicts"]

Kind = Literal["numeric", "binary", "categorical"]


class FeatureGroup(StrEnum):
    CHILD = "child"
    EPISODE = "current episode"
    HISTORY = "history"
    SERVICES = "services"
    PARTNERS = "partner agencies"
    VISITS = "visits"
    PROGRESS = "plan progress"


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    name: str
    label: str
    group: FeatureGroup
    kind: Kind
    actionable: bool = False
    direction: int = 0
    categories: tuple[str, ...] = ()
    extension: bool = False  # comes from the case-management extension: missing when not recorded


def _num(name: str, label: str, group: FeatureGroup, **kw: object) -> FeatureSpec:
    return FeatureSpec(name, label, group, "numeric", **kw)  # type: ignore[arg-type]


def _bin(name: str, label: str, group: FeatureGroup, **kw: object) -> FeatureSpec:
    return FeatureSpec(name, label, group, "binary", **kw)  # type: ignore[arg-type]


def _cat(name: str, label: str, group: FeatureGroup, categories: tuple[str, ...]) -> FeatureSpec:
    return FeatureSpec(name, label, group, "categorical", categories=categories)


C, E, H, S, P, V, G = (FeatureGroup.CHILD, FeatureGroup.EPISODE, FeatureGroup.HISTORY, FeatureGroup.SERVICES,
                       FeatureGroup.PARTNERS, FeatureGroup.VISITS, FeatureGroup.PROGRESS)  # fmt: skip

# Factors identified at the latest authorised assessment of the episode that the model reads one by one.
FACTOR_FEATURES: tuple[tuple[str, tuple[str, ...], str, int], ...] = (
    ("factor_neglect", ("16A",), "Assessment found neglect", +1),
    ("factor_emotional_abuse", ("17A",), "Assessment found emotional abuse", 0),
    ("factor_physical_abuse", ("18A", "18B", "18C"), "Assessment found physical abuse", 0),
    ("factor_sexual_abuse", ("19A", "19B", "19C"), "Assessment found sexual abuse", 0),
    ("factor_parent_mental_health", ("4B",), "Assessment found parental mental ill health", +1),
    ("factor_domestic_abuse_parent", ("3B",), "Assessment found domestic abuse against a parent", +1),
    ("factor_domestic_abuse_child", ("3A",), "Assessment found domestic abuse against the child", 0),
    ("factor_parent_alcohol", ("1B",), "Assessment found parental alcohol misuse", +1),
    ("factor_parent_drugs", ("2B",), "Assessment found parental drug misuse", +1),
    ("factor_child_mental_health", ("4A",), "Assessment found the child's mental ill health", 0),
    ("factor_child_learning_disability", ("5A",), "Assessment found the child's learning disability", 0),
    ("factor_child_behaviour", ("14A", "15A", "10A"), "Assessment found behaviour, self-harm or going missing", 0),
    ("factor_exploitation", ("11A", "24A", "13A", "12A"), "Assessment found exploitation, gangs or trafficking", 0),
    ("factor_other", ("20",), "Assessment found other factors", 0),
)  # fmt: skip

FEATURES: tuple[FeatureSpec, ...] = (
    # the child
    _num("age_years", "Child's age (years)", C),
    _cat("sex", "Child's sex", C, tuple(s.value for s in Sex)),
    _bin("disability", "Child has a recorded disability", C),
    # the current episode
    _num("days_open", "Days since this referral", E),
    _cat("referral_source", "Who made this referral", E, tuple(s.value for s in ReferralSource)),
    _cat("primary_need", "Primary need at assessment", E, tuple(s.value for s in PrimaryNeed)),
    _bin("referral_nfa", "Referral marked no further action", E),
    _num("assessments", "Assessments in this episode", E),
    _bin("assessment_in_progress", "An assessment is not yet authorised", E, actionable=True),
    _num("days_since_assessment", "Days since the latest assessment was authorised", E),
    _num("factor_count", "Factors identified at the latest assessment", E, direction=+1),
    _num("parental_factor_count", "Parental factors identified (mental health, domestic abuse, alcohol, drugs)", E,
         direction=+1),
    *(_bin(name, label, E, direction=direction) for name, _, label, direction in FACTOR_FEATURES),
    _num("section47_enquiries", "Section 47 enquiries in this episode", E),
    _bin("conference_held", "Initial child protection conference held", E),
    _bin("protection_plan_active", "Child protection plan open now", E),
    _bin("protection_plan_in_episode", "Child protection plan during this episode", E),
    _cat("protection_plan_category", "Category of the latest child protection plan", E,
         tuple(c.value for c in AbuseCategory)),
    _num("protection_plan_days", "Days on a child protection plan in this episode", E),
    _num("protection_plan_reviews", "Child protection plan reviews held", E),
    _num("previous_protection_plans", "Earlier child protection plans (as recorded on the plan)", E, direction=+1),
    # No "CIN plan open now": a plan always ends by the day its case closes, so at training the feature would be
    # constant, and at serving it would flag almost every open case as unlike any closed one.
    _num("cin_plan_days", "Days on a child in need plan in this episode", E),
    # history
    _num("prior_episodes", "Earlier episodes of need", H, direction=+1),
    _num("referrals_12m", "Earlier referrals in the last 12 months", H, direction=+1),
    _num("referrals_24m", "Earlier referrals in the last 24 months", H, direction=+1),
    _num("referrals_36m", "Earlier referrals in the last 36 months", H, direction=+1),
    _num("prior_rereferrals", "Earlier re-referrals within 12 months of a closure", H, direction=+1),
    _bin("rereferral_now", "This referral came within 12 months of an earlier closure", H, direction=+1),
    _num("days_since_last_closure", "Days since an earlier episode was closed", H),
    _num("prior_protection_plans", "Earlier episodes with a child protection plan", H, direction=+1),
    # services (extension)
    _num("services_offered", "Services the family was referred to", S, extension=True),
    _num("services_completed", "Services completed", S, extension=True, direction=-1),
    _num("services_pending", "Services referred to but not yet started", S, actionable=True, direction=+1,
         extension=True),
    _num("services_not_completed", "Services started but ended without completing", S, actionable=True,
         direction=+1, extension=True),
    _bin("parenting_offered", "Parenting programme: referred", S, extension=True),
    _bin("parenting_started", "Parenting programme: started", S, extension=True),
    _bin("parenting_completed", "Parenting programme: completed", S, actionable=True, direction=-1, extension=True),
    _num("parenting_days_waiting", "Parenting programme: days waiting, not yet started", S, actionable=True,
         direction=+1, extension=True),
    _bin("counselling_offered", "Counselling: referred", S, extension=True),
    _bin("counselling_started", "Counselling: started", S, extension=True),
    _bin("counselling_completed", "Counselling: completed", S, actionable=True, direction=-1, extension=True),
    _num("counselling_days_waiting", "Counselling: days waiting, not yet started", S, actionable=True,
         direction=+1, extension=True),
    _num("longest_wait_days", "Longest wait for a service to start (days)", S, actionable=True, direction=+1,
         extension=True),
    _num("long_waits", "Services that waited more than 60 days to start", S, actionable=True, direction=+1,
         extension=True),
    # partner agencies (extension)
    _num("partner_agencies", "Partner agencies involved in decisions", P, actionable=True, direction=-1,
         extension=True),
    _bin("health_involved", "Health involved in decisions", P, actionable=True, direction=-1, extension=True),
    _bin("education_involved", "Education involved in decisions", P, actionable=True, extension=True),
    _num("plan_meeting_agencies", "Partner agencies at plan meetings", P, actionable=True, direction=-1,
         extension=True),
    _num("strategy_discussions", "Strategy discussions held", P, extension=True),
    _bin("police_only_strategy", "A strategy discussion involved police as the only partner", P, actionable=True,
         direction=+1, extension=True),
    # visits (extension)
    _num("visits_90d", "Visits in the last 90 days", V, actionable=True, direction=-1, extension=True),
    _num("days_since_visit", "Days since the last visit", V, actionable=True, direction=+1, extension=True),
    _num("child_seen_share_90d", "Share of visits in the last 90 days where the child was seen", V,
         actionable=True, extension=True),
    # plan progress (extension)
    _num("plan_reviews", "Plan reviews held", G, extension=True),
    _num("goals_met_share", "Share of plan goals met at the latest review", G, actionable=True, direction=-1,
         extension=True),
    _num("goals_met_change", "Change in the share of goals met since the first review", G, actionable=True,
         direction=-1, extension=True),
)  # fmt: skip

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
_BY_NAME = {f.name: f for f in FEATURES}


def feature_spec(name: str) -> FeatureSpec:
    """The specification of one feature; KeyError for a name that is not a feature."""
    return _BY_NAME[name]


def spec_as_dicts() -> list[dict[str, object]]:
    """The specification as plain data (for a model bundle, a model card or the API)."""
    return [{**asdict(f), "group": f.group.value, "categories": list(f.categories)} for f in FEATURES]
