"""What the simulator draws from: England's published mixes (referral sources, ethnicity, age at first referral,
...), a family's persistent factors and an assessment's findings, and the small date helpers every draw uses."""

from __future__ import annotations

import datetime as dt
import math
import random
from bisect import bisect
from dataclasses import dataclass
from itertools import accumulate

__all__ = [
    "ABUSE",
    "CATEGORY_WEIGHT",
    "DISABILITY",
    "ETHNICITY",
    "FIRST_AGE",
    "OTHER_NEED",
    "PARENTAL_CODES",
    "P_NFA",
    "SERVICE_LENGTH",
    "SERVICE_WAIT",
    "SEX",
    "SOURCES",
    "Choice",
    "Family",
    "assessment_factors",
    "draw_family",
    "iso_date",
    "lognormal_days",
    "sigmoid",
    "spaced_days",
]


class Choice:
    """A weighted choice with precomputed cumulative weights."""

    def __init__(self, weights: dict[str, float]) -> None:
        self.items = list(weights)
        self.cumulative = list(accumulate(weights.values()))

    def draw(self, rng: random.Random) -> str:
        return self.items[bisect(self.cumulative, rng.random() * self.cumulative[-1])]


# England 2024-25: police about 29% of referrals, schools 20%, health 14%, LA services 14%, individuals 8%.
SOURCES = Choice({
    "6": 29, "2A": 20, "2B": 2, "3A": 3, "3B": 3, "3C": 1, "3D": 2, "3E": 3, "3F": 2, "4": 2, "5A": 3, "5B": 3,
    "5C": 2, "5D": 5, "1A": 5, "1B": 1, "1C": 1, "1D": 1, "7": 2, "8": 6, "9": 1, "10": 3,
})  # fmt: skip
ETHNICITY = Choice({
    "WBRI": 620, "WIRI": 5, "WIRT": 3, "WOTH": 60, "WROM": 7, "MWBC": 25, "MWBA": 10, "MWAS": 10, "MOTH": 30,
    "AIND": 15, "APKN": 30, "ABAN": 12, "AOTH": 20, "BCRB": 15, "BAFR": 40, "BOTH": 15, "CHNE": 3, "OOTH": 35,
    "REFU": 5, "NOBT": 25,
})  # fmt: skip
SEX = Choice({"M": 52, "F": 47, "U": 1})
DISABILITY = Choice({"LD": 30, "BEH": 20, "COMM": 15, "AUT": 20, "MOB": 5, "HAND": 2, "PC": 2, "VIS": 2,
                      "HEAR": 2, "DDA": 2})  # fmt: skip
# Age at first referral, years 0..17: younger children and early teenagers are referred most.
FIRST_AGE = Choice({str(a): w for a, w in enumerate([14, 7, 6, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 6, 5, 3, 1])})
OTHER_NEED = Choice({"N4": 30, "N5": 30, "N3": 10, "N6": 12, "N8": 4, "N7": 2, "N0": 4, "N2": 8})
# Weights for the category of a protection plan among the abuse concerns present.
CATEGORY_WEIGHT = {"16A": ("NEG", 1.7), "17A": ("EMO", 0.6), "18C": ("PHY", 0.18), "19C": ("SAB", 0.3)}
# Mean wait to start (days) and typical length (days) by service.
SERVICE_WAIT = {"parenting_programme": 35, "counselling": 80, "family_support": 20, "domestic_abuse_support": 40,
                "substance_misuse_treatment": 45, "parental_mental_health": 70}  # fmt: skip
SERVICE_LENGTH = {"parenting_programme": 70, "counselling": 84, "family_support": 90, "domestic_abuse_support": 84,
                  "substance_misuse_treatment": 120, "parental_mental_health": 100}  # fmt: skip
PARENTAL_CODES = ("4B", "3B", "1B", "2B")
# Persistent family factors: (code, base log-odds, slope on the family's vulnerability).
FAMILY_FACTORS = (("4B", -0.75, 0.5), ("3B", -0.82, 0.5), ("1B", -2.0, 0.6), ("2B", -1.95, 0.7), ("5B", -3.6, 0.3),
                  ("6B", -3.0, 0.2))  # fmt: skip
FAMILY_CODES = tuple(code for code, _, _ in FAMILY_FACTORS)
ABUSE = ("16A", "17A", "18C", "19C")

P_NFA = 0.065  # referrals with no further action (England 2024-25: 6.5%)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@dataclass
class Family:
    """A child's family: its unobserved vulnerability, its persistent parental factors and its history so far."""

    vulnerability: float
    parental: set[str]
    child_ld: bool
    prior_episodes: int = 0
    prior_rereferrals: int = 0
    prior_plans: int = 0
    last_closure: int | None = None


def draw_family(rng: random.Random) -> Family:
    u = rng.gauss(0.0, 1.0)
    parental = set()
    for code, base, slope in FAMILY_FACTORS:
        if rng.random() < sigmoid(base + slope * u):
            parental.add(code)
    return Family(vulnerability=u, parental=parental, child_ld=rng.random() < 0.08)


def assessment_factors(rng: random.Random, fam: Family, age: float, sex: str) -> set[str]:
    """Factors identified at an assessment: the family's persistent ones (mostly seen) plus this episode's."""
    u = fam.vulnerability
    # Fixed order, never set order: set iteration varies with the process's hash seed, and so would the draws.
    found = {code for code in FAMILY_CODES if code in fam.parental and rng.random() < 0.8}
    substance = bool(found & {"1B", "2B"})
    if rng.random() < sigmoid(-2.35 + 0.6 * u + 0.6 * substance + 0.3 * ("4B" in found)):
        found.add("16A")
    if rng.random() < sigmoid(-2.1 + 0.3 * u + 1.1 * ("3B" in found)):
        found.add("17A")
    if "3B" in found and rng.random() < 0.3:
        found.add("3A")
    if rng.random() < 0.11:
        found.add("18C")
    if rng.random() < 0.035:
        found.add("19C")
    if fam.child_ld and rng.random() < 0.9:
        found.add("5A")
    teen = age >= 11
    for code, p_teen, p_child in (("4A", 0.30, 0.06), ("14A", 0.13, 0.02), ("15A", 0.10, 0.0), ("10A", 0.07, 0.0),
                                  ("24A", 0.07, 0.0), ("2A", 0.08, 0.0), ("1A", 0.04, 0.0), ("18B", 0.04, 0.02),
                                  ("19B", 0.03, 0.02), ("6A", 0.04, 0.05), ("7A", 0.04, 0.03)):  # fmt: skip
        if rng.random() < (p_teen if teen else p_child):
            found.add(code)
    if teen and sex == "F" and rng.random() < 0.05:
        found.add("11A")
    for code, p in (("1C", 0.02), ("2C", 0.03), ("3C", 0.05), ("4C", 0.045), ("20", 0.09)):
        if rng.random() < p:
            found.add(code)
    return found


def iso_date(ordinal: int) -> str:
    return dt.date.fromordinal(ordinal).isoformat()


def spaced_days(rng: random.Random, first: int, last: int, gap: tuple[int, int]) -> list[int]:
    """Dates from ``first`` to ``last`` with random gaps in ``gap``."""
    out, day = [], first
    while day <= last:
        out.append(day)
        day += rng.randint(*gap)
    return out


def lognormal_days(rng: random.Random, median: float, sigma: float) -> int:
    return max(1, int(median * math.exp(sigma * rng.gauss(0.0, 1.0))))
