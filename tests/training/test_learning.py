"""The learning curve: nested shares of the training children, each child all in or all out, tested on the test year."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pytest

from training import TrainingFrame
from training import learning as learning_module
from training.fit import fit_booster
from training.learning import learning_curve, learning_rows, share_of
from training.settings import SearchSpace
from training.split import Split, split_by_time

DATA_END = dt.date(2025, 3, 31)


@pytest.fixture(scope="module")
def split(tiny_frame: TrainingFrame) -> Split:
    return split_by_time(tiny_frame.frame, data_end=DATA_END)


def test_shares_are_nested_and_drawn_by_child(split: Split) -> None:
    place = share_of(split.refit["la_child_id"], seed=5)
    children = split.refit["la_child_id"].astype(str)
    quarter, half = set(children[place < 0.25]), set(children[place < 0.5])
    assert quarter < half < set(children)
    # A child's closures are all in a share or all out of it.
    for share in (0.25, 0.5):
        inside = pd.Series(place < share, index=split.refit.index).groupby(children.to_numpy()).nunique()
        assert (inside == 1).all()
    assert 0.15 < len(quarter) / children.nunique() < 0.35
    np.testing.assert_array_equal(share_of(split.refit["la_child_id"], seed=5), place)  # the same every run


def test_learning_curve_refits_on_nested_shares_of_the_training_children_only(
    split: Split, monkeypatch: pytest.MonkeyPatch
) -> None:
    given: list[tuple[pd.DataFrame, pd.DataFrame]] = []
    refit = learning_module.refit_calibrated  # type: ignore[attr-defined]

    def recording(labelled: pd.DataFrame, rows: pd.DataFrame, **kwargs: Any) -> Any:
        given.append((labelled, rows))
        return refit(labelled, rows, **kwargs)

    monkeypatch.setattr(learning_module, "refit_calibrated", recording)
    fit = fit_booster(split.train, split.validation, seed=2, search=SearchSpace(max_rounds=40))
    p_full = np.full(len(split.test), float(split.refit["label"].mean()))
    curve = learning_curve(split, fit, p_full, seed=2, shares=(0.5, 0.25, 1.0))
    assert [p.share for p in curve.points] == [0.25, 0.5, 1.0]
    assert len(given) == 2  # the full share is this version itself: not refitted
    (quarter, _), (half, _) = given
    kids = [set(frame["la_child_id"].astype(str)) for frame in (quarter, half, split.refit)]
    assert kids[0] < kids[1] < kids[2]
    tested = set(split.test["la_child_id"].astype(str))
    for labelled, calibration in given:
        children = set(labelled["la_child_id"].astype(str))
        assert children.isdisjoint(tested)
        # every closure of a chosen child, none of another
        assert len(labelled) == split.refit["la_child_id"].astype(str).isin(children).sum()
        assert set(calibration["la_child_id"].astype(str)) <= children
    assert [p.closures for p in curve.points] == [len(quarter), len(half), len(split.refit)]
    assert curve.points[-1].roc_auc == pytest.approx(0.5)  # p_full: the base rate, a constant
    assert curve.test_closures == len(split.test)
    rows = learning_rows(curve)
    assert [r[0] for r in rows] == ["25%", "50%", "100%"]
