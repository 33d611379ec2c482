"""The rolling-origin backtest: each origin trained on the past of other children only, tested on its year."""

from __future__ import annotations

import datetime as dt
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outcomes.backtest import BOOSTER, LOGISTIC
from training import TrainingFrame
from training import backtest as backtest_stage
from training.backtest import BASE_RATE, backtest_origin, run_backtest, version_predictions
from training.evaluation import evaluate_bundle
from training.fit import fit_booster, fit_bundle
from training.settings import SearchSpace
from training.split import child_group, collection_year, rolling_origins, split_by_time

DATA_END = dt.date(2025, 3, 31)

closures = st.lists(
    st.tuples(st.integers(0, 60), st.dates(dt.date(2015, 4, 1), dt.date(2025, 3, 30))), min_size=1, max_size=200
)


@settings(max_examples=60, deadline=None)
@given(rows=closures, years=st.integers(1, 5), seed=st.integers(0, 3))
def test_backtest_never_trains_on_a_tested_child_or_a_later_year(
    rows: list[tuple[int, dt.date]], years: int, seed: int
) -> None:
    frame = pd.DataFrame({"la_child_id": [f"C{c}" for c, _ in rows], "closure_date": [d for _, d in rows]})
    origins = rolling_origins(frame, data_end=DATA_END, years=years, seed=seed)
    assert len(origins) <= years
    for origin in origins:
        trained = set(origin.train["la_child_id"])
        assert trained.isdisjoint(set(origin.test["la_child_id"]))
        assert (origin.train["closure_date"].map(collection_year) < origin.year).all()
        assert (origin.test["closure_date"].map(collection_year) == origin.year).all()
        # Follow-up complete: the tested year ended a full year before the data do.
        assert dt.date(origin.year, 3, 31) + dt.timedelta(days=365) <= DATA_END
        assert {child_group(c, seed=seed) for c in origin.test["la_child_id"]} <= {"test"}
        assert {child_group(c, seed=seed) for c in origin.calibration["la_child_id"]} <= {"train"}
        assert set(origin.calibration["la_child_id"]) <= trained


def test_rolling_origins_are_the_last_complete_years(tiny_frame: TrainingFrame) -> None:
    origins = rolling_origins(tiny_frame.frame, data_end=DATA_END, years=3)
    assert [o.year for o in origins] == [2022, 2023, 2024]
    # The last origin tests exactly the single split's test year.
    split = split_by_time(tiny_frame.frame, data_end=DATA_END)
    assert len(origins[-1].test) == len(split.test)
    with pytest.raises(ValueError, match="at least one origin"):
        rolling_origins(tiny_frame.frame, data_end=DATA_END, years=0)


def test_backtest_evaluates_every_model_on_the_same_closures(tiny_frame: TrainingFrame) -> None:
    split = split_by_time(tiny_frame.frame, data_end=DATA_END, seed=2)
    search = SearchSpace(max_rounds=60)
    fit = fit_booster(split.train, split.validation, seed=2, search=search)
    backtest = run_backtest(tiny_frame.frame, data_end=DATA_END, fit=fit, years=2, seed=2, n_boot=50, chance_draws=50)
    assert backtest is not None
    assert [row.year for row in backtest.years] == [2023, 2024]
    for row in backtest.years:
        assert list(row.models) == [BOOSTER, LOGISTIC, BASE_RATE]
        assert len({f.n for f in row.models.values()}) == 1
        assert len({f.positives for f in row.models.values()}) == 1
        assert np.isclose(row.models[BASE_RATE].roc_auc.value, 0.5)
        assert row.models[BOOSTER].auc_ratio is not None  # the synthetic truth is known
    assert backtest.pooled.models[BOOSTER].n == sum(row.models[BOOSTER].n for row in backtest.years)
    assert backtest.versus_logistic is not None
    worst = backtest.spread["all"]["roc_auc"]["worst"]
    assert worst == min(row.models[BOOSTER].roc_auc.value for row in backtest.years)
    assert run_backtest(tiny_frame.frame, data_end=DATA_END, fit=fit, years=0, seed=2, n_boot=50) is None


def test_origins_fitted_side_by_side_give_what_one_after_another_gives(
    tiny_frame: TrainingFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    split = split_by_time(tiny_frame.frame, data_end=DATA_END, seed=3)
    fit = fit_booster(split.train, split.validation, seed=3, search=SearchSpace(max_rounds=40))
    pools: list[int] = []

    class CountedPool(ProcessPoolExecutor):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pools.append(kwargs["max_workers"])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(backtest_stage, "ProcessPoolExecutor", CountedPool)
    runs = {}
    for workers in (1, 2):  # one core: in this process, one after another; two: in two forked processes
        monkeypatch.setattr(os, "cpu_count", lambda workers=workers: workers)
        runs[workers] = run_backtest(tiny_frame.frame, data_end=DATA_END, fit=fit, years=2, seed=3, n_boot=50,
                                     chance_draws=50)  # fmt: skip
    one, two = runs[1], runs[2]
    assert pools == [2]  # the second run fitted its two origins in two processes
    assert one is not None
    assert two is not None
    assert [row.year for row in one.years] == [row.year for row in two.years] == [2023, 2024]
    assert one.as_dict() == two.as_dict()


def test_the_last_origin_is_this_version(tiny_frame: TrainingFrame) -> None:
    # The split's refit rows are the last origin's training rows: refitting that origin gives the version's figures,
    # so the pipeline reuses the version's predictions instead of fitting it twice.
    split = split_by_time(tiny_frame.frame, data_end=DATA_END, seed=4)
    fitted = fit_bundle(split, seed=4, search=SearchSpace(max_rounds=40))
    evaluated = evaluate_bundle(fitted, split, data_end=DATA_END, n_boot=50, seed=4)
    last = rolling_origins(tiny_frame.frame, data_end=DATA_END, years=1, seed=4)[0]
    refitted = backtest_origin(last, fit=fitted.fit, seed=4)
    reused = version_predictions(evaluated, train_rows=len(split.refit))
    assert (refitted.year, refitted.train_rows) == (reused.year, reused.train_rows)
    np.testing.assert_array_equal(refitted.y, reused.y)
    for name in (BOOSTER, LOGISTIC, BASE_RATE):
        np.testing.assert_allclose(refitted.p[name], reused.p[name], rtol=0, atol=1e-12)
