"""Splitting by time: latest complete year for test, the year before for validation, no child on two sides."""

from __future__ import annotations

import datetime as dt

import pytest

from training import TrainingFrame
from training.split import child_group, collection_year, split_by_time


def test_split_puts_the_latest_complete_year_in_test(tiny_frame: TrainingFrame) -> None:
    split = split_by_time(tiny_frame.frame, data_end=dt.date(2025, 3, 31))
    assert (split.test_year, split.validation_year) == (2024, 2023)
    assert set(split.test["closure_date"].map(collection_year)) == {2024}
    assert set(split.validation["closure_date"].map(collection_year)) == {2023}
    assert split.train["closure_date"].map(collection_year).max() <= 2022


def test_split_keeps_every_child_on_one_side(tiny_frame: TrainingFrame) -> None:
    split = split_by_time(tiny_frame.frame, data_end=dt.date(2025, 3, 31))
    train, valid, test = (set(part["la_child_id"]) for part in (split.train, split.validation, split.test))
    assert not train & test
    assert not train & valid
    assert not valid & test
    refit = set(split.refit["la_child_id"])
    assert not refit & test
    assert refit >= train | valid
    # Every training-group child, none that stopped or chose the booster.
    assert set(split.calibration["la_child_id"]) >= train
    assert not set(split.calibration["la_child_id"]) & valid
    assert len(split.refit) + len(split.test) + split.unused == len(tiny_frame.frame)


def test_split_does_not_choose_sides_by_outcome(tiny_frame: TrainingFrame) -> None:
    # Children who come back have later closures; a split that dropped them from training would bias it low.
    frame = tiny_frame.frame
    split = split_by_time(frame, data_end=dt.date(2025, 3, 31))
    earlier = frame[frame["closure_date"].map(collection_year) <= 2022]
    assert abs(split.train["label"].mean() - earlier["label"].mean()) < 0.03


def test_split_assigns_a_child_to_one_group_for_a_seed() -> None:
    groups = [child_group(f"C{i}", seed=5) for i in range(4000)]
    assert groups == [child_group(f"C{i}", seed=5) for i in range(4000)]
    assert abs(groups.count("test") / 4000 - 0.3) < 0.03
    assert abs(groups.count("validation") / 4000 - 0.2) < 0.03


def test_split_refuses_too_few_complete_years(tiny_frame: TrainingFrame) -> None:
    recent = tiny_frame.frame[tiny_frame.frame["closure_date"] >= dt.date(2022, 4, 1)]
    with pytest.raises(ValueError, match="at least three collection years"):
        split_by_time(recent, data_end=dt.date(2025, 3, 31))


@pytest.mark.parametrize(("day", "year"), [(dt.date(2024, 3, 31), 2024), (dt.date(2024, 4, 1), 2025)])
def test_collection_year_runs_april_to_march(day: dt.date, year: int) -> None:
    assert collection_year(day) == year
