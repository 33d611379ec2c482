"""The synthetic authority: calibration to published figures, truth consistency, causal directions."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from pathlib import Path

import pytest

from features import write_census_return, write_extension_jsonl
from synthetic.cohort import Cohort, cohort_figures, eligible_truth, generate_cohort, simulate_cohort
from synthetic.risk import LOG_ODDS, ClosureState, true_log_odds

README = Path(__file__).resolve().parents[2] / "synthetic" / "README.md"


@pytest.fixture(scope="module")
def cohort() -> Cohort:
    # Big enough for the tolerances below (about 7,000 eligible closures), small enough for seconds.
    return simulate_cohort(children=7_000, seed=11, start=2016, end=2025, workers=1)


@pytest.fixture(scope="module")
def figures(cohort: Cohort) -> dict[str, object]:
    return cohort_figures(cohort)


def _number(figures: dict[str, object], key: str) -> float:
    value = figures[key]
    assert isinstance(value, float)
    return value


def test_cohort_rereferral_after_closure_near_32_percent(figures: dict[str, object]) -> None:
    assert 0.29 <= _number(figures, "rereferral_after_closure_rate") <= 0.35


def test_cohort_true_risk_separates_like_published_models(figures: dict[str, object]) -> None:
    assert 0.72 <= _number(figures, "oracle_auc") <= 0.85


@pytest.mark.parametrize(
    ("code", "dfe_share"), [("4B", 0.335), ("3B", 0.317), ("17A", 0.190), ("16A", 0.176), ("1B", 0.143),
                            ("2B", 0.141)]
)  # fmt: skip
def test_cohort_factor_prevalence_near_dfe_2024_25(figures: dict[str, object], code: str, dfe_share: float) -> None:
    prevalence = figures["factor_prevalence"]
    assert isinstance(prevalence, dict)
    assert abs(prevalence[code] - dfe_share) <= 0.035


def test_cohort_protection_plans_about_half_neglect(figures: dict[str, object]) -> None:
    shares = figures["protection_plan_category_share"]
    assert isinstance(shares, dict)
    assert 0.42 <= shares["NEG"] <= 0.58
    assert 0.27 <= shares["EMO"] <= 0.39


def test_cohort_about_half_of_closed_episodes_last_three_months_or_less(figures: dict[str, object]) -> None:
    assert 0.42 <= _number(figures, "closed_within_3_months") <= 0.58
    assert 0.06 <= _number(figures, "closed_after_2_years") <= 0.14


def test_cohort_second_or_subsequent_plans_near_dfe(figures: dict[str, object]) -> None:
    assert 0.18 <= _number(figures, "protection_plans_subsequent") <= 0.27


def test_truth_outcomes_match_the_written_histories(cohort: Cohort) -> None:
    episodes = {r.la_child_id: r.episodes for r in cohort.records}
    rows = eligible_truth(cohort)
    assert rows
    for row in rows:
        history = episodes[row.la_child_id]
        closed = [e for e in history if e.referral_date == row.referral_date]
        assert len(closed) == 1
        assert closed[0].closure_date == row.closure_date
        assert closed[0].closure_reason == row.closure_reason
        window_end = row.closure_date + dt.timedelta(days=365)
        seen = any(row.closure_date < e.referral_date <= window_end for e in history)
        assert seen == row.rereferred_within_365


def test_truth_probabilities_are_calibrated_against_outcomes(cohort: Cohort) -> None:
    rows = eligible_truth(cohort)
    expected = sum(r.true_probability for r in rows)
    observed = sum(r.rereferred_within_365 for r in rows)
    assert abs(observed - expected) / len(rows) < 0.02


def test_cohort_records_are_as_of_the_end_of_data(cohort: Cohort) -> None:
    end = cohort.window.data_end
    for record in cohort.records:
        for episode in record.episodes:
            assert all(when <= end for _, when in episode.dated_events())
            assert episode.referral_date <= end


def test_cohort_same_seed_same_children_whatever_the_workers() -> None:
    one = simulate_cohort(children=2_500, seed=5, start=2020, end=2022, workers=1)
    two = simulate_cohort(children=2_500, seed=5, start=2020, end=2022, workers=2)
    assert one.records == two.records
    assert one.truth == two.truth
    other = simulate_cohort(children=2_500, seed=6, start=2020, end=2022, workers=1)
    assert other.records != one.records


def test_generated_files_are_the_simulated_records_written_whatever_the_workers(tmp_path: Path) -> None:
    # generate_cohort renders each child in the worker that simulated it; the files must be exactly what writing
    # the simulated records gives, and the manifest's figures what they count.
    cohort = simulate_cohort(children=2_500, seed=5, start=2020, end=2022, workers=1)
    expected = tmp_path / "expected"
    expected.mkdir()
    for year in range(2020, 2023):
        write_census_return(cohort.records, collection_year=year, out=expected / f"cin_{year}.xml")
    write_extension_jsonl(cohort.records, expected / "extension.jsonl")
    for workers in (1, 2):
        out = tmp_path / f"workers-{workers}"
        summary = generate_cohort(children=2_500, seed=5, start=2020, end=2022, out=out, workers=workers)
        for path in sorted(expected.iterdir()):
            assert (out / path.name).read_bytes() == path.read_bytes(), (workers, path.name)
        assert summary.children == len(cohort.records)
        assert summary.episodes == sum(len(r.episodes) for r in cohort.records)
        assert summary.open_episodes == sum(r.open_episode is not None for r in cohort.records)
        assert summary.figures == cohort_figures(cohort)
        assert json.loads((out / "manifest.json").read_text())["figures"] == cohort_figures(cohort)


_BASE = ClosureState(
    age_years=8.0, parental_factors=frozenset({"4B"}), neglect=True, days_open=200, step_down=False, had_plan=True,
    goals_met_share=0.5, services_not_completed=1, long_waits=0, parenting_completed=False,
    counselling_completed=False, partner_agencies=2, plan_agencies=1, police_only_strategy=False,
    days_since_visit=10, prior_episodes=1, prior_rereferrals=0, prior_protection_plan=False,
    family_vulnerability=0.0,
)  # fmt: skip


@pytest.mark.parametrize(
    ("change", "direction"),
    [
        ({"parenting_completed": True}, -1),
        ({"counselling_completed": True}, -1),
        ({"plan_agencies": 3}, -1),
        ({"goals_met_share": 1.0}, -1),
        ({"services_not_completed": 3}, +1),
        ({"long_waits": 2}, +1),
        ({"partner_agencies": 0}, +1),
        ({"police_only_strategy": True}, +1),
        ({"prior_rereferrals": 2}, +1),
        ({"parental_factors": frozenset({"4B", "2B", "1B"})}, +1),
        ({"days_open": 40}, +1),
        ({"days_since_visit": 90}, +1),
    ],
)
def test_true_log_odds_moves_the_way_domain_evidence_says(change: dict[str, object], direction: int) -> None:
    delta = true_log_odds(dataclasses.replace(_BASE, **change)) - true_log_odds(_BASE)  # type: ignore[arg-type]
    assert delta * direction > 0


def test_readme_table_matches_the_log_odds_in_code() -> None:
    table = dict(re.findall(r"^\| (\w+) \| ([+-]\d+\.\d+) \|", README.read_text(encoding="utf-8"), flags=re.M))
    assert {k: float(v) for k, v in table.items()} == LOG_ODDS
