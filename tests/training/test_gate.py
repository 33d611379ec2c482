"""The promotion gate as a pure decision: calibration, group calibration, and AUC against the champion."""

from __future__ import annotations

import numpy as np
import pandas as pd

from outcomes.fairness import fairness_audit
from training.gate import calibration_breaches_beyond_chance, decide

RNG = np.random.default_rng(0)
TRUTH = RNG.uniform(0.05, 0.8, 4000)
Y = (RNG.uniform(size=4000) < TRUTH).astype(int)
NOISY = np.clip(TRUTH + RNG.normal(0, 0.25, 4000), 0.01, 0.99)


def _decide(**overrides: object) -> object:
    kwargs: dict[str, object] = {
        "y": Y,
        "p_new": TRUTH,
        "p_champion": None,
        "calibration_error": 0.01,
        "group_breaches": [],
        "max_calibration_error": 0.03,
        "n_boot": 200,
        "seed": 1,
    }
    kwargs.update(overrides)
    return decide(**kwargs)  # type: ignore[arg-type]


def test_gate_promotes_a_first_calibrated_fair_model() -> None:
    decision = _decide()
    assert decision.promote  # type: ignore[attr-defined]
    assert "no champion yet" in decision.reasons  # type: ignore[attr-defined]


def test_gate_promotes_a_better_model_and_refuses_a_worse_one() -> None:
    better = _decide(p_new=TRUTH, p_champion=NOISY)
    worse = _decide(p_new=NOISY, p_champion=TRUTH)
    assert better.promote  # type: ignore[attr-defined]
    assert not worse.promote  # type: ignore[attr-defined]
    assert any("worse than the champion" in r for r in worse.reasons)  # type: ignore[attr-defined]


def test_gate_passes_a_model_no_worse_than_the_champion_within_the_interval() -> None:
    assert _decide(p_new=TRUTH, p_champion=TRUTH).promote  # type: ignore[attr-defined]


def test_gate_refuses_a_miscalibrated_model() -> None:
    decision = _decide(calibration_error=0.031)
    assert not decision.promote  # type: ignore[attr-defined]
    assert decision.reasons[0].startswith("calibration error 0.031 > 0.03")  # type: ignore[attr-defined]


def test_gate_refuses_a_model_miscalibrated_for_a_group() -> None:
    decision = _decide(group_breaches=["ethnic_group=black: calibration error 0.071 > 0.05 (n=412)"])
    assert not decision.promote  # type: ignore[attr-defined]
    assert any("ethnic_group=black" in r for r in decision.reasons)  # type: ignore[attr-defined]


def _audit(p: np.ndarray, y: np.ndarray, groups: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"y": y, "p": p, "high": p > 0.5, "sex": "F", "ethnic_group": groups,
                         "disability": 0.0, "age_years": 8.0})  # fmt: skip


def test_group_calibration_judged_beyond_chance() -> None:
    rng = np.random.default_rng(3)
    n_big, n_small = 3000, 120
    p = rng.uniform(0.05, 0.8, n_big + n_small)
    y = (rng.uniform(size=p.size) < p).astype(int)
    # The big group is miscalibrated: its outcomes come from probabilities 0.15 higher than predicted.
    big = slice(0, n_big)
    y[big] = (rng.uniform(size=n_big) < np.clip(p[big] + 0.15, 0, 1)).astype(int)
    frame = _audit(p, y, ["white"] * n_big + ["black"] * n_small)
    table = fairness_audit(frame, n_boot=50, seed=0)
    small = table[(table["dimension"] == "ethnic_group") & (table["group"] == "black")].iloc[0]
    assert small["ece"] > 0.05  # noise alone pushes a calibrated group of 120 over the bound ...
    reasons = calibration_breaches_beyond_chance(frame, table, max_ece=0.05, min_n=100, seed=0)
    assert any(r.startswith("ethnic_group=white") for r in reasons)
    assert not any(r.startswith("ethnic_group=black") for r in reasons)  # ... but not beyond chance
