"""The fit and evaluation stages: built from the training and validation years only, the bundle built once, complete."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from models import BAND_NAMES, RiskModel
from training import TrainingFrame
from training.evaluation import EvaluatedBundle, evaluate_bundle
from training.fit import FittedBundle, fit_booster, fit_bundle
from training.settings import Candidate, SearchSpace
from training.split import Split, collection_year, split_by_time

DATA_END = dt.date(2025, 3, 31)


@pytest.fixture(scope="module")
def split(tiny_frame: TrainingFrame) -> Split:
    return split_by_time(tiny_frame.frame, data_end=DATA_END)


@pytest.fixture(scope="module")
def fitted(split: Split) -> FittedBundle:
    return fit_bundle(split, seed=3, search=SearchSpace())


@pytest.fixture(scope="module")
def evaluated(fitted: FittedBundle, split: Split) -> EvaluatedBundle:
    return evaluate_bundle(fitted, split, data_end=DATA_END, n_boot=50, seed=3)


def test_fit_bundle_is_built_without_the_test_year(fitted: FittedBundle, split: Split) -> None:
    # Scramble the test year's labels and features: nothing the fit holds may change.
    rng = np.random.default_rng(0)
    scrambled_test = split.test.copy()
    scrambled_test["label"] = rng.permutation(scrambled_test["label"].to_numpy())
    scrambled_test["days_open"] = rng.permutation(scrambled_test["days_open"].to_numpy())
    other = fit_bundle(replace(split, test=scrambled_test), seed=3, search=SearchSpace())
    assert other.calibrator == fitted.calibrator
    assert other.bands == fitted.bands
    np.testing.assert_array_equal(other.predict_proba(split.test), fitted.predict_proba(split.test))


def test_fit_bundle_is_compact_and_calibrated_on_held_out_data(fitted: FittedBundle, split: Split) -> None:
    model = fitted.model()
    assert model.booster.num_trees() <= SearchSpace().max_rounds
    p_valid = model.predict_proba(split.validation)
    rate = split.validation["label"].mean()
    # The validation year is in the final fit now, so this is calibration-in-the-large within noise, not exact.
    assert abs(p_valid.mean() - rate) < 3 * np.sqrt(rate * (1 - rate) / len(split.validation))


def test_calibrator_never_sees_a_child_that_stopped_or_chose_the_booster(fitted: FittedBundle, split: Split) -> None:
    use = fitted.data_use
    assert use["calibration"]
    assert use["calibration"].isdisjoint(use["early_stopping"])
    assert use["calibration"].isdisjoint(use["setting_choice"])
    assert use["early_stopping"].isdisjoint(use["setting_choice"])
    assert len(fitted.calibration_years) > 1  # more than one year of out-of-fold scores
    assert max(fitted.calibration_years) < split.test_year
    # The final booster is refitted on every labelled year before the test year, never on a test child.
    assert use["final_fit"] >= set(split.train["la_child_id"]) | set(split.validation["la_child_id"])
    assert use["final_fit"] == set(split.refit["la_child_id"])
    assert use["final_fit"].isdisjoint(set(split.test["la_child_id"]))
    assert (split.refit["closure_date"].map(collection_year) < split.test_year).all()


def test_fitted_probabilities_are_the_bundles(fitted: FittedBundle, split: Split) -> None:
    np.testing.assert_array_equal(fitted.predict_proba(split.test), fitted.model().predict_proba(split.test))


def test_fit_booster_tries_only_the_search_space_it_is_given(split: Split) -> None:
    search = SearchSpace(candidates=(Candidate(num_leaves=3, max_depth=2, min_data_in_leaf=20),), max_rounds=3)
    fit = fit_booster(split.train, split.validation, seed=1, search=search)
    assert fit.params == {"num_leaves": 3, "max_depth": 2, "min_data_in_leaf": 20}
    assert [row["num_leaves"] for row in fit.search] == [3]
    assert 1 <= fit.best_iteration <= 3
    assert fit.booster.num_trees() == fit.best_iteration


def test_evaluate_bundle_builds_the_complete_bundle(evaluated: EvaluatedBundle, split: Split) -> None:
    model = evaluated.model
    np.testing.assert_array_equal(model.predict_proba(split.test), evaluated.p)
    seen = evaluated.evaluation.bands
    assert model.bands.observed_rate == {b: seen[b].observed_rate for b in BAND_NAMES}
    assert model.bands.cases == {b: seen[b].n for b in BAND_NAMES}
    assert str(split.test_year) in model.bands.observed_on
    metadata = model.metadata
    assert (metadata.data_end, metadata.test_year, metadata.test_cases) == (
        DATA_END.isoformat(), split.test_year, len(split.test)
    )  # fmt: skip
    assert metadata.test_metrics["roc_auc"]["value"] == evaluated.evaluation.metrics.roc_auc.value
    assert {row["dimension"] for row in metadata.fairness} == {"sex", "ethnic_group", "disability", "age_band"}
    assert evaluated.synthetic
    assert evaluated.evaluation.oracle is not None


def test_baselines_are_evaluated_on_the_same_test_closures(evaluated: EvaluatedBundle, split: Split) -> None:
    assert set(evaluated.baselines) == {"logistic regression", "base rate"}
    for name, baseline in evaluated.baselines.items():
        assert baseline.n == evaluated.evaluation.n == len(split.test), name
        assert baseline.positives == evaluated.evaluation.positives, name
        assert len(evaluated.p_baselines[name]) == len(evaluated.y)
    assert np.isclose(evaluated.baselines["base rate"].metrics.roc_auc.value, 0.5)


def test_the_complete_bundle_survives_a_round_trip(evaluated: EvaluatedBundle, tmp_path: Path) -> None:
    evaluated.model.save(tmp_path / "bundle")
    loaded = RiskModel.load(tmp_path / "bundle")
    assert loaded.bands == evaluated.model.bands
    assert loaded.metadata == evaluated.model.metadata
