"""The model bundle: round trips, calibration fitted without the test year, bands and reference checks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import FEATURE_NAMES
from models import Bands, Calibrator, RiskModel
from training import TrainingFrame
from training.fit import fit_bundle
from training.settings import SearchSpace
from training.split import Split, split_by_time


@pytest.fixture(scope="module")
def split(tiny_frame: TrainingFrame) -> Split:
    return split_by_time(tiny_frame.frame, data_end=dt.date(2025, 3, 31))


@pytest.fixture(scope="module")
def model(split: Split) -> RiskModel:
    return fit_bundle(split, seed=3, search=SearchSpace()).model()


def test_bundle_save_and_load_give_identical_scores(model: RiskModel, split: Split, tmp_path: Path) -> None:
    model.save(tmp_path / "bundle")
    loaded = RiskModel.load(tmp_path / "bundle")
    np.testing.assert_array_equal(loaded.raw_score(split.test), model.raw_score(split.test))
    np.testing.assert_array_equal(loaded.predict_proba(split.test), model.predict_proba(split.test))
    assert loaded.bands == model.bands
    assert loaded.calibrator == model.calibrator


def test_bundle_is_built_without_the_test_year(model: RiskModel, split: Split) -> None:
    # Scramble the test year's labels and features: nothing the model holds may change.
    rng = np.random.default_rng(0)
    scrambled_test = split.test.copy()
    scrambled_test["label"] = rng.permutation(scrambled_test["label"].to_numpy())
    scrambled_test["days_open"] = rng.permutation(scrambled_test["days_open"].to_numpy())
    other = fit_bundle(
        Split(split.train, split.validation, scrambled_test, split.train_years, split.validation_year,
              split.test_year, split.unused),
        seed=3,
        search=SearchSpace(),
    ).model()  # fmt: skip
    assert other.calibrator == model.calibrator
    assert other.bands == model.bands
    np.testing.assert_array_equal(other.predict_proba(split.test), model.predict_proba(split.test))


def test_bundle_is_compact_and_calibrated_on_held_out_data(model: RiskModel, split: Split) -> None:
    assert model.booster.num_trees() <= 800
    p_valid = model.predict_proba(split.validation)
    assert abs(p_valid.mean() - split.validation["label"].mean()) < 0.02


def test_bundle_scores_ignore_column_order_and_extra_columns(model: RiskModel, split: Split) -> None:
    shuffled = split.test[[*reversed(FEATURE_NAMES), "la_child_id", "label"]]
    np.testing.assert_array_equal(model.predict_proba(shuffled), model.predict_proba(split.test))


def test_bundle_refuses_a_different_feature_specification(model: RiskModel) -> None:
    spec = [dict(f) for f in model.feature_spec][:-1]
    with pytest.raises(ValueError, match="retrain"):
        RiskModel(model.booster, model.calibrator, model.bands, model.reference, feature_spec=spec)


def test_bands_assign_by_threshold() -> None:
    bands = Bands(low_below=0.2, high_from=0.5)
    assert list(bands.assign(np.array([0.1, 0.2, 0.49, 0.5, 0.9]))) == ["low", "medium", "medium", "high", "high"]


@pytest.mark.parametrize("calibrator", [Calibrator("platt", a=1.2, b=-0.3), Calibrator("isotonic", x=(-2.0, 0.0, 2.0),
                                                                                      y=(0.1, 0.3, 0.8))])  # fmt: skip
def test_calibrators_are_monotone_and_round_trip(calibrator: Calibrator) -> None:
    raw = np.linspace(-4, 4, 50)
    p = calibrator.apply(raw)
    assert np.all(np.diff(p) >= 0)
    assert np.all((p > 0) & (p < 1))
    assert Calibrator.from_dict(calibrator.to_dict()) == calibrator


def test_reference_flags_a_case_unlike_any_closed_case(model: RiskModel, split: Split) -> None:
    typical = split.test.iloc[0].copy()
    assert isinstance(model.reference.reasons(typical), list)
    odd = typical.copy()
    odd["days_open"] = 50_000.0
    reasons = model.reference.reasons(odd)
    assert any("Days since this referral" in r for r in reasons)
    frame = pd.DataFrame([odd])
    assert np.isfinite(model.predict_proba(frame)).all()
