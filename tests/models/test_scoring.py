"""The scoring path without a DataFrame: the same scores, reasons and checks as the frame path and as shap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shap

from features import ChildRecord, build_features, feature_rows
from models import RiskModel, explain, score_frame, score_records
from tests.conftest import AS_OF


@pytest.fixture(scope="module")
def model(bundle: Path) -> RiskModel:
    return RiskModel.load(bundle)


def test_feature_rows_are_the_model_matrix_of_build_features(open_records: list[ChildRecord]) -> None:
    rows = feature_rows(open_records, AS_OF)
    frame = build_features(open_records, AS_OF)
    np.testing.assert_array_equal(rows.matrix, RiskModel.model_matrix(frame))
    assert rows.child_ids == frame["la_child_id"].tolist()
    assert rows.in_scope == frame["in_scope"].tolist()


def test_score_records_equals_score_frame(model: RiskModel, open_records: list[ChildRecord]) -> None:
    from_records, missing = score_records(model, open_records, AS_OF)
    from_frame = score_frame(model, build_features(open_records, AS_OF))
    assert not missing
    assert from_records == from_frame  # every field: probability, band, features, all reasons in order


def test_reference_reasons_of_a_matrix_equal_those_of_each_row(model: RiskModel, open_records: list[ChildRecord]
                                                               ) -> None:  # fmt: skip
    frame = build_features(open_records, AS_OF)
    odd = frame.copy()
    odd["days_open"] = 50_000.0  # numeric, outside the range
    odd["referral_nfa"] = 1.0  # binary, rare at closure in any authority
    for case in (frame, odd):
        expected = [model.reference.reasons(row) for _, row in case.iterrows()]
        assert model.reference.reasons_matrix(RiskModel.model_matrix(case)) == expected
    assert all(any("Days since this referral" in r for r in reasons) for reasons in
               model.reference.reasons_matrix(RiskModel.model_matrix(odd)))  # fmt: skip


def test_explanations_equal_shap_tree_explainer(model: RiskModel, open_records: list[ChildRecord]) -> None:
    frame = build_features(open_records, AS_OF)
    base, contributions = explain(model, frame)
    explainer = shap.TreeExplainer(model.booster, feature_perturbation="tree_path_dependent")
    with pytest.warns(UserWarning, match="LightGBM binary classifier"):
        reference = np.asarray(explainer.shap_values(RiskModel.model_input(frame)))
    assert np.max(np.abs(contributions - reference)) < 1e-6
    assert np.max(np.abs(base - float(np.ravel(explainer.expected_value)[0]))) < 1e-6
    np.testing.assert_allclose(base + contributions.sum(axis=1), model.raw_score(frame), rtol=0, atol=1e-9)


def test_scores_are_reproducible_across_loads(model: RiskModel, bundle: Path, open_records: list[ChildRecord]) -> None:
    again = RiskModel.load(bundle)
    assert score_records(model, open_records[:20], AS_OF) == score_records(again, open_records[:20], AS_OF)
