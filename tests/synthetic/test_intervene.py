"""Interventions on the truth: the recorded facts rebuild the simulator's own state, and a change moves the truth."""

from __future__ import annotations

import datetime as dt

import pytest

from features import Episode
from synthetic import Window, simulate_child
from synthetic.intervene import recorded_state, true_change
from synthetic.simulate import TruthRow

WINDOW = Window(start=2019, end=2023)


def _closures(children: int = 400) -> list[tuple[TruthRow, Episode]]:
    out = []
    for index in range(children):
        child = simulate_child(5, index, WINDOW)
        by_referral = {e.referral_date: e for e in child.record.episodes}
        out += [(row, by_referral[row.referral_date]) for row in child.truth]
    return out


@pytest.fixture(scope="module")
def closures() -> list[tuple[TruthRow, Episode]]:
    return _closures()


def _complete(episode: Episode) -> bool:
    return all(getattr(episode, f) is not None for f in ("services", "agencies", "visits", "plan_reviews"))


def test_recorded_facts_rebuild_the_state_the_truth_came_from(closures: list[tuple[TruthRow, Episode]]) -> None:
    checked = 0
    for row, episode in closures:
        assert row.state is not None
        if _complete(episode):
            assert recorded_state(row.state, episode, row.closure_date) == row.state
            checked += 1
    assert checked > 100


def _with_service_completed(episode: Episode, service: str, on: dt.date) -> Episode | None:
    services = list(episode.services or [])
    for i, s in enumerate(services):
        if s.service == service and not s.completed:
            services[i] = s.model_copy(update={"start_date": s.start_date or s.referred_date, "end_date": on,
                                               "completed": True})  # fmt: skip
            return episode.model_copy(update={"services": services})
    return None


@pytest.mark.parametrize("service", ["counselling", "parenting_programme", "family_support"])
def test_completing_a_service_lowers_the_true_risk(closures: list[tuple[TruthRow, Episode]], service: str) -> None:
    changes = []
    for row, episode in closures:
        after = _with_service_completed(episode, service, row.closure_date)
        if after is not None and row.state is not None:
            changes.append(true_change(row.state, episode, after, row.closure_date))
    assert len(changes) > 10
    assert all(c < 0 for c in changes)


def test_no_change_no_effect(closures: list[tuple[TruthRow, Episode]]) -> None:
    for row, episode in closures[:200]:
        assert row.state is not None
        assert true_change(row.state, episode, episode, row.closure_date) == 0.0
