"""Numbers as a manager reads them: one rounding rule for a probability in figures and in words, and for a range.

The words are worked out from the rounded percentage, never from the raw probability, so a page, the PDF and the API
can never say "about 7 in 10" beside "75%" or "fewer than 1 in 20" beside "5%". Halves round up (75% is "about
8 in 10"; 0.745 is 75%), done in decimal so that binary floating point cannot tip a half down.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

__all__ = ["approximately", "in_words", "percent", "percent_points", "probability_text", "whole_percent"]


def _half_up(value: float, places: int = 0) -> Decimal:
    # repr-exact decimal of the float, first cut to 12 places: 0.745 (stored as 0.74499999...) counts as a half.
    exact = Decimal(repr(value)).quantize(Decimal("1e-12"), rounding=ROUND_HALF_UP)
    return exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def whole_percent(p: float) -> int:
    """The probability as a whole percentage, halves up: the one number every other form starts from."""
    if not math.isfinite(p) or not 0.0 <= p <= 1.0:
        raise ValueError(f"a probability lies in [0, 1], not {p}")
    return int(_half_up(p * 100))


def percent(p: float) -> str:
    """``27%``; below 1% and above 99% say so rather than round to 0 or 100 (no estimate is certain)."""
    whole = whole_percent(p)
    if whole < 1:
        return "under 1%"
    if whole > 99:
        return "over 99%"
    return f"{whole}%"


def in_words(p: float) -> str:
    """The probability as a natural frequency a manager can picture, from the same rounded percentage."""
    whole = whole_percent(p)
    if whole < 5:
        return "fewer than 1 in 20"
    if whole < 8:
        return "about 1 in 20"
    if whole >= 95:
        return "more than 9 in 10"
    return f"about {int(_half_up(whole / 10))} in 10"


def probability_text(p: float) -> str:
    """Words and figure together, as the report's headline and the API give them: ``about 3 in 10 (27%)``."""
    return f"{in_words(p)} ({percent(p)})"


def percent_points(difference: float) -> str:
    """A change of probability in whole percentage points (``+4 percentage points``; ``about the same`` under
    half a point either way)."""
    points = int(_half_up(difference * 100))
    if points == 0:
        return "about the same as now"
    return f"{points:+d} percentage point{'' if abs(points) == 1 else 's'}"


def approximately(value: float) -> str:
    """A measured value or bound, rounded as a reader needs it: whole numbers from 10 (with thousands separators),
    one decimal from 1, two significant figures below."""
    if not math.isfinite(value):
        return "unbounded" if math.isinf(value) else "unknown"
    size = abs(value)
    if size >= 10:
        return f"{int(_half_up(value)):,}"
    if size >= 1:
        text = f"{_half_up(value, 1):f}"
        return text.removesuffix(".0")
    if size == 0:
        return "0"
    places = 1 - math.floor(math.log10(size))  # two significant figures
    return f"{_half_up(value, places):f}"
