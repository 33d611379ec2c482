"""Split closures by time and by child: train on earlier years, validate on the next, test on the latest."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "TEST_SHARE",
    "VALIDATION_SHARE",
    "Origin",
    "Split",
    "TooFewClosuresError",
    "child_group",
    "collection_year",
    "complete_years",
    "require_enough_closures",
    "rolling_origins",
    "split_by_time",
]

TEST_SHARE = 0.3
VALIDATION_SHARE = 0.2


def collection_year(day: dt.date) -> int:
    """The census collection year holding ``day`` (the year of the 31 March that ends it)."""
    return day.year + 1 if day.month >= 4 else day.year


def child_group(child_id: str, *, seed: int) -> str:
    """'test', 'validation' or 'train': fixed for a child and seed, independent of anything about the case."""
    digest = hashlib.sha256(f"{seed}:{child_id}".encode()).digest()
    share = int.from_bytes(digest[:8], "big") / 2**64
    if share < TEST_SHARE:
        return "test"
    return "validation" if share < TEST_SHARE + VALIDATION_SHARE else "train"


@dataclass
class Split:
    """The sides of one split. ``train`` and ``validation`` are for the search (validation children stop and choose
    it); ``refit`` is what the final booster learns from, ``calibration`` whose out-of-fold scores calibrate it."""

    train: pd.DataFrame  # training-group children, years before the validation year: the search's training rows
    validation: pd.DataFrame  # validation-group children, the validation year: early stopping and choice
    test: pd.DataFrame  # test-group children, the test year
    train_years: tuple[int, int]
    validation_year: int
    test_year: int
    unused: int  # closures neither refitted on nor tested (a test-group child's earlier closures, later years)
    refit: pd.DataFrame  # every closure before the test year of every child outside the test group
    calibration: pd.DataFrame  # the training-group children's part of ``refit``

    def describe(self) -> dict[str, object]:
        return {
            "train_years": list(self.train_years),
            "validation_year": self.validation_year,
            "test_year": self.test_year,
            "rows": {
                "train": len(self.train),
                "validation": len(self.validation),
                "test": len(self.test),
                "refit": len(self.refit),
                "calibration": len(self.calibration),
            },
            "unused_closures": self.unused,
            "child_shares": {"test": TEST_SHARE, "validation": VALIDATION_SHARE},
        }


class TooFewClosuresError(ValueError):
    """Too little labelled data for a model whose figures mean anything."""


def require_enough_closures(frame: pd.DataFrame, *, min_closures: int, min_rereferrals: int) -> None:
    """Refuse, naming what there is and what is needed, when the labelled closures or the re-referrals among them
    are fewer than the minimum (the policy file's ``[data]`` section)."""
    closures, rereferrals = len(frame), int(frame["label"].sum()) if len(frame) else 0
    if closures < min_closures or rereferrals < min_rereferrals:
        raise TooFewClosuresError(
            f"too little data to train a model whose figures mean anything: the returns hold {closures:,} labelled "
            f"closures (a full year of follow-up), {rereferrals:,} of them re-referred; training needs at least "
            f"{min_closures:,} closures and {min_rereferrals:,} re-referrals (training/policy.toml, [data]). "
            "Give more years of returns, or the returns of a larger area."
        )


def complete_years(frame: pd.DataFrame, *, data_end: dt.date) -> list[int]:
    """Collection years of the frame's closures whose every closure has a full year of follow-up by ``data_end``."""
    years = frame["closure_date"].map(collection_year)
    return [int(y) for y in sorted(years.unique()) if dt.date(y, 3, 31) + dt.timedelta(days=365) <= data_end]


@dataclass
class Origin:
    """One origin of the rolling backtest: trained on the years before ``year``, tested on ``year``."""

    year: int
    train: pd.DataFrame  # closures before ``year`` of children outside the test group
    calibration: pd.DataFrame  # the part of ``train`` whose children never stopped or chose a booster
    test: pd.DataFrame  # closures in ``year`` of children in the test group


def rolling_origins(frame: pd.DataFrame, *, data_end: dt.date, years: int, seed: int = 0) -> list[Origin]:
    """The last ``years`` complete collection years, each with the closures before it to train on.

    The children's groups are those of ``split_by_time`` (same seed): a test-group child is tested and never trained
    on, at every origin, and nothing of the tested year or later is trained on. An origin needs two earlier years
    (the calibrator's out-of-fold scores cover more than one year); years without them are left out.
    """
    if years < 1:
        raise ValueError(f"the backtest needs at least one origin, got {years}")
    year_of = frame["closure_date"].map(collection_year).to_numpy()
    groups = frame["la_child_id"].map(lambda child: child_group(str(child), seed=seed)).to_numpy()
    complete = complete_years(frame, data_end=data_end)
    first = int(year_of.min()) if len(frame) else 0
    origins = []
    for year in complete[-years:]:
        if year - first < 2:
            continue
        before = (year_of < year) & (groups != "test")
        train = frame[before].reset_index(drop=True)
        origins.append(
            Origin(
                year=year,
                train=train,
                calibration=train[(groups[before] == "train")].reset_index(drop=True),
                test=frame[(year_of == year) & (groups == "test")].reset_index(drop=True),
            )
        )
    return origins


def split_by_time(frame: pd.DataFrame, *, data_end: dt.date, seed: int = 0) -> Split:
    """Test on the latest collection year (1 April to 31 March) whose every closure has a full year of follow-up,
    validate on the year before, train on everything earlier; refit on every closure before the test year.

    No child is on two sides, and no side is chosen by outcome: each child is assigned once, by a seeded hash of
    their id, to the test group (``TEST_SHARE`` of children), the validation group or the training group, and each
    side takes its group's closures of its years. (Dropping from training every child seen again later would drop
    exactly the children who came back: the training labels would be biased low.) The final booster is refitted on
    every closure before the test year of every child outside the test group: exactly the training rows of the
    backtest's last origin (``rolling_origins``), in the same order, so that origin is this split's model.
    """
    years = frame["closure_date"].map(collection_year)
    complete = complete_years(frame, data_end=data_end)
    if len(complete) < 3:
        raise ValueError(
            f"need at least three collection years of closures with a full year of follow-up before {data_end}, "
            f"found {len(complete)}: give more years of returns"
        )
    test_year, validation_year = complete[-1], complete[-2]
    groups = frame["la_child_id"].map(lambda child: child_group(str(child), seed=seed)).to_numpy()
    in_test = (years == test_year).to_numpy() & (groups == "test")
    in_validation = (years == validation_year).to_numpy() & (groups == "validation")
    in_train = (years < validation_year).to_numpy() & (groups == "train")
    in_refit = (years < test_year).to_numpy() & (groups != "test")
    refit = frame[in_refit].reset_index(drop=True)
    return Split(
        train=frame[in_train].reset_index(drop=True),
        validation=frame[in_validation].reset_index(drop=True),
        test=frame[in_test].reset_index(drop=True),
        train_years=(int(years[years < validation_year].min()), validation_year - 1),
        validation_year=validation_year,
        test_year=test_year,
        unused=int(len(frame) - np.count_nonzero(in_test | in_refit)),
        refit=refit,
        calibration=refit[groups[in_refit] == "train"].reset_index(drop=True),
    )
