"""The fit and evaluation stages: built from the training and validation years only, the bundle built once, complete."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from features import FEATURE_NAMES
from models import BAND_NAMES, RiskModel, neglect_population
from training import TrainingFrame
from training import fit as fit_module
from training.ablation import _fit, ablate
from training.evaluation import EvaluatedBundle, evaluate_bundle
from training.fit import FittedBundle, fit_booster, fit_bundle, fit_calibrator, neglect_shift
from training.policy import CalibratorPolicy
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


# Population-aware, sized for the tiny authority (its neglect population has a few hundred calibration rows).
AWARE = CalibratorPolicy(population="neglect", min_cases=50, min_events=10, prior_cases=100)


def test_population_aware_calibrator_never_sees_a_child_that_stopped_or_chose_the_booster(
    split: Split, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, object] = {}
    out_of_fold, shift = fit_module.out_of_fold_raw, fit_module.neglect_shift

    def recording_rows(*args: object, **kwargs: object) -> object:
        raw, y, rows = out_of_fold(*args, **kwargs)  # type: ignore[arg-type]
        seen["rows"] = rows
        return raw, y, rows

    def recording_shift(p: np.ndarray, y: np.ndarray, *, prior_cases: float) -> tuple[float, float]:
        seen["shift_cases"] = len(p)
        return shift(p, y, prior_cases=prior_cases)

    monkeypatch.setattr(fit_module, "out_of_fold_raw", recording_rows)
    monkeypatch.setattr(fit_module, "neglect_shift", recording_shift)
    aware = fit_bundle(split, seed=3, search=SearchSpace(), calibration=AWARE)
    assert aware.calibrator.neglect is not None
    rows = seen["rows"]
    assert isinstance(rows, type(split.train))
    inside = neglect_population(RiskModel.model_matrix(rows))
    # The population's recalibration is fitted on the calibration rows of that population, and on nothing else ...
    assert seen["shift_cases"] == int(inside.sum()) > 0
    shifted_children = set(rows.loc[inside, "la_child_id"].astype(str))
    use = aware.data_use
    assert shifted_children <= use["calibration"]
    # ... none of which stopped a candidate early or chose the setting, or is tested.
    assert shifted_children.isdisjoint(use["early_stopping"])
    assert shifted_children.isdisjoint(use["setting_choice"])
    assert shifted_children.isdisjoint(set(split.test["la_child_id"].astype(str)))
    assert (rows["closure_date"].map(collection_year) < split.test_year).all()
    # Training-time probabilities are the bundle's, which scores each population as validated.
    np.testing.assert_array_equal(aware.predict_proba(split.test), aware.model().predict_proba(split.test))


def test_population_aware_calibration_falls_back_to_pooled_below_its_minimum() -> None:
    rng = np.random.default_rng(5)
    raw = rng.normal(-0.5, 1.0, 2000)
    y = (rng.random(2000) < 1 / (1 + np.exp(-raw))).astype(float)
    few = np.zeros(2000, dtype=bool)
    few[:40] = True
    pooled, _ = fit_calibrator(raw, y, seed=1, in_neglect=few, policy=CalibratorPolicy(population="neglect"))
    assert pooled.neglect is None
    aware, _ = fit_calibrator(raw, y, seed=1, in_neglect=few, policy=AWARE.model_copy(update={"min_cases": 30}))
    assert aware.neglect is not None
    assert aware.method == pooled.method
    assert (aware.a, aware.b, aware.x) == (pooled.a, pooled.b, pooled.x)


def test_neglect_shift_recovers_a_miscalibration_and_shrinks_on_little_evidence() -> None:
    rng = np.random.default_rng(7)
    p = rng.uniform(0.05, 0.8, 40_000)
    logit = np.log(p / (1 - p))
    y = (rng.random(p.size) < 1 / (1 + np.exp(-(0.4 + 1.5 * logit)))).astype(float)
    slope, intercept = neglect_shift(p, y, prior_cases=100)
    assert abs(slope - 1.5) < 0.08
    assert abs(intercept - 0.4) < 0.08
    few_slope, few_intercept = neglect_shift(p[:150], y[:150], prior_cases=300)
    assert abs(few_slope - 1) < abs(slope - 1)
    assert abs(few_intercept) < abs(intercept)
    calibrated = (rng.random(p.size) < p).astype(float)
    slope, intercept = neglect_shift(p, calibrated, prior_cases=100)
    assert abs(slope - 1) < 0.05
    assert abs(intercept) < 0.05


def test_fitted_probabilities_are_the_bundles(fitted: FittedBundle, split: Split) -> None:
    np.testing.assert_array_equal(fitted.predict_proba(split.test), fitted.model().predict_proba(split.test))


def test_fit_booster_tries_only_the_search_space_it_is_given(split: Split) -> None:
    search = SearchSpace(candidates=(Candidate(num_leaves=3, max_depth=2, min_data_in_leaf=20),), max_rounds=3)
    fit = fit_booster(split.train, split.validation, seed=1, search=search)
    assert fit.params == {"num_leaves": 3, "max_depth": 2, "min_data_in_leaf": 20}
    assert [row["num_leaves"] for row in fit.search] == [3]
    assert 1 <= fit.best_iteration <= 3
    assert fit.booster.num_trees() == fit.best_iteration


def test_the_search_fitted_side_by_side_chooses_what_one_thread_chooses(split: Split) -> None:
    # Candidates that finish at different times (the slowest first), so the threads' order differs from the list's.
    search = SearchSpace(
        candidates=(
            Candidate(num_leaves=15, max_depth=4, min_data_in_leaf=20),
            Candidate(num_leaves=3, max_depth=2, min_data_in_leaf=20),
            Candidate(num_leaves=7, max_depth=3, min_data_in_leaf=50),
        ),
        max_rounds=60,
        early_stopping=10,
    )
    alone = fit_booster(split.train, split.validation, seed=4, search=search, workers=1)
    side_by_side = fit_booster(split.train, split.validation, seed=4, search=search, workers=3)
    assert side_by_side.search == alone.search  # every candidate's figures, in the search's order
    assert side_by_side.params == alone.params
    assert side_by_side.booster.model_to_string() == alone.booster.model_to_string()


def test_the_ablations_two_fits_side_by_side_are_the_fits_one_at_a_time(fitted: FittedBundle, split: Split) -> None:
    y = split.test["label"].to_numpy()
    ablation = ablate(split, fitted, seed=6)
    p_full = _fit(split, fitted, list(FEATURE_NAMES), seed=6)
    p_without = _fit(split, fitted, [n for n in FEATURE_NAMES if n not in ablation.dropped], seed=6)
    assert ablation.auc_full == float(roc_auc_score(y, p_full))
    assert ablation.auc_without == float(roc_auc_score(y, p_without))
    assert ablation.auc_full != ablation.auc_without  # the two fits are not the same fit twice


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


def test_scarce_data_calibration_folds_learn_from_every_labelled_child_but_score_only_the_calibration_children(
    split: Split, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, object]] = []
    out_of_fold = fit_module.out_of_fold_raw

    def recording(*args: object, **kwargs: object) -> object:
        raw, y, rows = out_of_fold(*args, **kwargs)  # type: ignore[arg-type]
        calls.append({**kwargs, "rows": rows})
        return raw, y, rows

    monkeypatch.setattr(fit_module, "out_of_fold_raw", recording)
    scarce = CalibratorPolicy()  # the tiny authority has far fewer labelled closures than scarce_rows
    assert len(split.refit) < scarce.scarce_rows
    bundle = fit_bundle(split, seed=3, search=SearchSpace(), calibration=scarce)
    (call,) = calls
    assert call["folds"] == scarce.scarce_folds
    others = call["also_train"]
    assert isinstance(others, type(split.refit))
    learnt_only = set(others["la_child_id"].astype(str))
    scored = set(call["rows"]["la_child_id"].astype(str))  # type: ignore[index]
    # The fold boosters also learn from the children that stopped or chose the booster (all labelled rows outside the
    # calibration children), and those are never scored: the calibrator still sees only calibration children.
    calibration_children = set(split.calibration["la_child_id"].astype(str))
    assert learnt_only == set(split.refit["la_child_id"].astype(str)) - calibration_children
    assert learnt_only >= bundle.data_use["early_stopping"] | bundle.data_use["setting_choice"]
    assert scored.isdisjoint(learnt_only)
    assert scored <= bundle.data_use["calibration"]
    assert bundle.data_use["calibration"].isdisjoint(bundle.data_use["early_stopping"])

    calls.clear()
    plenty = scarce.model_copy(update={"scarce_rows": len(split.refit)})  # as many closures as scarce begins at
    fit_bundle(split, seed=3, search=SearchSpace(), calibration=plenty)
    (call,) = calls
    assert call["folds"] == plenty.folds
    assert call["also_train"] is None
