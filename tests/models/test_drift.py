"""Feature drift: binned training distributions kept in the bundle, and the population stability index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import FEATURES, feature_spec
from models import Distribution, RiskModel, population_stability


def test_distribution_numeric_bins_at_training_deciles_with_a_missing_bin() -> None:
    values = pd.Series([*range(1, 101), np.nan, np.nan], dtype=float)
    distribution = Distribution.fit(feature_spec("age_years"), values)
    assert len(distribution.edges) == 9
    assert distribution.bins[-1] == "missing"
    assert sum(distribution.shares) == pytest.approx(1.0)
    assert distribution.shares[-1] == pytest.approx(2 / 102)
    np.testing.assert_allclose(distribution.shares_of(values), distribution.shares)


def test_distribution_counts_unseen_category_as_missing() -> None:
    spec = next(f for f in FEATURES if f.kind == "categorical")
    distribution = Distribution.fit(spec, pd.Series([spec.categories[0]] * 3 + [None]))
    counts = distribution.counts_of(pd.Series([spec.categories[0], "no such code", None]))
    assert counts[0] == 1
    assert counts[-1] == 2


def test_population_stability_zero_for_the_same_shares_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(0)
    spec = feature_spec("age_years")
    reference = Distribution.fit(spec, pd.Series(rng.uniform(0, 17, 5_000)))
    same = reference.shares_of(pd.Series(rng.uniform(0, 17, 5_000)))
    older = reference.shares_of(pd.Series(rng.uniform(8, 17, 5_000)))
    assert population_stability(reference.shares, same) < 0.02
    assert population_stability(reference.shares, older) > 0.25


def test_population_stability_refuses_different_bins() -> None:
    with pytest.raises(ValueError, match="bins differ"):
        population_stability((0.5, 0.5), np.array([0.2, 0.3, 0.5]))


def test_bundle_keeps_distributions_and_loads_a_bundle_without_them(bundle: Path, tmp_path: Path) -> None:
    model = RiskModel.load(bundle)
    assert set(model.reference.distributions) == {f.name for f in FEATURES}
    data = json.loads((bundle / "bundle.json").read_text(encoding="utf-8"))
    del data["reference"]["distributions"]  # as written before drift monitoring existed
    older = tmp_path / "older"
    older.mkdir()
    (older / "bundle.json").write_text(json.dumps(data), encoding="utf-8")
    (older / "booster.txt").write_text((bundle / "booster.txt").read_text(encoding="utf-8"), encoding="utf-8")
    loaded = RiskModel.load(older)
    assert loaded.reference.distributions == {}
    assert loaded.reference.numeric == model.reference.numeric
