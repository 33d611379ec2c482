"""The fairness audit on small synthetic authorities with a strong planted bias, trained as ``closure-risk train``
trains (one search candidate): it names the surveillance bias on the re-referrals that found no need, the
under-measured group on the label's calibration, and finds nothing by chance in the same authority without a bias."""

from __future__ import annotations

from typing import Any

import pytest

from outcomes.disparity import FairnessReport, deep_fairness_audit
from synthetic import PlantedBiases
from synthetic.cohort import simulate_cohort
from training.evaluation import evaluate_bundle
from training.fit import fit_bundle
from training.frame import build_training_frame
from training.pipeline import audited_closures, earlier_origins
from training.settings import TrainingSettings
from training.split import split_by_time

CHILDREN, SEED, GROUP, SHARE = 3_000, 7, "black", 0.5


def _audit(**planted: Any) -> FairnessReport:
    cohort = simulate_cohort(children=CHILDREN, seed=SEED, start=2019, end=2024, workers=1,
                             biases=PlantedBiases(share_group=GROUP, share=SHARE, **planted))  # fmt: skip
    data_end = cohort.window.data_end
    built = build_training_frame(cohort.records, data_end=data_end)
    split = split_by_time(built.frame, data_end=data_end, seed=SEED)
    settings = TrainingSettings(seed=SEED, bootstrap=50)
    search = settings.search.model_copy(update={"candidates": settings.search.candidates[:1]})
    fitted = fit_bundle(split, seed=SEED, search=search)
    evaluated = evaluate_bundle(fitted, split, data_end=data_end, n_boot=50, seed=SEED)
    policy = settings.gate_policy().fairness
    assert policy is not None
    frame = evaluated.audit_frame
    if policy.audited_closures == "backtest":  # the test year and the backtest's earlier years, as training does
        earlier = earlier_origins(built.frame, split, fitted, data_end=data_end, settings=settings,
                                  calibration=settings.gate_policy().calibrator)  # fmt: skip
        frame = audited_closures(evaluated, earlier, fitted)
        assert len(frame) > 2 * len(evaluated.audit_frame)
    # a small authority: the group has about a hundred test closures, so the smallest judged group is smaller
    policy = policy.model_copy(update={"min_group_cases": 60})
    return deep_fairness_audit(frame, policy=policy, seed=SEED)


def _on_group(report: FairnessReport) -> set[tuple[str, str, str]]:
    """(label, metric, direction) of each finding on the group: 'under' where its metric is higher than the
    reference's (for the calibration gap: under-predicted against the reference), 'over' where it is lower."""
    found = set()
    for f in report.flags("ethnic_group", GROUP):
        row = report.disparities.query(
            "label == @f.label and dimension == 'ethnic_group' and metric == @f.metric and group == @f.group"
        ).iloc[0]
        sign = row["difference"] if f.group == GROUP else -row["difference"]
        found.add((f.label, f.metric, "under" if sign > 0 else "over"))
    return found


@pytest.mark.slow
def test_audit_names_a_surveillance_bias_on_the_rereferrals_that_found_no_need() -> None:
    found = _on_group(_audit(surveillance=GROUP, surveillance_log_odds=2.0))
    assert ("no_need", "calibration_gap", "under") in found
    assert ("need_confirmed", "calibration_gap", "under") not in found  # the need it was referred for is as predicted


@pytest.mark.slow
def test_audit_blocks_a_group_whose_risk_the_features_under_measure() -> None:
    report = _audit(undermeasured=GROUP, undermeasured_log_odds=1.5)
    assert ("rereferral", "calibration_gap", "under") in _on_group(report)
    assert any(f.severity == "block" and f.metric == "calibration_gap" for f in report.flags("ethnic_group", GROUP))


@pytest.mark.slow
def test_audit_finds_nothing_by_chance_in_the_same_authority_without_a_bias() -> None:
    report = _audit()
    assert report.blocking == ()
    # The generator gives ethnicity no effect; parental factors raise the true risk, so with three years audited their
    # flag and error rates differ as base rates do: the policy's warning (not a chance flag), and nothing else.
    assert {(f.dimension, f.metric) for f in report.findings} <= {
        ("parental_factors", metric) for metric in ("flag_rate", "fpr", "fnr")
    }
