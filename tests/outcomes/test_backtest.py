"""The backtest's figures: calibration judged against chance, the worst year, the pooled comparison of models."""

from __future__ import annotations

import numpy as np
import pytest

from outcomes.backtest import BOOSTER, LOGISTIC, OriginPredictions, backtest_figures, summarise_backtest


def _year(seed: int, n: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0.05, 0.8, n)
    return truth, (rng.uniform(size=n) < truth).astype(int)


def _overconfident(p: np.ndarray) -> np.ndarray:
    doubled: np.ndarray = 1 / (1 + np.exp(-2 * np.log(p / (1 - p))))
    return doubled


def test_figures_of_the_truth_are_calibrated_within_chance() -> None:
    # The bound is the 95th percentile of chance: the truth itself passes it about 19 times in 20.
    years = [backtest_figures(y, truth, n_boot=0, seed=0, chance_draws=200) for truth, y in map(_year, range(10, 20))]
    assert sum(f.ece.value <= f.ece_chance for f in years) >= 8
    truth, y = _year(0)
    figures = backtest_figures(y, truth, truth=truth, n_boot=100, seed=0, chance_draws=100)
    assert figures.slope.low < 1 < figures.slope.high
    assert figures.intercept.low < 0 < figures.intercept.high
    assert figures.auc_ratio is not None
    assert figures.auc_ratio.value == pytest.approx(1.0)
    assert figures.roc_auc.low < figures.roc_auc.value < figures.roc_auc.high


def test_figures_of_an_overconfident_model_show_it() -> None:
    truth, y = _year(1)
    figures = backtest_figures(y, _overconfident(truth), n_boot=100, seed=0, chance_draws=100)
    assert figures.ece.value > figures.ece_chance
    assert figures.slope.high < 0.8
    assert figures.auc_ratio is None


def test_summary_pools_years_and_names_the_worst() -> None:
    origins = []
    for year, seed in ((2022, 2), (2023, 3), (2024, 4)):
        truth, y = _year(seed, 1500)
        # The middle year is over-confident: the worst slope and the worst calibration error are that year's.
        p = _overconfident(truth) if year == 2023 else truth
        noisy = np.clip(truth + np.random.default_rng(seed).normal(0, 0.2, truth.size), 0.01, 0.99)
        in_scope = np.arange(truth.size) < 400
        origins.append(OriginPredictions(year, 5000, y, in_scope, {BOOSTER: p, LOGISTIC: noisy}, truth))
    backtest = summarise_backtest(origins, n_boot=100, seed=0, chance_draws=100)
    assert [row.year for row in backtest.years] == [2022, 2023, 2024]
    assert backtest.pooled.models[BOOSTER].n == 4500
    assert backtest.pooled.neglect is not None
    assert backtest.pooled.neglect.n == 1200
    spread = backtest.spread["all"]
    assert spread["slope"]["worst"] == backtest.years[1].models[BOOSTER].slope.value
    assert spread["ece"]["worst"] == max(row.models[BOOSTER].ece.value for row in backtest.years)
    assert spread["roc_auc"]["mean"] == pytest.approx(
        np.mean([r.models[BOOSTER].roc_auc.value for r in backtest.years])
    )
    versus = backtest.versus_logistic
    assert versus is not None
    assert versus.low > 0
    assert set(backtest.as_dict()) == {"years", "pooled", "versus_logistic", "spread"}


def test_summary_needs_an_origin_and_the_booster() -> None:
    with pytest.raises(ValueError, match="at least one tested year"):
        summarise_backtest([], n_boot=10, seed=0)
    truth, y = _year(5, 100)
    with pytest.raises(ValueError, match="no probabilities of the LightGBM"):
        summarise_backtest([OriginPredictions(2024, 10, y, y > 2, {LOGISTIC: truth})], n_boot=10, seed=0)
