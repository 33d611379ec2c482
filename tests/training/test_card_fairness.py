"""The fairness part of the model card: the policy quoted as written, disparities formatted, small groups counted."""

from __future__ import annotations

from outcomes.disparity import deep_fairness_audit
from tests.outcomes.test_disparity import _frame
from training.card import fairness_rows, policy_section, too_few_to_judge
from training.policy import DEFAULT_POLICY_FILE, load_policy


def test_policy_section_quotes_the_fairness_policy_with_its_reasons() -> None:
    text = DEFAULT_POLICY_FILE.read_text(encoding="utf-8")
    quoted = policy_section(text, "fairness")
    assert "calibrated within each group" in quoted
    assert "Why calibration blocks and error rates only warn" in quoted
    assert 'blocking_metrics = ["calibration_gap", "extension_missing"]' in quoted
    assert "[calibration]" not in quoted
    assert "max_error" not in quoted  # the next section is not part of it
    assert policy_section(text, "no such section") == ""


def test_fairness_rows_give_each_compared_group_its_disparities() -> None:
    policy = load_policy().fairness
    assert policy is not None
    report = deep_fairness_audit(_frame(shift=0.12), policy=policy, seed=1)
    rows = {(r["dimension"], r["group"]): r for r in fairness_rows(report)}
    black = rows["ethnic_group", "black"]
    assert black["reference"] == "white"
    assert black["calibration_gap_difference"].startswith("+0.1")
    assert " to " in black["flag_rate_ratio"]
    assert ("ethnic_group", "white") not in rows  # the reference is not compared with itself
    small = too_few_to_judge(report)
    assert small["ethnicity"] == 1  # BOTH, about 75 cases
    assert small["sex_ethnic_age"] > 0
