"""Split closures by time and by child: train on earlier years, validate on the next, test on the latest."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["TEST_SHARE", "VALIDATION_SHARE", "Split", "child_group", "collection_year", "split_by_time"]

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
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    train_years: tuple[int, int]
    validation_year: int
    test_year: int
    unused: int  # closures outside their child's side (e.g. a test-group child's earlier closures)

    def describe(self) -> dict[str, object]:
        return {
            "train_years": list(self.train_years),
            "validation_year": self.validation_year,
            "test_year": self.test_year,
            "rows": {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)},
            "unused_closures": self.unused,
            "child_shares": {"test": TEST_SHARE, "validation": VALIDATION_SHARE},
        }


def split_by_time(frame: pd.DataFrame, *, data_end: dt.date, seed: int = 0) -> Split:
    """Test on the latest collection year (1 April to 31 March) whose every closure has a full year of follow-up,
    validate on the year before, train on everything earlier.

    No child is on two sides, and no side is chosen by outcome: each child is assigned once, by a seeded hash of
    their id, to the test group (``TEST_SHARE`` of children), the validation group or the training group, and each
    side takes its group's closures of its years. (Dropping from training every child seen again later would drop
    exactly the children who came back: the training labels would be biased low.)
    """
    years = frame["closure_date"].map(collection_year)
    complete = [int(y) for y in sorted(years.unique()) if dt.date(y, 3, 31) + dt.timedelta(days=365) <= data_end]
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
    return Split(
        train=frame[in_train].reset_index(drop=True),
        validation=frame[in_validation].reset_index(drop=True),
        test=frame[in_test].reset_index(drop=True),
        train_years=(int(years[years < validation_year].min()), validation_year - 1),
        validation_year=validation_year,
        test_year=test_year,
        unused=int(len(frame) - np.count_nonzero(in_test | in_validation | in_train)),
    )
