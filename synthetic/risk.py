"""The synthetic authority's causal model of re-referral after closure.

At every closure the simulator computes the true log-odds that the child is referred again within 365 days from
the state of the case on the closure date (and from the family's unobserved vulnerability, which no model can
see). The effects follow the inspection findings in DOMAIN.md: unresolved parental factors, short episodes without
progress, services not completed or long waits, single-agency decisions and earlier re-referrals raise the risk;
completed parenting or counselling work and multi-agency plans lower it. ``README.md`` beside this file tabulates
the same numbers for readers; a test keeps the two equal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["LOG_ODDS", "ClosureState", "true_log_odds", "true_probability"]

# name -> change in log-odds of re-referral within 365 days of closure (per unit where the state is a count).
LOG_ODDS: dict[str, float] = {
    "intercept": -2.00,
    "parental_mental_health": 0.25,  # factor 4B identified at the last assessment
    "domestic_abuse": 0.30,  # 3B
    "parental_alcohol": 0.25,  # 1B
    "parental_drugs": 0.35,  # 2B
    "neglect": 0.25,  # 16A identified, or a protection plan for neglect
    "closed_early_with_factors": 0.45,  # closed within 90 days with parental factors still present
    "goals_unmet_share": 0.90,  # share of plan goals not met at the last review (0..1)
    "service_not_completed": 0.35,  # each service referred but not completed by closure
    "long_wait": 0.25,  # each service that waited more than 60 days to start
    "parenting_completed": -0.60,
    "counselling_completed": -0.40,
    "single_agency": 0.30,  # no partner agency involved in the episode's decisions
    "multi_agency_plan": -0.35,  # three or more partner agencies at plan meetings
    "police_only_strategy": 0.25,  # a strategy discussion with police as the only partner
    "no_recent_visit": 0.30,  # plan episode with no visit in the 42 days before closure
    "prior_rereferral": 0.35,  # each earlier re-referral within 12 months of a closure (up to 3)
    "prior_episode": 0.10,  # each earlier episode (up to 5)
    "prior_protection_plan": 0.20,  # any earlier child protection plan
    "stepped_down_to_early_help": -0.15,  # closure reason RC9
    "under_five": 0.20,
    "fifteen_or_over": -0.35,
    "family_vulnerability": 0.70,  # per standard deviation of the unobserved family factor
}


@dataclass(frozen=True, slots=True)
class ClosureState:
    """What is true about a case on its closure date (some of it never recorded)."""

    age_years: float
    parental_factors: frozenset[str]
    neglect: bool
    days_open: int
    step_down: bool
    had_plan: bool
    goals_met_share: float | None
    services_not_completed: int
    long_waits: int
    parenting_completed: bool
    counselling_completed: bool
    partner_agencies: int
    plan_agencies: int
    police_only_strategy: bool
    days_since_visit: int | None
    prior_episodes: int
    prior_rereferrals: int
    prior_protection_plan: bool
    family_vulnerability: float


_PARENTAL = {
    "4B": "parental_mental_health",
    "3B": "domestic_abuse",
    "1B": "parental_alcohol",
    "2B": "parental_drugs",
}


def true_log_odds(state: ClosureState) -> float:
    """The true log-odds of a re-referral within 365 days of this closure."""
    c = LOG_ODDS
    z = c["intercept"] + c["family_vulnerability"] * state.family_vulnerability
    z += sum(c[name] for code, name in _PARENTAL.items() if code in state.parental_factors)
    z += c["neglect"] * state.neglect
    z += c["closed_early_with_factors"] * (state.days_open <= 90 and bool(state.parental_factors))
    if state.goals_met_share is not None:
        z += c["goals_unmet_share"] * (1.0 - state.goals_met_share)
    z += c["service_not_completed"] * state.services_not_completed
    z += c["long_wait"] * state.long_waits
    z += c["parenting_completed"] * state.parenting_completed
    z += c["counselling_completed"] * state.counselling_completed
    z += c["single_agency"] * (state.partner_agencies == 0)
    z += c["multi_agency_plan"] * (state.plan_agencies >= 3)
    z += c["police_only_strategy"] * state.police_only_strategy
    z += c["no_recent_visit"] * (state.had_plan and (state.days_since_visit is None or state.days_since_visit > 42))
    z += c["prior_rereferral"] * min(state.prior_rereferrals, 3)
    z += c["prior_episode"] * min(state.prior_episodes, 5)
    z += c["prior_protection_plan"] * state.prior_protection_plan
    z += c["stepped_down_to_early_help"] * state.step_down
    z += c["under_five"] * (state.age_years < 5) + c["fifteen_or_over"] * (state.age_years >= 15)
    return z


def true_probability(state: ClosureState) -> float:
    """The true probability of a re-referral within 365 days of this closure."""
    return 1.0 / (1.0 + math.exp(-true_log_odds(state)))
