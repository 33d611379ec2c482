"""The review of decisions from the store: rates by band, team and group with Wilson intervals, decisions against
the band, high-band closures and whether the case came back, and what-if factors that changed before a closure."""

from __future__ import annotations

import datetime as dt

from audit import AuditStore, DecisionReview
from audit.review import Rate, review_from_store
from features import Agreement, Band, Decision
from tests.audit.stores import make_score


def test_wilson_interval_matches_the_textbook_values() -> None:
    low, high = Rate(8, 10).interval
    assert (round(low or 0, 4), round(high or 0, 4)) == (0.4902, 0.9433)
    assert Rate(0, 0).interval == (None, None)
    assert Rate(0, 5).interval[0] == 0.0


def test_review_counts_what_the_store_holds(store: AuditStore) -> None:
    base = make_score()
    features = {**base.features, "visits_30d": 0.0, "disability": 1.0, "sex": "1"}
    earlier = make_score(case_id="case_a", band=Band.HIGH, as_of=dt.date(2025, 3, 20), features=features,
                         what_ifs=[{"change": "a visit", "addresses": ["visits_30d"], "probability": 0.5,
                                    "difference": -0.1}])  # fmt: skip
    closing = make_score(case_id="case_a", band=Band.HIGH, as_of=dt.date(2025, 3, 31),
                         features={**features, "visits_30d": 2.0})  # fmt: skip
    came_back = make_score(case_id="case_a", band=Band.MEDIUM, as_of=dt.date(2025, 9, 1))
    kept = make_score(case_id="case_b", band=Band.HIGH, features={**features, "disability": 0.0})
    low_kept = make_score(case_id="case_c", band=Band.LOW, ethnic_group="Asian or Asian British")
    store.save_scores([earlier, closing, came_back, kept, low_kept])

    def decide(score_id: str, decision: Decision, agreement: Agreement | None) -> None:
        review = DecisionReview(agreement, True, False, agreement is Agreement.LOWER, False) if agreement else None
        store.record_decision(score_id=score_id, decided_by="m", decision=decision, reason="why", review=review)

    decide(closing.id, Decision.CLOSE, Agreement.LOWER)
    decide(kept.id, Decision.KEEP_OPEN, Agreement.AGREE)
    decide(low_kept.id, Decision.KEEP_OPEN, None)  # through the API, without a review
    store.record_decision(score_id=kept.id, decided_by="m", decision=Decision.KEEP_OPEN, reason="again",
                          supersede=True, review=DecisionReview(Agreement.HIGHER, True, True, True, True))  # fmt: skip

    summary = review_from_store(store)
    assert (summary.decisions, summary.reviewed) == (3, 2)  # current decisions only
    high = next(g for g in summary.by_band if g.group == "high")
    assert (high.decisions, high.lower, high.higher, high.agree) == (2, Rate(1, 2), Rate(1, 2), Rate(0, 2))
    assert high.against_band == Rate(1, 2)
    low = next(g for g in summary.by_band if g.group == "low")
    assert (low.decisions, low.against_band, low.agree) == (1, Rate(1, 1), Rate(0, 0))
    assert summary.follows_band == Rate(1, 3)
    assert summary.high_band_closure_rate == Rate(1, 2)
    (closure,) = summary.high_band_closures
    assert (closure.score.id, closure.scored_again) == (closing.id, True)
    (flag,) = summary.what_if_flags
    assert (flag.score_id, flag.earlier_score_id, flag.days_before, flag.changed) == (
        closing.id, earlier.id, 11, ["visits_30d"])  # fmt: skip
    groups = {(g.dimension, g.group): g.decisions for g in summary.by_group}
    assert groups[("disability", "yes")] == 1
    assert groups[("disability", "no")] == 1
    assert groups[("ethnic_group", "Asian or Asian British")] == 1
    assert summary.grounds["child_voice"] == Rate(2, 2)
    assert summary.grounds["partner_views"] == Rate(2, 2)
    assert summary.grounds["multi_agency"] == Rate(1, 2)
    assert review_from_store(store, since=dt.date.today() + dt.timedelta(days=1)).decisions == 0
