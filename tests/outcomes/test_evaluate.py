"""Evaluation metrics: ECE, agreement with scikit-learn, bootstrap intervals, the oracle block and the plot."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from outcomes.evaluate import (
    BANDS,
    BandOutcome,
    Evaluation,
    Interval,
    bootstrap_counts,
    calibration_plot,
    evaluate,
    expected_calibration_error,
    intervals_of,
    weighted_average_precision,
    weighted_ece,
    weighted_mean,
    weighted_roc_auc,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _cohort(n: int, *, seed: int = 0, noise: float = 0.1) -> dict[str, Any]:
    """Cases with a true probability, an outcome drawn from it and a model score near it, banded at 0.3 and 0.6."""
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0.02, 0.9, n)
    y = (rng.uniform(size=n) < truth).astype(np.int64)
    p = np.clip(truth + rng.normal(0.0, noise, n), 0.0, 1.0)
    band = np.where(p >= 0.6, "high", np.where(p >= 0.3, "medium", "low"))
    return {"y": y, "p": p, "truth": truth, "band": band, "high": band == "high"}


def _evaluate(c: dict[str, Any], **kwargs: Any) -> Evaluation:
    return evaluate(c["y"], c["p"], high=c["high"], band=c["band"], **kwargs)


def test_ece_is_small_for_calibrated_probabilities() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(size=50_000)
    y = rng.uniform(size=p.size) < p
    assert expected_calibration_error(y, p) < 0.02


def test_ece_is_large_for_shifted_probabilities() -> None:
    rng = np.random.default_rng(2)
    p = rng.uniform(size=50_000)
    y = rng.uniform(size=p.size) < p
    assert expected_calibration_error(y, np.clip(p + 0.2, 0.0, 1.0)) > 0.1


def test_ece_equals_hand_computation() -> None:
    # bin 1: y mean 1/2, p 1/8 -> 2/8 * 3/8; bin 6: y mean 3/4, p 5/8 -> 4/8 * 1/8; bin 8: y 1, p 7/8 -> 2/8 * 1/8
    y = np.array([0, 1, 1, 0, 1, 1, 1, 1])
    p = np.array([0.125, 0.125, 0.625, 0.625, 0.625, 0.625, 0.875, 0.875])
    assert expected_calibration_error(y, p) == 2 / 8 * 3 / 8 + 4 / 8 * 1 / 8 + 2 / 8 * 1 / 8


def test_ece_puts_probability_one_in_the_last_bin() -> None:
    # one bin [0.9, 1]: |(0 - 1) + (1 - 0.9)| / 2; a bin of its own for p = 1 would give (1 + 0.1) / 2
    assert expected_calibration_error(np.array([0, 1]), np.array([1.0, 0.9])) == pytest.approx(0.45)
    assert expected_calibration_error(np.array([1, 0]), np.array([0.5, 0.5]), bins=1) == 0.0


@pytest.mark.parametrize("p", [[0.2, 1.2], [0.2, -0.1], [0.2, math.nan]])
def test_ece_rejects_values_that_are_not_probabilities(p: list[float]) -> None:
    with pytest.raises(ValueError, match="probabilities"):
        expected_calibration_error(np.array([0, 1]), np.array(p))


def test_ece_rejects_labels_other_than_zero_and_one() -> None:
    with pytest.raises(ValueError, match="0 and 1"):
        expected_calibration_error(np.array([0, 2]), np.array([0.1, 0.2]))


def test_resampled_metrics_equal_sklearn_on_the_resampled_cases() -> None:
    c = _cohort(400, seed=3)
    y, p = c["y"].astype(bool), np.round(c["p"], 1)  # rounding makes ties, which AUC and AP must treat as sklearn does
    (w,) = bootstrap_counts(len(y), 3, np.random.default_rng(4))
    rng = np.random.default_rng(4)
    for b, draws in enumerate(rng.integers(0, len(y), size=(3, len(y)))):
        assert np.array_equal(np.bincount(draws, minlength=len(y)), w[b])
        ys, ps = y[draws], p[draws]
        assert weighted_roc_auc(w, y, p)[b] == pytest.approx(roc_auc_score(ys, ps), abs=1e-12)
        assert weighted_average_precision(w, y, p)[b] == pytest.approx(average_precision_score(ys, ps), abs=1e-12)
        assert weighted_mean(w, (p - y) ** 2)[b] == pytest.approx(brier_score_loss(ys, ps), abs=1e-12)
        assert weighted_ece(w, y, p)[b] == pytest.approx(expected_calibration_error(ys, ps), abs=1e-12)


def test_resampled_auc_is_nan_for_a_single_class() -> None:
    w = np.ones((1, 3))
    y, p = np.array([True, True, True]), np.array([0.1, 0.5, 0.9])
    assert np.isnan(weighted_roc_auc(w, y, p)[0])
    assert np.isnan(weighted_average_precision(w, y, p)[0])


def test_evaluate_point_estimates_equal_sklearn() -> None:
    c = _cohort(2_000)
    report = _evaluate(c, n_boot=20)
    metrics = report.metrics
    assert metrics.roc_auc.value == pytest.approx(roc_auc_score(c["y"], c["p"]), abs=1e-12)
    assert metrics.pr_auc.value == pytest.approx(average_precision_score(c["y"], c["p"]), abs=1e-12)
    assert metrics.brier.value == pytest.approx(brier_score_loss(c["y"], c["p"]), abs=1e-12)
    assert metrics.log_loss.value == pytest.approx(log_loss(c["y"], c["p"]), abs=1e-12)
    assert metrics.ece.value == expected_calibration_error(c["y"], c["p"])
    flagged, positive = c["high"], c["y"] == 1
    assert report.high_band.precision.value == pytest.approx(positive[flagged].mean())
    assert report.high_band.recall.value == pytest.approx(flagged[positive].mean())
    assert report.high_band.flag_rate.value == pytest.approx(flagged.mean())
    assert (report.n, report.positives) == (2_000, int(positive.sum()))
    assert report.prevalence == pytest.approx(positive.mean())


def test_evaluate_intervals_contain_the_estimate_and_narrow_with_n() -> None:
    # a miscalibrated score, so the ECE measures miscalibration rather than the noise of a few cases per bin
    small, large = _cohort(500, seed=5), _cohort(8_000, seed=6)
    for c in (small, large):
        c["p"] = np.clip(c["p"] * 0.8, 0.0, 1.0)
    widths = {}
    for name, c in (("small", small), ("large", large)):
        report = _evaluate(c, n_boot=200)
        for block in (report.metrics, report.high_band):
            for metric, interval in intervals_of(block).items():
                assert interval.low <= interval.value <= interval.high, (name, metric, interval)
                widths[name, metric] = interval.high - interval.low
    for metric in ("roc_auc", "pr_auc", "brier", "log_loss", "ece", "precision", "recall", "flag_rate"):
        # 16 times the cases: about a quarter of the width; half is a generous bound
        assert widths["large", metric] < 0.5 * widths["small", metric], metric


def test_evaluate_adds_the_oracle_only_with_truth() -> None:
    c = _cohort(3_000, seed=7)
    assert _evaluate(c, n_boot=10).oracle is None
    report = _evaluate(c, truth=c["truth"], n_boot=200)
    oracle = report.oracle
    assert oracle is not None
    assert oracle.roc_auc.value == pytest.approx(roc_auc_score(c["y"], c["truth"]), abs=1e-12)
    assert oracle.brier.value == pytest.approx(brier_score_loss(c["y"], c["truth"]), abs=1e-12)
    ratio, auc = oracle.auc_ratio, report.metrics.roc_auc
    assert ratio.value == pytest.approx(auc.value / oracle.roc_auc.value)
    assert ratio.low <= ratio.value <= ratio.high < 1.0  # a noisy copy of the truth ranks worse than it
    # the ratio comes from the same resamples, so its interval is narrower than the AUCs' own
    assert ratio.high - ratio.low < auc.high - auc.low


def test_evaluate_bands_report_observed_and_predicted_rates() -> None:
    y = np.array([0, 0, 1, 0, 1, 1, 1, 0])
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.8, 0.9, 0.7])
    band = np.array(["low", "low", "low", "medium", "medium", "high", "high", "high"])
    report = evaluate(y, p, high=band == "high", band=band, n_boot=10)
    assert list(report.bands) == list(BANDS)
    assert all(isinstance(outcome, BandOutcome) for outcome in report.bands.values())
    bands = report.as_dict()["bands"]
    assert bands["low"] == {"n": 3, "observed_rate": pytest.approx(1 / 3), "mean_predicted": pytest.approx(0.2)}
    assert bands["medium"] == {"n": 2, "observed_rate": 0.5, "mean_predicted": pytest.approx(0.45)}
    assert bands["high"] == {"n": 3, "observed_rate": pytest.approx(2 / 3), "mean_predicted": pytest.approx(0.8)}
    assert report.high_band.precision.value == pytest.approx(2 / 3)
    assert report.high_band.recall.value == pytest.approx(2 / 4)


def test_evaluate_reports_an_empty_band_as_nan() -> None:
    report = evaluate(np.array([0, 1]), np.array([0.2, 0.4]), high=np.array([False, False]),
                      band=np.array(["low", "medium"]), n_boot=5)  # fmt: skip
    assert report.bands["high"].n == 0
    assert math.isnan(report.bands["high"].observed_rate)
    assert math.isnan(report.high_band.precision.value)


def test_evaluate_rejects_unknown_band_names() -> None:
    with pytest.raises(ValueError, match="unknown band names"):
        evaluate(np.array([0, 1]), np.array([0.2, 0.4]), high=np.array([False, False]), band=np.array(["low", "mid"]))


def test_evaluate_is_deterministic_for_a_seed() -> None:
    c = _cohort(1_000, seed=8)
    first = _evaluate(c, truth=c["truth"], n_boot=50, seed=3)
    assert _evaluate(c, truth=c["truth"], n_boot=50, seed=3) == first
    assert _evaluate(c, truth=c["truth"], n_boot=50, seed=4) != first


def test_evaluate_output_is_json_serialisable_in_its_fields_order() -> None:
    c = _cohort(500, seed=9)
    report = _evaluate(c, truth=c["truth"], n_boot=20).as_dict()
    assert json.loads(json.dumps(report)) == report
    assert list(report) == ["n", "positives", "prevalence", "metrics", "high_band", "bands", "oracle"]
    assert list(report["metrics"]) == ["roc_auc", "pr_auc", "brier", "log_loss", "ece"]
    assert list(report["high_band"]) == ["precision", "recall", "flag_rate"]
    assert list(report["oracle"]) == ["roc_auc", "brier", "auc_ratio"]
    assert list(report["metrics"]["ece"]) == ["value", "low", "high"]
    assert list(report["bands"]["low"]) == ["n", "observed_rate", "mean_predicted"]


def test_evaluate_gives_nan_auc_for_a_single_class() -> None:
    y = np.zeros(50, dtype=np.int64)
    p = np.linspace(0.01, 0.5, 50)
    band = np.where(p > 0.4, "high", "low")
    report = evaluate(y, p, high=band == "high", band=band, truth=p, n_boot=20)
    assert report.oracle is not None
    for interval in (report.metrics.roc_auc, report.metrics.pr_auc, report.oracle.auc_ratio):
        assert all(math.isnan(v) for v in (interval.value, interval.low, interval.high))
    assert report.metrics.brier.value == pytest.approx(brier_score_loss(y, p))
    assert math.isnan(report.high_band.recall.value)


def test_evaluate_without_resamples_leaves_intervals_nan() -> None:
    c = _cohort(200, seed=10)
    interval: Interval = _evaluate(c, n_boot=0).metrics.roc_auc
    assert not math.isnan(interval.value)
    assert math.isnan(interval.low)
    assert math.isnan(interval.high)


def test_calibration_plot_writes_a_png(tmp_path: Path) -> None:
    c = _cohort(1_000, seed=11)
    path = tmp_path / "plots" / "calibration.png"
    calibration_plot(c["y"], c["p"], path, title="Test set")
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    assert path.stat().st_size > 5_000
