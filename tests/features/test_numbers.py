"""The one rounding rule for probabilities, on its boundary values: the figure and the words always agree."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from features.numbers import approximately, in_words, percent, percent_points, probability_text, whole_percent


@pytest.mark.parametrize(
    ("p", "figure", "words"),
    [
        (0.0, "under 1%", "fewer than 1 in 20"),
        (0.0049, "under 1%", "fewer than 1 in 20"),
        (0.005, "1%", "fewer than 1 in 20"),  # halves round up
        (0.0449, "4%", "fewer than 1 in 20"),
        (0.045, "5%", "about 1 in 20"),
        (0.046, "5%", "about 1 in 20"),  # never "fewer than 1 in 20 (5%)"
        (0.0749, "7%", "about 1 in 20"),
        (0.075, "8%", "about 1 in 10"),
        (0.145, "15%", "about 2 in 10"),
        (0.1449, "14%", "about 1 in 10"),
        (0.745, "75%", "about 8 in 10"),  # 0.745 is 0.74499999... in binary: still a half
        (0.75, "75%", "about 8 in 10"),  # never "about 7 in 10" beside 75%
        (0.7449, "74%", "about 7 in 10"),
        (0.9449, "94%", "about 9 in 10"),
        (0.945, "95%", "more than 9 in 10"),
        (0.9949, "99%", "more than 9 in 10"),
        (0.995, "over 99%", "more than 9 in 10"),
        (1.0, "over 99%", "more than 9 in 10"),
    ],
)
def test_rounding_rule_on_boundary_values(p: float, figure: str, words: str) -> None:
    assert (percent(p), in_words(p)) == (figure, words)
    assert probability_text(p) == f"{words} ({figure})"


@given(st.floats(min_value=0.0, max_value=1.0))
def test_words_follow_the_rounded_figure(p: float) -> None:
    whole = whole_percent(p)
    words = in_words(p)
    if words.startswith("about ") and words.endswith(" in 10"):
        tenths = int(words.split()[1])
        assert tenths * 10 - 5 <= whole < tenths * 10 + 5
    elif words == "fewer than 1 in 20":
        assert whole < 5
    elif words == "about 1 in 20":
        assert 5 <= whole < 8
    else:
        assert (words, whole >= 95) == ("more than 9 in 10", True)


@pytest.mark.parametrize("bad", [-0.01, 1.01, float("nan"), float("inf")])
def test_rounding_rule_refuses_what_is_not_a_probability(bad: float) -> None:
    with pytest.raises(ValueError, match="a probability lies in"):
        percent(bad)


@pytest.mark.parametrize(
    ("difference", "text"),
    [(0.0049, "about the same as now"), (-0.0049, "about the same as now"), (0.005, "+1 percentage point"),
     (-0.005, "-1 percentage point"), (-0.125, "-13 percentage points"), (0.2, "+20 percentage points")],
)  # fmt: skip
def test_percentage_points_round_halves_away_from_zero(difference: float, text: str) -> None:
    assert percent_points(difference) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.205339, "0.21"), (16.8843, "17"), (1.25, "1.3"), (2.0, "2"), (12_345.5, "12,346"), (0.0, "0"),
     (-3.14159, "-3.1"), (0.000123456, "0.00012"), (float("inf"), "unbounded")],
)  # fmt: skip
def test_approximately_rounds_a_bound_as_a_reader_needs_it(value: float, text: str) -> None:
    assert approximately(value) == text
