"""The model bundle: round trips, bands, calibrators and reference checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import FEATURE_NAMES
from models import Bands, Calibrator, RiskModel
from tests.models.conftest import Closures


@pytest.fixture(scope="module")
def model(tiny_model: RiskModel) -> RiskModel:
    return tiny_model


@pytest.fixture(scope="module")
def held_out(closures: Closures) -> pd.DataFrame:
    return closures.held_out


def test_bundle_save_and_load_give_identical_scores(model: RiskModel, held_out: pd.DataFrame, tmp_path: Path) -> None:
    model.save(tmp_path / "bundle")
    loaded = RiskModel.load(tmp_path / "bundle")
    np.testing.assert_array_equal(loaded.raw_score(held_out), model.raw_score(held_out))
    np.testing.assert_array_equal(loaded.predict_proba(held_out), model.predict_proba(held_out))
    assert loaded.bands == model.bands
    assert loaded.calibrator == model.calibrator
    assert loaded.metadata == model.metadata


def test_bundle_scores_ignore_column_order_and_extra_columns(model: RiskModel, held_out: pd.DataFrame) -> None:
    shuffled = held_out[[*reversed(FEATURE_NAMES), "la_child_id", "label"]]
    np.testing.assert_array_equal(model.predict_proba(shuffled), model.predict_proba(held_out))


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


def test_reference_flags_a_case_unlike_any_closed_case(model: RiskModel, held_out: pd.DataFrame) -> None:
    typical = held_out.iloc[0].copy()
    assert isinstance(model.reference.reasons(typical), list)
    odd = typical.copy()
    odd["days_open"] = 50_000.0
    reasons = model.reference.reasons(odd)
    assert any("Days since this referral" in r for r in reasons)
    frame = pd.DataFrame([odd])
    assert np.isfinite(model.predict_proba(frame)).all()


def test_population_aware_calibrator_moves_the_neglect_population_only(held_out: pd.DataFrame) -> None:
    pooled = Calibrator("platt", a=1.1, b=-0.2)
    aware = Calibrator("platt", a=1.1, b=-0.2, neglect=(1.4, 0.3))
    raw = np.linspace(-3, 3, 7)
    inside = np.array([True, False, True, False, True, False, True])
    p, q = pooled.apply(raw), aware.apply(raw, inside)
    np.testing.assert_array_equal(q[~inside], p[~inside])
    logit = np.log(p[inside] / (1 - p[inside]))
    np.testing.assert_allclose(q[inside], 1 / (1 + np.exp(-(0.3 + 1.4 * logit))))
    np.testing.assert_array_equal(aware.apply(raw), p)  # without the population: the pooled curve
    assert Calibrator.from_dict(aware.to_dict()) == aware
    assert "neglect" not in pooled.to_dict()  # a pooled bundle's file is as before


def test_the_features_neglect_population_is_read_from_the_values(held_out: pd.DataFrame) -> None:
    from models import neglect_population

    plan = held_out["protection_plan_category"].astype("object") == "NEG"
    need = (held_out["primary_need"].astype("object") == "N1") & (held_out["factor_neglect"] == 1)
    expected = (plan | need).to_numpy(dtype=bool)
    assert 0 < expected.sum() < len(expected)
    np.testing.assert_array_equal(neglect_population(RiskModel.model_matrix(held_out)), expected)


def test_a_population_aware_bundle_scores_each_population_as_validated(
    model: RiskModel, held_out: pd.DataFrame, tmp_path: Path
) -> None:
    from models import neglect_population

    assert model.calibrator.neglect is not None  # the tiny bundle is population-aware
    matrix = RiskModel.model_matrix(held_out)
    inside = neglect_population(matrix)
    raw = model.raw_score(held_out)
    np.testing.assert_array_equal(model.predict_proba(held_out), model.calibrator.apply(raw, inside))
    assert not np.allclose(model.predict_proba(held_out)[inside], model.calibrator.apply(raw)[inside])
    model.save(tmp_path / "aware")
    np.testing.assert_array_equal(RiskModel.load(tmp_path / "aware").predict_proba(held_out),
                                  model.predict_proba(held_out))  # fmt: skip
