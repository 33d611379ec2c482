"""Interventions on the truth: how a closure's true risk moves when what the team can act on is different.

The simulator keeps, with every closure, the state its true risk was computed from (``ClosureState``: some of it
never recorded, like the family's vulnerability). An intervention changes the recorded facts of the closing
episode (a service completed, health at the plan meeting, a visit on the closure date, goals met) and leaves the
rest of the child's life as it was: the same child, the same seed, only the changed facts recomputed by the same
rules the simulator used. The difference in the true probability is the change's real effect on that child, free
of the confounding a model learns from (engaged families complete services *and* are re-referred less).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from features import Episode
from synthetic.risk import ClosureState, true_probability

__all__ = ["recorded_state", "true_change"]


def recorded_state(state: ClosureState, episode: Episode, closure: dt.date) -> ClosureState:
    """``state`` with the parts the closing episode's extension records recomputed from ``episode``, as the
    simulator computes them on the closure date; a part whose record is missing is left as it was."""
    update: dict[str, object] = {}
    if episode.services is not None:
        services = [s for s in episode.services if s.referred_date <= closure]
        update |= {
            "services_not_completed": sum(s.completed is not True for s in services),
            "long_waits": sum(((s.start_date or closure) - s.referred_date).days > 60 for s in services),
            "parenting_completed": any(s.service == "parenting_programme" and s.completed for s in services),
            "counselling_completed": any(s.service == "counselling" and s.completed for s in services),
        }
    if episode.agencies is not None:
        agencies = [a for a in episode.agencies if a.date <= closure]
        strategy = {a.agency for a in agencies if a.forum == "strategy_discussion"}
        update |= {
            "partner_agencies": len({a.agency for a in agencies}),
            "plan_agencies": len({a.agency for a in agencies if a.forum == "plan_meeting"}),
            "police_only_strategy": strategy == {"police"},
        }
    if episode.visits is not None:
        days = [(closure - v.date).days for v in episode.visits if v.date <= closure]
        update["days_since_visit"] = min(days) if days else None
    if episode.plan_reviews:
        last = episode.plan_reviews[-1]
        update["goals_met_share"] = last.goals_met / last.goals_set if last.goals_set else state.goals_met_share
    return dataclasses.replace(state, **update)  # type: ignore[arg-type]


def true_change(
    state: ClosureState, before: Episode, after: Episode, closure: dt.date, *, extra_log_odds: float = 0.0
) -> float:
    """The true probability of re-referral with the episode as ``after`` minus as ``before`` (same child, same day).

    ``extra_log_odds`` is any planted effect on top of the risk function (``biases.py``); 0 in the calibrated
    authority."""
    import math

    def probability(s: ClosureState) -> float:
        if not extra_log_odds:
            return true_probability(s)
        p = true_probability(s)
        return 1.0 / (1.0 + math.exp(-(math.log(p / (1 - p)) + extra_log_odds)))

    return probability(recorded_state(state, after, closure)) - probability(recorded_state(state, before, closure))
