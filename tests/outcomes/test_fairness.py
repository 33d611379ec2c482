"""Fairness audit: groups and their sizes, error rates, calibration breaches, age bands and the plot."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from outcomes.fairness import (
    AGE_BANDS,
    AUDIT_GROUPS,
    COLUMNS,
    age_band,
    fairness_audit,
    fairness_plot,
    group_calibration_breaches,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ETHNIC_GROUPS = ["white", "mixed", "asian", "black", "other", "unknown"]


def _cohort(n: int = 24_000, *, seed: int = 0, shifted: str | None = "black") -> pd.DataFrame:
    """Calibrated scores for everyone except the ``shifted`` ethnic group (+0.15) and a tiny, badly scored group.

    The groups other than the tiny one are large enough (2,000+) that the noise in their calibration error stays
    well under 0.05.
    """
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0.05, 0.8, n)
    ethnic = rng.choice([*ETHNIC_GROUPS[:4], "unknown"], n, p=[0.5, 0.1, 0.15, 0.15, 0.1])
    ethnic[:40] = "other"  # tiny: 40 cases, scored far too high
    p = np.where(ethnic == shifted, np.clip(truth + 0.15, 0.0, 1.0), truth)
    p[:40] = 0.95
    age = rng.uniform(-0.3, 17.99, n)
    age[rng.uniform(size=n) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "y": (rng.uniform(size=n) < truth).astype(np.int64),
            "p": p,
            "high": p >= 0.6,
            "sex": pd.Categorical(rng.choice(["M", "F", "U"], n, p=[0.45, 0.45, 0.1]), categories=["F", "M", "U"]),
            "ethnic_group": pd.Categorical(ethnic, categories=ETHNIC_GROUPS),
            "disability": rng.choice([0.0, 1.0, np.nan], n, p=[0.6, 0.25, 0.15]),
            "age_years": age,
        }
    )


def _row(table: pd.DataFrame, dimension: str, group: str) -> dict[str, Any]:
    (row,) = table[(table["dimension"] == dimension) & (table["group"] == group)].to_dict("records")
    return {str(k): v for k, v in row.items()}


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return _cohort()


@pytest.fixture(scope="module")
def table(cohort: pd.DataFrame) -> pd.DataFrame:
    return fairness_audit(cohort, n_boot=50)


def test_age_band_maps_ages_to_bands() -> None:
    ages = pd.Series([-0.2, 0.0, 4.99, 5.0, 9.99, 10.0, 14.99, 15.0, 17.99, np.nan], index=list("abcdefghij"))
    bands = age_band(ages)
    assert list(bands) == ["0-4", "0-4", "0-4", "5-9", "5-9", "10-14", "10-14", "15-17", "15-17", "unknown"]
    assert list(bands.cat.categories) == list(AGE_BANDS)
    assert list(bands.index) == list(ages.index)


def test_age_band_rejects_adults() -> None:
    with pytest.raises(ValueError, match="18 or over"):
        age_band(pd.Series([3.0, 18.0]))


def test_audit_lists_every_group_with_its_size(cohort: pd.DataFrame, table: pd.DataFrame) -> None:
    assert list(table.columns) == list(COLUMNS)
    assert list(dict.fromkeys(table["dimension"])) == list(AUDIT_GROUPS)
    disability = cohort["disability"].map({1.0: "yes", 0.0: "no"}).fillna("unknown")
    expected = {
        "sex": cohort["sex"].astype(str).value_counts(),
        "ethnic_group": cohort["ethnic_group"].astype(str).value_counts(),
        "disability": disability.value_counts(),
        "age_band": age_band(cohort["age_years"]).astype(str).value_counts(),
    }
    for dimension, counts in expected.items():
        part = table[table["dimension"] == dimension]
        assert dict(zip(part["group"], part["n"], strict=True)) == counts.to_dict(), dimension
    assert "unknown" in set(table.loc[table["dimension"] == "age_band", "group"])
    assert set(table.loc[table["dimension"] == "disability", "group"]) == {"yes", "no", "unknown"}


def test_audit_group_counts_and_rates_match_the_data(cohort: pd.DataFrame, table: pd.DataFrame) -> None:
    row = _row(table, "ethnic_group", "asian")
    asian = cohort[cohort["ethnic_group"] == "asian"]
    assert row["positives"] == asian["y"].sum()
    assert row["observed_rate"] == pytest.approx(asian["y"].mean())
    assert row["mean_predicted"] == pytest.approx(asian["p"].mean())
    assert row["flag_rate"] == pytest.approx(asian["high"].mean())
    for metric in ("auc", "ece", "flag_rate", "fpr", "fnr"):
        assert row[f"{metric}_low"] < row[f"{metric}_high"], metric


def test_breaches_name_the_miscalibrated_group_only(table: pd.DataFrame) -> None:
    breaches = group_calibration_breaches(table)
    assert len(breaches) == 1
    black = _row(table, "ethnic_group", "black")
    assert breaches == [f"ethnic_group=black: calibration error {black['ece']:.3f} > 0.05 (n={black['n']})"]


def test_breaches_skip_groups_below_the_minimum_size(table: pd.DataFrame) -> None:
    tiny = _row(table, "ethnic_group", "other")
    assert tiny["n"] == 40
    assert tiny["ece"] > 0.3  # badly calibrated, but too small to judge
    assert not any(b.startswith("ethnic_group=other") for b in group_calibration_breaches(table))
    assert any(b.startswith("ethnic_group=other") for b in group_calibration_breaches(table, min_n=40))


def test_breaches_are_empty_when_every_group_is_calibrated() -> None:
    # every group 2,000 or more: below about 1,000 cases the noise alone often puts a calibrated group over 0.05
    cohort = _cohort(24_000, seed=1, shifted=None).iloc[40:]  # drop the tiny badly scored group as well
    assert group_calibration_breaches(fairness_audit(cohort, n_boot=0), max_ece=0.05, min_n=100) == []


def test_error_rates_equal_hand_computation() -> None:
    frame = pd.DataFrame(
        {
            "y": [1, 1, 0, 0, 0, 1, 1],
            "p": [0.9, 0.3, 0.7, 0.2, 0.1, 0.8, 0.4],
            "high": [True, False, True, False, False, True, False],
            "sex": ["F", "F", "F", "F", "F", "M", "M"],
            "ethnic_group": ["white"] * 7,
            "disability": [0.0] * 7,
            "age_years": [3.0] * 7,
        }
    )
    table = fairness_audit(frame, n_boot=20)
    girls = _row(table, "sex", "F")
    assert girls["fpr"] == pytest.approx(1 / 3)  # one of three negatives flagged
    assert girls["fnr"] == pytest.approx(1 / 2)  # one of two positives missed
    assert girls["flag_rate"] == pytest.approx(2 / 5)
    assert girls["auc"] == pytest.approx(5 / 6)  # 0.9 beats all three negatives, 0.3 beats two
    boys = _row(table, "sex", "M")
    assert math.isnan(boys["fpr"])  # no negatives: undefined (fairlearn itself would say 0)
    assert math.isnan(boys["fpr_low"])
    assert boys["fnr"] == pytest.approx(1 / 2)
    assert math.isnan(boys["auc"])
    everyone = _row(table, "ethnic_group", "white")
    assert (everyone["fpr"], everyone["fnr"]) == (pytest.approx(1 / 3), pytest.approx(2 / 4))


def test_audit_rejects_a_frame_without_the_audit_columns(cohort: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="ethnic_group"):
        fairness_audit(cohort.drop(columns="ethnic_group"), n_boot=0)


def test_audit_is_deterministic_for_a_seed(cohort: pd.DataFrame) -> None:
    part = cohort.iloc[:3_000]
    first = fairness_audit(part, n_boot=20, seed=5)
    pd.testing.assert_frame_equal(fairness_audit(part, n_boot=20, seed=5), first)
    assert not fairness_audit(part, n_boot=20, seed=6).equals(first)


def test_fairness_plot_writes_a_png(table: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "fairness.png"
    fairness_plot(table, path)
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    assert path.stat().st_size > 10_000
