"""``models.assess`` (the serving path, without a DataFrame) against the training-time path and shap."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import shap

from features import FEATURE_NAMES, ChildRecord, build_features, current_episode, feature_rows
from models import ROW_FIELDS, RiskModel, assess, explain
from tests.conftest import AS_OF
from tests.models.oracle import expected_scores


@pytest.fixture(scope="module")
def model(bundle: Path) -> RiskModel:
    return RiskModel.load(bundle)


def test_feature_rows_are_the_model_matrix_of_build_features(open_records: list[ChildRecord]) -> None:
    rows = feature_rows(open_records, AS_OF)
    frame = build_features(open_records, AS_OF)
    np.testing.assert_array_equal(rows.matrix, RiskModel.model_matrix(frame))
    assert rows.child_ids == frame["la_child_id"].tolist()
    assert rows.in_scope == frame["in_scope"].tolist()
    assert rows.positions == list(range(len(open_records)))
    assert rows.episodes == [current_episode(r, AS_OF) for r in open_records]


def test_assess_equals_the_training_time_path(model: RiskModel, open_records: list[ChildRecord]) -> None:
    assessed = assess(model, open_records, AS_OF, what_ifs=False)
    expected = expected_scores(model, open_records, AS_OF)
    assert assessed.not_open == []
    assert len(assessed.assessments) == len(expected)
    for a, e in zip(assessed.assessments, expected, strict=True):
        assert (a.la_child_id, a.episode_referral_date) == (e.la_child_id, e.episode_referral_date)
        assert a.raw_score == e.raw_score  # the booster's own raw score, bit for bit
        assert a.probability == e.probability
        assert a.band == e.band
        assert a.in_scope == e.in_scope
        assert a.out_of_distribution == e.out_of_distribution
        assert a.features == e.features
        np.testing.assert_allclose(a.contributions, [e.contributions[n] for n in FEATURE_NAMES], atol=1e-9)
        assert a.base_value == pytest.approx(e.base_value, abs=1e-9)


def test_assess_reasons_add_up_to_the_raw_score_largest_first(model: RiskModel, open_records: list[ChildRecord]
                                                              ) -> None:  # fmt: skip
    for a in assess(model, open_records[:50], AS_OF, what_ifs=False).assessments:
        reasons = a.reasons()
        assert [r["feature"] for r in reasons] == sorted(FEATURE_NAMES, key=lambda n: -abs(a.contributions[
            FEATURE_NAMES.index(n)]))  # fmt: skip
        assert a.base_value + sum(r["contribution"] for r in reasons) == pytest.approx(a.raw_score, abs=1e-9)
        assert all(r["direction"] == ("raises" if r["contribution"] > 0 else "lowers") for r in reasons)
        assert a.reasons(3) == reasons[:3]
        assert {r["feature"]: r["value"] for r in reasons} == a.features


def test_assess_names_the_records_with_no_open_episode_by_position(model: RiskModel, open_records: list[ChildRecord]
                                                                   ) -> None:  # fmt: skip
    closed = open_records[0].model_copy(update={"episodes": []})
    before = open_records[1].model_copy(update={"episodes": open_records[1].episodes})
    batch = [open_records[2], closed, open_records[3], before]
    dates = [AS_OF, AS_OF, AS_OF, before.episodes[0].referral_date - dt.timedelta(days=1)]
    assessed = assess(model, batch, dates, what_ifs=False)
    assert assessed.not_open == [1, 3]
    assert [a.position for a in assessed.assessments] == [0, 2]
    assert [a.la_child_id for a in assessed.assessments] == [open_records[2].la_child_id, open_records[3].la_child_id]


def test_assess_score_does_not_depend_on_the_child_id(model: RiskModel, open_records: list[ChildRecord]) -> None:
    record = open_records[4]
    renamed = record.model_copy(update={"la_child_id": "SOMEONE-ELSE-123"})
    (a,), (b,) = (assess(model, [r], AS_OF).assessments for r in (record, renamed))
    assert (a.probability, a.reasons(), a.what_ifs) == (b.probability, b.reasons(), b.what_ifs)


def test_assess_warns_of_missing_case_file_facts_and_out_of_scope(model: RiskModel, open_records: list[ChildRecord]
                                                                  ) -> None:  # fmt: skip
    record = open_records[0]
    index = current_episode(record, AS_OF)
    assert index is not None
    bare = record.episodes[index].model_copy(update={"visits": None, "plan_reviews": None})
    record = record.model_copy(update={"episodes": [*record.episodes[:index], bare]})
    (a,) = assess(model, [record], AS_OF).assessments
    assert any("visits, plan reviews" in w for w in a.warnings)
    assert any("Outside the neglect population" in w for w in a.warnings) == (not a.in_scope)


def test_to_row_gives_the_fields_asked_for_in_order(model: RiskModel, open_records: list[ChildRecord]) -> None:
    (a,) = assess(model, open_records[:1], AS_OF).assessments
    row = a.to_row(top=2)
    assert tuple(row) == ROW_FIELDS
    assert len(row["reasons"]) == 2
    assert row["band"] == a.band.value
    assert row["what_ifs"] == [w.as_dict() for w in a.what_ifs]
    assert tuple(a.to_row(fields=("probability", "as_of"))) == ("probability", "as_of")
    with pytest.raises(ValueError, match="no field 'la_child_name'"):
        a.to_row(fields=("la_child_name",))


def test_explanations_equal_shap_tree_explainer(model: RiskModel, open_records: list[ChildRecord]) -> None:
    frame = build_features(open_records, AS_OF)
    base, contributions = explain(model, frame)
    explainer = shap.TreeExplainer(model.booster, feature_perturbation="tree_path_dependent")
    with pytest.warns(UserWarning, match="LightGBM binary classifier"):
        reference = np.asarray(explainer.shap_values(RiskModel.model_input(frame)))
    assert np.max(np.abs(contributions - reference)) < 1e-6
    assert np.max(np.abs(base - float(np.ravel(explainer.expected_value)[0]))) < 1e-6
    np.testing.assert_allclose(base + contributions.sum(axis=1), model.raw_score(frame), rtol=0, atol=1e-9)


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


def test_scores_are_reproducible_across_loads(model: RiskModel, bundle: Path, open_records: list[ChildRecord]) -> None:
    again = RiskModel.load(bundle)
    first, second = (assess(m, open_records[:20], AS_OF).assessments for m in (model, again))
    assert [a.to_row() for a in first] == [a.to_row() for a in second]
