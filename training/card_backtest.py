"""The model card's headline: the rolling-origin backtest as table rows (text), per year, pooled, mean and worst."""

from __future__ import annotations

import math
from typing import Any

from outcomes.backtest import BOOSTER, Backtest, Figures
from outcomes.evaluate import Evaluation, Interval
from training.gate import CalibrationCheck

__all__ = [
    "BACKTEST_COLUMNS",
    "backtest_headline",
    "backtest_models",
    "backtest_rows",
    "backtest_sentence",
    "test_year_row",
]

BACKTEST_COLUMNS = (
    "tested year",
    "training closures",
    "test closures",
    "ROC AUC",
    "share of the oracle's AUC",
    "PR AUC",
    "Brier score",
    "calibration error (a calibrated model: up to)",
    "calibration slope",
    "calibration intercept",
)


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _interval(interval: Interval | None, digits: int = 3) -> str:
    if interval is None or math.isnan(interval.value):
        return "n/a"
    if math.isnan(interval.low):
        return _num(interval.value, digits)
    return f"{interval.value:.{digits}f} ({interval.low:.{digits}f} to {interval.high:.{digits}f})"


def _row(label: str, train_rows: int | str, f: Figures) -> list[str]:
    return [
        label,
        str(train_rows),
        str(f.n),
        _interval(f.roc_auc),
        _interval(f.auc_ratio),
        _interval(f.pr_auc),
        _interval(f.brier),
        f"{_interval(f.ece)} ({_num(f.ece_chance)})",
        _interval(f.slope, 2),
        _interval(f.intercept, 2),
    ]


def _spread_row(label: str, spread: dict[str, dict[str, float]], key: str) -> list[str]:
    def cell(metric: str, digits: int = 3) -> str:
        return _num(spread[metric][key], digits) if metric in spread else "n/a"

    return [label, "", "", cell("roc_auc"), cell("auc_ratio"), cell("pr_auc"), cell("brier"),
            f"{cell('ece')} (over the bound by {cell('ece_over_chance')})", cell("slope", 2),
            cell("intercept", 2)]  # fmt: skip


def backtest_rows(backtest: Backtest, *, population: str) -> list[list[str]]:
    """Table rows for ``population`` ("all" or "neglect"): each tested year, every year pooled, the mean and the
    worst over years (the lowest AUC, the highest error, the slope farthest from 1)."""
    rows = []
    for year in (*backtest.years, backtest.pooled):
        figures = year.models[BOOSTER] if population == "all" else year.neglect
        if figures is not None:
            label = str(year.year) if year.year is not None else "**all years pooled**"
            rows.append(_row(label, year.train_rows if year.year is not None else "", figures))
    spread = backtest.spread.get(population, {})
    if spread:
        rows.append(_spread_row("mean over years", spread, "mean"))
        rows.append(_spread_row("worst year", spread, "worst"))
    return rows


def backtest_models(backtest: Backtest) -> list[list[str]]:
    """Every model on the pooled backtest closures: name, ROC AUC, PR AUC, Brier, calibration error, slope."""
    return [
        [name, _interval(f.roc_auc), _interval(f.pr_auc), _interval(f.brier), _interval(f.ece), _interval(f.slope, 2)]
        for name, f in backtest.pooled.models.items()
    ]


def backtest_sentence(backtest: Backtest) -> str:
    """Whether the booster beats the logistic regression on the pooled backtest beyond the interval."""
    versus = backtest.versus_logistic
    if versus is None or math.isnan(versus.value):
        return "The booster and the logistic regression could not be compared on the backtest."
    beats = versus.low > 0
    return (
        f"On the pooled backtest the booster's ROC AUC is {versus.value:+.3f} against the logistic regression's "
        f"(95% interval {versus.low:+.3f} to {versus.high:+.3f}): it "
        f"{'beats the simpler model beyond chance' if beats else 'does not beat the simpler model beyond chance'}."
    )


def backtest_headline(backtest: Backtest | None) -> dict[str, Any]:
    """The backtest's figures for the card's template (an empty ``years`` when there was no backtest)."""
    if backtest is None:
        return {"years": [], "columns": BACKTEST_COLUMNS}
    return {
        "years": [row.year for row in backtest.years],
        "columns": BACKTEST_COLUMNS,
        "all": backtest_rows(backtest, population="all"),
        "neglect": backtest_rows(backtest, population="neglect"),
        "models": backtest_models(backtest),
        "versus": backtest_sentence(backtest),
        "pooled": backtest.pooled.models[BOOSTER],
    }


def test_year_row(label: str, train_rows: int, evaluation: Evaluation, check: CalibrationCheck | None) -> list[str]:
    """This version's own test year in the backtest's columns (the gate's check gives its chance bound and slope)."""
    m = evaluation.metrics
    ratio = evaluation.oracle.auc_ratio if evaluation.oracle else None
    chance = _num(check.chance) if check else "n/a"
    slope = _interval(check.recalibration.slope, 2) if check else "n/a"
    intercept = _interval(check.recalibration.intercept, 2) if check else "n/a"
    return [label, str(train_rows), str(evaluation.n), _interval(m.roc_auc), _interval(ratio), _interval(m.pr_auc),
            _interval(m.brier), f"{_interval(m.ece)} ({chance})", slope, intercept]  # fmt: skip
