"""The deeper fairness audit: disparities with intervals, "too few to judge", the policy's block/warn split, and the
need-confirmed label."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features import ChildRecord
from outcomes.disparity import TOO_FEW, FairnessPolicy, deep_fairness_audit, pool_closures
from outcomes.need import need_confirmed_label
from training.policy import load_policy


@pytest.fixture(scope="module")
def policy() -> FairnessPolicy:
    fairness = load_policy().fairness
    assert fairness is not None
    return fairness


def _frame(
    *, n: int = 3000, group_share: float = 0.25, shift: float = 0.0, missing: float = 0.07, seed: int = 0
) -> pd.DataFrame:
    """Test closures where every outcome is drawn from ``p``, plus ``shift`` for group "black" (never seen by p)."""
    rng = np.random.default_rng(seed)
    black = rng.random(n) < group_share
    p = rng.beta(2, 4, n)
    y = rng.random(n) < np.clip(p + shift * black, 0, 1)
    return pd.DataFrame(
        {
            "y": y.astype(int),
            "p": p,
            "high": p > 0.5,
            "sex": rng.choice(["F", "M"], n),
            "ethnic_group": np.where(black, "black", "white"),
            "ethnicity": np.where(black, rng.choice(["BAFR", "BCRB", "BOTH"], n, p=[0.6, 0.3, 0.1]), "WBRI"),
            "disability": rng.integers(0, 2, n).astype(float),
            "age_years": rng.uniform(0, 17, n),
            "parent_mental_health": rng.random(n) < 0.3,
            "parent_substance_misuse": rng.random(n) < 0.2,
            "extension_missing": rng.random(n) < np.where(black, missing, 0.07),
            "y_need": (y & (rng.random(n) < 0.7)).astype(int),
        }
    )


def test_audit_blocks_a_group_the_model_underpredicts(policy: FairnessPolicy) -> None:
    report = deep_fairness_audit(_frame(shift=0.12), policy=policy, seed=1)
    blocks = [f for f in report.blocking if f.dimension == "ethnic_group"]
    assert [(f.group, f.metric) for f in blocks] == [("black", "calibration_gap")]
    row = report.disparities.query("label == 'rereferral' and dimension == 'ethnic_group' and metric == "
                                   "'calibration_gap'").iloc[0]  # fmt: skip
    assert row["reference"] == "white"
    assert row["difference_low"] > 0.05
    assert row["difference"] == pytest.approx(0.12, abs=0.04)


@pytest.mark.parametrize("seed", range(3))
def test_audit_raises_nothing_without_a_difference(policy: FairnessPolicy, seed: int) -> None:
    report = deep_fairness_audit(_frame(seed=seed), policy=policy, seed=seed)
    assert report.findings == ()


def test_audit_blocks_a_group_scored_without_the_extension_far_more_often(policy: FairnessPolicy) -> None:
    report = deep_fairness_audit(_frame(missing=0.45), policy=policy, seed=2)
    assert [(f.dimension, f.group, f.metric) for f in report.blocking] == [
        ("ethnic_group", "black", "extension_missing")
    ]


def test_small_groups_are_listed_as_too_few_to_judge(policy: FairnessPolicy) -> None:
    report = deep_fairness_audit(_frame(), policy=policy, seed=3)
    detailed = report.groups.query("label == 'rereferral' and dimension == 'ethnicity'").set_index("group")
    assert detailed.loc["BOTH", "status"] == TOO_FEW  # about 75 cases
    assert detailed.loc["BAFR", "status"] == "judged"
    assert "BOTH" not in set(report.disparities["group"])
    intersections = report.groups.query("dimension == 'sex_ethnic_age'")
    assert "M / black / 10-14" in set(intersections["group"])


def test_need_label_separates_surveillance_from_need(policy: FairnessPolicy) -> None:
    # The group's extra re-referrals all found no need: the label is under-predicted, the need label is not.
    frame = _frame(n=4000, seed=4)
    rng = np.random.default_rng(5)
    black = frame["ethnic_group"].to_numpy() == "black"
    base = rng.random(len(frame)) < frame["p"].to_numpy()  # re-referrals for need, as predicted
    extra = black & (rng.random(len(frame)) < 0.12)  # closer watching: referrals that find nothing
    frame["y"] = (base | extra).astype(int)
    frame["y_need"] = (base & (rng.random(len(frame)) < 0.7)).astype(int)
    report = deep_fairness_audit(frame, policy=policy, seed=6)
    assert any(f.group == "black" and f.label == "rereferral" for f in report.blocking)
    assert not any(f.label == "need_confirmed" and f.group == "black" for f in report.findings)
    assert any(f.label == "no_need" and f.group == "black" and f.metric == "calibration_gap" for f in report.findings)
    gaps = report.groups.query("dimension == 'ethnic_group'").set_index(["label", "group"])["calibration_gap"]
    assert gaps["rereferral", "black"] > 0.05
    assert gaps["no_need", "black"] > 0.05
    assert abs(gaps["need_confirmed", "black"]) < 0.04
    assert black.sum() > 500


def _child(*episodes: dict[str, Any]) -> ChildRecord:
    return ChildRecord.model_validate(
        {"la_child_id": "C1", "birth_date": "2012-06-15", "sex": "F", "ethnicity": "WBRI", "episodes": list(episodes)}
    )


_FIRST_ASSESSMENT = {"start_date": "2021-01-04", "authorisation_date": "2021-01-20", "factors": ["21"]}
_CLOSED = {"referral_date": "2021-01-04", "referral_source": "6", "closure_date": "2021-02-01",
           "closure_reason": "RC8", "referral_nfa": False, "assessments": [_FIRST_ASSESSMENT]}  # fmt: skip


@pytest.mark.parametrize(
    ("rereferral", "label"),
    [
        ({"referral_nfa": True, "closure_date": "2021-03-01", "closure_reason": "RC8"}, 0),
        ({"assessments": [{"start_date": "2021-03-01", "authorisation_date": "2021-03-20", "factors": ["21"]}],
          "closure_date": "2021-03-25", "closure_reason": "RC8"}, 0),
        ({"assessments": [{"start_date": "2021-03-01", "authorisation_date": "2021-03-20", "factors": ["16A"]}]}, 1),
        ({"section47s": [{"start_date": "2021-03-02", "icpc_not_required": True}]}, 1),
    ],
)  # fmt: skip
def test_need_confirmed_label_asks_what_the_rereferral_found(rereferral: dict[str, Any], label: int) -> None:
    later = {"referral_date": "2021-03-01", "referral_source": "6", "referral_nfa": False} | rereferral
    record = _child(_CLOSED, later)
    assert need_confirmed_label(record, 0, data_end=dt.date(2025, 3, 31)) == label


def test_need_confirmed_label_is_zero_without_a_rereferral() -> None:
    assert need_confirmed_label(_child(_CLOSED), 0, data_end=dt.date(2025, 3, 31)) == 0
    assert need_confirmed_label(_child(_CLOSED), 0, data_end=dt.date(2021, 6, 1)) is None  # censored


def _gap_se(report: Any) -> float:
    row = report.disparities.query(
        "label == 'rereferral' and dimension == 'ethnic_group' and metric == 'calibration_gap'"
    ).iloc[0]
    return float(row["difference_se"])


def test_a_childs_closures_are_resampled_together(policy: FairnessPolicy) -> None:
    # every child closed four times with the same outcome: four closures weigh no more than one child's
    one = _frame(n=1500, seed=7)
    frame = pd.concat([one] * 4, ignore_index=True)
    alone = deep_fairness_audit(frame, policy=policy, seed=8)
    together = deep_fairness_audit(frame.assign(child=np.tile(np.arange(len(one)), 4)), policy=policy, seed=8)
    assert _gap_se(together) == pytest.approx(2 * _gap_se(alone), rel=0.25)


def test_pooled_closures_index_the_same_child_once() -> None:
    first, second = _frame(n=4, seed=9), _frame(n=3, seed=10)
    pooled = pool_closures([(first, ["a", "b", "c", "d"]), (second, ["c", "e", "a"])])
    assert len(pooled) == 7
    assert pooled["child"].tolist() == [0, 1, 2, 3, 2, 4, 0]
    with pytest.raises(ValueError, match="child ids"):
        pool_closures([(first, ["a"])])


def test_extension_missing_standard_error_never_below_the_equal_shares_test(policy: FairnessPolicy) -> None:
    # None of 120 in the group scored without the extension, 20 of 400 in the reference: resampling the group
    # gives no spread at all, so the bootstrap's standard error (about 0.011, the reference's alone) understates
    # the difference's; the two-proportion test's under equal shares (about 0.020) is the floor.
    from outcomes.disparity import _equal_shares_se

    frame = _frame(n=520, seed=4)
    black = np.arange(520) < 120
    frame["ethnic_group"] = np.where(black, "black", "white")
    frame["ethnicity"] = np.where(black, "BAFR", "WBRI")
    frame["extension_missing"] = ~black & (np.arange(520) % 20 == 0)
    assert int(frame["extension_missing"].sum()) == 20
    report = deep_fairness_audit(frame, policy=policy, seed=4)
    row = report.disparities.query("label == 'rereferral' and dimension == 'ethnic_group' and metric == "
                                   "'extension_missing'").iloc[0]  # fmt: skip
    floor = _equal_shares_se((0, 120), (20, 400))
    assert floor == pytest.approx((20 / 520 * 500 / 520 * (1 / 120 + 1 / 400)) ** 0.5)
    assert row["difference_se"] == pytest.approx(floor)
