"""Simulate children's lives in one local authority: referrals, assessments, plans, services and closures.

Each child is simulated on its own random stream (seeded from the cohort seed and the child's index), so a cohort
is the same for the same seed whatever the order or the number of processes that make it. Dates are day ordinals
while simulating. The parameters here and in ``draws.py`` (the population's mixes, a family's and an assessment's
draws) are set so that the cohort matches DfE's published figures for England (``shared/reference/dfe-statistics``)
within the tolerances the tests state; the re-referral risk at each closure comes from ``risk.py``.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from features import ChildRecord
from synthetic.biases import P_EXTENSION_MISSING, PlantedBiases
from synthetic.draws import (
    ABUSE,
    CATEGORY_WEIGHT,
    DISABILITY,
    ETHNICITY,
    FIRST_AGE,
    OTHER_NEED,
    P_NFA,
    PARENTAL_CODES,
    SERVICE_LENGTH,
    SERVICE_WAIT,
    SEX,
    SOURCES,
    assessment_factors,
    draw_family,
    iso_date,
    lognormal_days,
    sigmoid,
    spaced_days,
)
from synthetic.risk import ClosureState, true_log_odds

__all__ = ["SimulatedChild", "TruthRow", "Window", "simulate_child"]

_YEAR = 365.25


@dataclass(frozen=True)
class Window:
    """Census collection years ``start``..``end``: from 1 April start-1 to 31 March end, after a burn-in."""

    start: int
    end: int
    burn_in_years: int = 3
    # A population setting, not a calendar one: years added to every child's age at first referral (0 is the
    # calibrated authority; a positive shift simulates an authority whose referrals turn older, for drift tests).
    referral_age_shift_years: float = 0.0
    # Biases planted in one group (``biases.py``); none in the calibrated authority.
    biases: PlantedBiases = field(default_factory=PlantedBiases)

    @property
    def data_start(self) -> dt.date:
        return dt.date(self.start - 1, 4, 1)

    @property
    def data_end(self) -> dt.date:
        return dt.date(self.end, 3, 31)

    @property
    def simulation_start(self) -> dt.date:
        return dt.date(self.start - 1 - self.burn_in_years, 4, 1)


@dataclass(frozen=True, slots=True)
class TruthRow:
    """One closure: its true probability of re-referral within 365 days and what happened."""

    la_child_id: str
    referral_date: dt.date
    closure_date: dt.date
    closure_reason: str
    age_at_closure: float
    true_probability: float
    rereferred_within_365: bool
    next_referral_date: dt.date | None
    # What the true probability was computed from (``intervene.py`` changes it to find a change's true effect).
    state: ClosureState | None = field(default=None, repr=False, compare=False)


@dataclass
class SimulatedChild:
    record: ChildRecord
    truth: list[TruthRow]


@dataclass
class _Episode:
    """The episode being simulated: JSON-form fields plus what the risk model needs."""

    data: dict[str, Any] = field(default_factory=dict)
    factors: set[str] = field(default_factory=set)
    neglect_plan: bool = False


class _ChildSimulator:
    def __init__(self, rng: random.Random, window: Window, la_child_id: str, ethnicity: str | None = None) -> None:
        self.rng = rng
        self.window = window
        self.la_child_id = la_child_id
        # Known from the start only when a planted bias needs it; otherwise drawn last, as it always was.
        self.ethnicity = ethnicity
        self.biases = window.biases
        self.surveillance_referral = False  # the next referral comes from closer watching, not from need
        start, end = window.simulation_start.toordinal(), window.data_end.toordinal()
        first = rng.randint(start, end)
        age = min(int(FIRST_AGE.draw(rng)) + rng.random() + window.referral_age_shift_years, 17.8)
        self.birth = first - int(age * _YEAR)
        born = dt.date.fromordinal(self.birth)
        self.eighteenth = dt.date(born.year + 18, born.month, min(born.day, 28)).toordinal()
        self.first_referral = first
        self.sex = SEX.draw(rng)
        self.family = draw_family(rng)

    def age(self, day: int) -> float:
        return (day - self.birth) / _YEAR

    def run(self) -> SimulatedChild:
        rng, fam = self.rng, self.family
        eighteenth = self.eighteenth
        episodes: list[dict[str, Any]] = []
        truth: list[TruthRow] = []
        referral: int | None = self.first_referral
        data_end = self.window.data_end.toordinal()
        # Every referral before 18 is simulated (the episode is cut short at 18), so the truth matches the data.
        while referral is not None and referral <= data_end and referral < eighteenth - 1:
            is_rereferral = fam.last_closure is not None and referral - fam.last_closure <= 365
            episode, state = self._episode(referral, eighteenth - 1)
            episodes.append(episode.data)
            closure = dt.date.fromisoformat(episode.data["closure_date"]).toordinal()
            reason = episode.data["closure_reason"]
            fam.prior_episodes += 1
            fam.prior_rereferrals += is_rereferral
            fam.prior_plans += bool(episode.data["protection_plans"])
            fam.last_closure = closure
            if reason not in ("RC7", "RC8", "RC9"):
                break
            z = true_log_odds(state)
            biases, ethnicity = self.biases, self.ethnicity
            if biases.applies("undermeasured", ethnicity):
                z += biases.undermeasured_log_odds
            p = 1.0 / (1.0 + math.exp(-z))
            if biases.applies("surveillance", ethnicity):
                p_need, p = p, 1.0 / (1.0 + math.exp(-(z + biases.surveillance_log_odds)))
            else:
                p_need = p
            roll = rng.random()
            self.surveillance_referral = p_need <= roll < p
            moved = False
            if roll < p:
                nxt: int | None = closure + 1 + int(364 * rng.betavariate(1.1, 1.7))
                # the family moved: the re-referral is real, but another authority's
                moved = biases.applies("elsewhere", ethnicity) and rng.random() < biases.elsewhere_share
            elif rng.random() < sigmoid(-0.9 + 0.5 * fam.vulnerability):
                nxt = closure + 366 + int(rng.expovariate(1 / 700))
            else:
                nxt = None
            within = nxt is not None and nxt - closure <= 365 and nxt < eighteenth
            truth.append(TruthRow(
                la_child_id=self.la_child_id,
                referral_date=dt.date.fromordinal(referral),
                closure_date=dt.date.fromordinal(closure),
                closure_reason=reason,
                age_at_closure=round(self.age(closure), 3),
                true_probability=p,
                rereferred_within_365=within,
                next_referral_date=dt.date.fromordinal(nxt) if nxt is not None and nxt < eighteenth else None,
                state=state,
            ))  # fmt: skip
            referral = None if moved else nxt
        drawn = ETHNICITY.draw(rng)  # drawn even when known already, so the stream is the same either way
        record = ChildRecord.model_validate({
            "la_child_id": self.la_child_id,
            "birth_date": iso_date(self.birth),
            "sex": self.sex,
            "ethnicity": self.ethnicity or drawn,
            "disabilities": self._disabilities(),
            "episodes": episodes,
        })  # fmt: skip
        return SimulatedChild(record=record, truth=truth)

    def _disabilities(self) -> list[str]:
        rng = self.rng
        roll = rng.random()
        if self.family.child_ld or roll < 0.10:
            codes = {"LD"} if self.family.child_ld else {DISABILITY.draw(rng)}
            if rng.random() < 0.3:
                codes.add(DISABILITY.draw(rng))
            return sorted(codes)
        return [] if roll > 0.93 else ["NONE"]

    # -- one episode --------------------------------------------------------------------------------------------

    def _episode(self, referral: int, last_day: int) -> tuple[_Episode, ClosureState]:
        rng, fam = self.rng, self.family
        u = fam.vulnerability
        quality = rng.gauss(0.0, 1.0)  # the team's practice on this episode: partners, waits, visits
        ep = _Episode()
        data = ep.data
        data.update(referral_date=iso_date(referral), referral_source=SOURCES.draw(rng), referral_nfa=False,
                    assessments=[], cin_plans=[], section47s=[], protection_plans=[])  # fmt: skip
        services: list[dict[str, Any]] = []
        agencies: list[dict[str, Any]] = []
        visits: list[int] = []
        reviews: list[dict[str, Any]] = []
        age = self.age(referral)
        school_age = 4 <= age < 17

        surveillance, self.surveillance_referral = self.surveillance_referral, False
        if rng.random() < P_NFA or surveillance:
            data.update(referral_nfa=True, closure_date=iso_date(referral), closure_reason="RC8", primary_need="N9")
            closure = referral
        else:
            start = min(referral + rng.randint(0, 5), last_day)
            authorised = min(start + int(rng.triangular(7, 45, 22)), last_day)
            factors = assessment_factors(rng, fam, age, self.sex)
            ep.factors = factors
            abuse = [c for c in ABUSE if c in factors]
            visits += sorted({start + rng.randint(0, max(0, authorised - start)) for _ in range(rng.randint(1, 2))})
            for agency, p in (("health", sigmoid(-0.2 + 0.6 * quality)), ("education", 0.6 * school_age),
                              ("adult_mental_health", 0.3 * ("4B" in factors)),
                              ("substance_misuse", 0.35 * bool(factors & {"1B", "2B"})),
                              ("probation", 0.15 * ("3B" in factors))):  # fmt: skip
                if rng.random() < p:
                    agencies.append(
                        {
                            "agency": agency,
                            "forum": "assessment",
                            "date": iso_date(rng.randint(start, authorised)),
                        }
                    )
            plan_start: int | None = None
            protection = icpc_held = False
            if rng.random() < sigmoid(
                -2.3 + 1.5 * bool(abuse) + 1.0 * ("16A" in factors) + 0.4 * u + 1.1 * (fam.prior_plans > 0)
            ):
                s47 = min(start + rng.randint(0, 10), authorised)
                conference = rng.random() < 0.5 + 0.2 * (fam.prior_plans > 0) and s47 + 20 < last_day
                icpc = s47 + rng.randint(8, 20) if conference else None
                data["section47s"].append({"start_date": iso_date(s47), "icpc_target_date": iso_date(s47 + 15),
                                           "icpc_date": iso_date(icpc) if icpc else None,
                                           "icpc_not_required": not conference})  # fmt: skip
                partners = [a for a, p in (("police", 0.95), ("health", sigmoid(0.0 + 0.7 * quality)),
                                           ("education", 0.45 * school_age)) if rng.random() < p]  # fmt: skip
                for agency in partners:
                    agencies.append({"agency": agency, "forum": "strategy_discussion", "date": iso_date(s47)})
                if icpc is not None:
                    icpc_held = True
                    data["initial_cpc_date"] = iso_date(icpc)
                    if rng.random() < 0.85:
                        protection, plan_start = True, icpc
            # A conference held means the child is in need: the episode goes on to a plan.
            in_need = (
                protection
                or icpc_held
                or rng.random()
                < sigmoid(-0.5 + 0.45 * len(factors & set(PARENTAL_CODES)) + 0.7 * bool(abuse) + 0.3 * u)
            )
            if not in_need:
                if not factors:
                    factors.add("21")
                closure = min(authorised + rng.randint(0, 7), last_day)
                data.update(closure_date=iso_date(closure), closure_reason="RC8" if rng.random() < 0.6 else "RC9")
            else:
                first_after_assessment = max(
                    authorised,
                    dt.date.fromisoformat(data.get("initial_cpc_date") or iso_date(authorised)).toordinal(),
                )
                closure = self._plan(ep, first_after_assessment, authorised, plan_start, protection, abuse,
                                     quality, last_day, services, agencies, visits, reviews)  # fmt: skip
                if not factors:
                    factors.add("20")
            data["assessments"].append({"start_date": iso_date(start), "authorisation_date": iso_date(authorised),
                                        "factors": sorted(factors)})  # fmt: skip
            if abuse:
                data["primary_need"] = "N1"
            elif fam.child_ld and rng.random() < 0.5:
                data["primary_need"] = "N2"
            else:
                data["primary_need"] = "N9" if data["closure_reason"] == "RC8" else OTHER_NEED.draw(rng)

        state = self._closure_state(ep, referral, closure, services, agencies, visits, reviews)
        self._attach_extension(data, services, agencies, visits, reviews)
        return ep, state

    def _plan(self, ep: _Episode, earliest_closure: int, authorised: int, cpp_start: int | None, protection: bool,
              abuse: list[str], quality: float, last_day: int, services: list[dict[str, Any]],
              agencies: list[dict[str, Any]], visits: list[int], reviews: list[dict[str, Any]]) -> int:  # fmt: skip
        """Protection and/or CIN plan, services, partners, visits and reviews; returns the closure day."""
        rng, fam, data = self.rng, self.family, ep.data
        u = fam.vulnerability
        engagement = sigmoid(0.3 - 0.9 * u + 0.4 * quality + rng.gauss(0.0, 0.6))
        if protection and cpp_start is not None:
            if not abuse:  # the conference named the harm; the assessment records the matching factor
                abuse.append("16A" if rng.random() < 0.75 else "17A")
                ep.factors.add(abuse[0])
            weights = [(CATEGORY_WEIGHT[c][0], CATEGORY_WEIGHT[c][1]) for c in abuse]
            category = rng.choices([w[0] for w in weights], [w[1] for w in weights])[0]
            if rng.random() < 0.04:
                category = "MUL"
            ep.neglect_plan = category == "NEG"
            cpp_end = min(cpp_start + lognormal_days(rng, 250, 0.6), last_day)
            latest = category if rng.random() < 0.9 else rng.choice(["NEG", "EMO", "PHY", "MUL"])
            data["protection_plans"].append({
                "start_date": iso_date(cpp_start), "end_date": iso_date(cpp_end), "initial_category": category,
                "latest_category": latest, "previous_plans": min(fam.prior_plans, 99),
                "review_dates": [iso_date(d) for d in spaced_days(rng, cpp_start + 90, cpp_end, (170, 190))],
            })  # fmt: skip
            visits += spaced_days(rng, cpp_start, cpp_end, (8, 16) if quality > -1 else (15, 30))
            cin_start = cpp_end if rng.random() < 0.6 else None
            plan_from, plan_end = cpp_start, cpp_end
        else:
            cin_start = authorised + rng.randint(0, 14)
            plan_from, plan_end = cin_start, cin_start
        if cin_start is not None:
            cin_start = min(cin_start, last_day)
            length = lognormal_days(rng, 200 if protection else 280, 1.15) * math.exp(0.25 * quality)
            plan_end = min(cin_start + int(length), last_day)
            data["cin_plans"].append({"start_date": iso_date(cin_start), "end_date": iso_date(plan_end)})
            visits += spaced_days(rng, cin_start, plan_end, (20, 45))
        # Closure never precedes the assessment's authorisation or the conference.
        closure = min(max(plan_end + rng.randint(0, 21), earliest_closure), last_day)
        reason = "RC7"
        roll = rng.random()
        if self.age(closure) > 17.5 and roll < 0.5:
            reason = "RC6"
        elif roll < 0.035:
            reason = "RC5"
        elif roll < 0.055:
            reason = rng.choice(["RC3", "RC4"])
        elif roll < 0.058 and self.age(closure) < 8:
            reason = "RC1"
        elif roll < 0.059:
            reason = "RC2"
        data.update(closure_date=iso_date(closure), closure_reason=reason)

        # Visits lapse towards the end of some plans: more often where practice is weaker.
        if rng.random() < sigmoid(-1.2 - 0.8 * quality):
            lapse_from = closure - rng.randint(30, 120)
            visits[:] = [d for d in visits if d < lapse_from]
        visits[:] = [d for d in visits if d <= closure]

        # Services the family is referred to, chosen by what the assessment found.
        factors = ep.factors
        offers = [
            ("parenting_programme", 0.65 if factors & {"16A", "17A"} else 0.25),
            ("counselling", 0.5 if factors & {"4A", "4B", "3B", "17A"} else 0.1),
            ("domestic_abuse_support", 0.6 * ("3B" in factors)),
            ("substance_misuse_treatment", 0.6 * bool(factors & {"1B", "2B"})),
            ("parental_mental_health", 0.3 * ("4B" in factors)),
            ("family_support", 0.4),
        ]
        for service, p in offers:
            if rng.random() >= p:
                continue
            referred = min(plan_from + rng.randint(0, 21), closure)
            wait = int(rng.expovariate(1.0 / (SERVICE_WAIT[service] * math.exp(-0.3 * quality))))
            item: dict[str, Any] = {"service": service, "referred_date": iso_date(referred)}
            began = referred + wait
            if began <= closure:
                item["start_date"] = iso_date(began)
                length = int(SERVICE_LENGTH[service] * rng.uniform(0.75, 1.3))
                if rng.random() < engagement:
                    end, completed = began + length, True
                else:
                    end, completed = began + int(length * rng.uniform(0.2, 0.8)), False
                if end > closure:
                    end, completed = closure, False
                item.update(end_date=iso_date(end), completed=completed)
            services.append(item)

        # Partners at plan meetings (the reviews) and the progress recorded at each.
        partners = [a for a, p in (
            ("health", sigmoid(0.2 + 0.8 * quality)),
            ("education", 0.7 * (4 <= self.age(plan_from) < 17)),
            ("youth_justice", 0.6 * (self.age(plan_from) >= 10 and bool(factors & {"14A", "24A"}))),
            ("probation", 0.3 * ("3B" in factors)),
            ("adult_mental_health", 0.45 * ("4B" in factors)),
            ("substance_misuse", 0.5 * bool(factors & {"1B", "2B"})),
        ) if rng.random() < p]  # fmt: skip
        review_days = [*spaced_days(rng, plan_from + 90, closure - 1, (80, 100)), closure]
        goals = rng.randint(3, 6)
        for i, day in enumerate(review_days):
            progress = sigmoid(-0.6 + 2.2 * engagement + 0.8 * (i + 1) / len(review_days) - 0.3 * u)
            met = sum(rng.random() < progress for _ in range(goals))
            reviews.append({"date": iso_date(day), "goals_set": goals, "goals_met": met})
            for agency in partners:
                if rng.random() < 0.85:
                    agencies.append({"agency": agency, "forum": "plan_meeting", "date": iso_date(day)})
        return closure

    def _closure_state(self, ep: _Episode, referral: int, closure: int, services: list[dict[str, Any]],
                       agencies: list[dict[str, Any]], visits: list[int],
                       reviews: list[dict[str, Any]]) -> ClosureState:  # fmt: skip
        fam, data = self.family, ep.data
        had_plan = bool(data["cin_plans"] or data["protection_plans"])
        long_waits = 0
        for s in services:
            began = dt.date.fromisoformat(s["start_date"]).toordinal() if "start_date" in s else closure
            long_waits += began - dt.date.fromisoformat(s["referred_date"]).toordinal() > 60
        strategy = [a["agency"] for a in agencies if a["forum"] == "strategy_discussion"]
        last = reviews[-1] if reviews else None
        return ClosureState(
            age_years=self.age(closure),
            parental_factors=frozenset(ep.factors & set(PARENTAL_CODES)),
            neglect="16A" in ep.factors or ep.neglect_plan,
            days_open=closure - referral,
            step_down=data["closure_reason"] == "RC9",
            had_plan=had_plan,
            goals_met_share=last["goals_met"] / last["goals_set"] if last else None,
            services_not_completed=sum(s.get("completed") is not True for s in services),
            long_waits=long_waits,
            parenting_completed=any(s["service"] == "parenting_programme" and s.get("completed") for s in services),
            counselling_completed=any(s["service"] == "counselling" and s.get("completed") for s in services),
            partner_agencies=len({a["agency"] for a in agencies}),
            plan_agencies=len({a["agency"] for a in agencies if a["forum"] == "plan_meeting"}),
            police_only_strategy=bool(strategy) and set(strategy) == {"police"},
            days_since_visit=closure - max(visits) if visits else None,
            prior_episodes=fam.prior_episodes,
            prior_rereferrals=fam.prior_rereferrals,
            prior_protection_plan=fam.prior_plans > 0,
            family_vulnerability=fam.vulnerability,
        )

    def _attach_extension(self, data: dict[str, Any], services: list[dict[str, Any]],
                          agencies: list[dict[str, Any]], visits: list[int],
                          reviews: list[dict[str, Any]]) -> None:  # fmt: skip
        """Case-file facts; some episodes' are not recorded at all, and single fields go missing too."""
        rng = self.rng
        missing = P_EXTENSION_MISSING
        if self.biases.applies("missing_extension", self.ethnicity):
            missing = self.biases.missing_extension_rate
        if rng.random() < missing:
            return
        fields: dict[str, list[dict[str, Any]]] = {
            "services": services,
            "agencies": sorted(agencies, key=lambda a: (a["date"], a["agency"], a["forum"])),
            "visits": [{"date": iso_date(d), "child_seen": rng.random() < 0.9} for d in sorted(set(visits))],
            "plan_reviews": reviews,
        }
        for name, value in fields.items():
            if rng.random() >= 0.03:
                data[name] = value


def simulate_child(seed: int, index: int, window: Window) -> SimulatedChild:
    """Simulate child number ``index`` of the cohort ``seed``: the same inputs always give the same child."""
    rng = random.Random(f"case-closure-risk:{seed}:{index}")
    ethnicity = None
    if window.biases.active:  # a stream of its own, so the child's life draws stay those of the unbiased child
        ethnicity = window.biases.draw_ethnicity(random.Random(f"case-closure-risk:{seed}:{index}:ethnicity"))
    return _ChildSimulator(rng, window, la_child_id=f"SYN{seed % 1000:03d}{index:07d}", ethnicity=ethnicity).run()


def simulate_children(seed: int, indices: Sequence[int], window: Window) -> list[SimulatedChild]:
    """Simulate a batch of children (one worker's share)."""
    return [simulate_child(seed, i, window) for i in indices]
