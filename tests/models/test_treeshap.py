"""The compiled TreeSHAP: equal to LightGBM's own (``pred_contrib``) and to its raw score, on every kind of split."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from models.treeshap import GROUP_BITS, TreeShap


def _data(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.column_stack(
        [
            rng.normal(size=rows),
            rng.integers(0, 12, size=rows).astype(float),  # categorical, more than one bitset word with code 40
            rng.choice([0.0, 1.0, 2.5], size=rows),  # zeros matter when zero is missing
            rng.exponential(size=rows),
            rng.integers(0, 40, size=rows).astype(float),  # categorical with many codes
        ]
    )
    x[rng.random(x.shape) < 0.15] = np.nan
    logit = np.nan_to_num(x[:, 0]) + (np.nan_to_num(x[:, 1]) % 3 == 0) - 0.5 * np.nan_to_num(x[:, 2])
    logit += np.where(np.isnan(x[:, 3]), 1.0, 0.0) + (np.nan_to_num(x[:, 4]) % 5 == 1)
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(float)
    return x, y


def _booster(*, zero_as_missing: bool, num_leaves: int, max_depth: int, rounds: int = 30) -> lgb.Booster:
    x, y = _data(3000, seed=num_leaves)
    params = {"objective": "binary", "num_leaves": num_leaves, "max_depth": max_depth, "min_data_in_leaf": 5,
              "zero_as_missing": zero_as_missing, "verbose": -1, "seed": 1, "max_cat_to_onehot": 4,
              "cat_smooth": 1, "min_data_per_group": 5, "num_threads": 1}  # fmt: skip
    return lgb.train(params, lgb.Dataset(x, y, categorical_feature=[1, 4]), num_boost_round=rounds)


def _cases(seed: int) -> np.ndarray:
    x, _ = _data(2000, seed=seed)
    x[:50, 1] = 40.0  # a category never seen in training (beyond the bitset)
    x[50:100, 4] = -1.0  # a negative code goes right
    x[100:150, 2] = 0.0
    x[150:200, 0] = 1e-40  # zero by LightGBM's threshold
    return x


@pytest.mark.parametrize(
    ("zero_as_missing", "num_leaves", "max_depth"),
    [(False, 7, 3), (True, 15, 4), (False, 31, 5), (False, 60, 8)],  # the last has groups smaller than a tree
)
def test_treeshap_equals_lightgbm(zero_as_missing: bool, num_leaves: int, max_depth: int) -> None:
    booster = _booster(zero_as_missing=zero_as_missing, num_leaves=num_leaves, max_depth=max_depth)
    explainer = TreeShap(booster)
    x = _cases(seed=99)
    raw, contributions = explainer.explain(x)
    expected = np.asarray(booster.predict(x, pred_contrib=True))
    np.testing.assert_allclose(contributions, expected[:, :-1], rtol=0, atol=1e-12)
    assert explainer.base_value == pytest.approx(expected[0, -1], abs=1e-12)
    np.testing.assert_array_equal(raw, booster.predict(x, raw_score=True))  # bit for bit
    np.testing.assert_allclose(explainer.base_value + contributions.sum(axis=1), raw, rtol=0, atol=1e-12)


def test_treeshap_groups_deep_trees_below_the_table_limit() -> None:
    explainer = TreeShap(_booster(zero_as_missing=False, num_leaves=60, max_depth=8))
    trees = explainer._trees
    assert trees is not None
    assert int(np.diff(trees.group_bit_start).max()) <= GROUP_BITS
    assert len(trees.group_bit_start) - 1 > len(trees.tree_node_start) - 1  # some trees are split into groups


def test_treeshap_leaves_boosters_deeper_than_its_tables_to_lightgbm() -> None:
    x, y = _data(3000, seed=7)
    params = {"objective": "binary", "num_leaves": 200, "max_depth": -1, "min_data_in_leaf": 2, "verbose": -1}
    booster = lgb.train(params, lgb.Dataset(x, y, categorical_feature=[1, 4]), num_boost_round=3)
    explainer = TreeShap(booster)
    assert explainer._trees is None  # paths longer than MAX_DEPTH
    raw, contributions = explainer.explain(x[:100])
    expected = np.asarray(booster.predict(x[:100], pred_contrib=True))
    np.testing.assert_array_equal(contributions, expected[:, :-1])
    np.testing.assert_array_equal(raw, booster.predict(x[:100], raw_score=True))


def test_treeshap_leaves_a_random_forest_to_lightgbm() -> None:
    x, y = _data(2000, seed=11)
    params = {"objective": "binary", "boosting": "rf", "bagging_fraction": 0.7, "bagging_freq": 1, "verbose": -1}
    booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=5)
    explainer = TreeShap(booster)
    assert explainer._trees is None  # its raw score is an average, not a sum
    raw, contributions = explainer.explain(x[:50])
    np.testing.assert_array_equal(raw, booster.predict(x[:50], raw_score=True))
    np.testing.assert_array_equal(contributions, np.asarray(booster.predict(x[:50], pred_contrib=True))[:, :-1])


def test_treeshap_explains_a_constant_booster() -> None:
    x, y = _data(200, seed=5)
    params = {"objective": "binary", "min_data_in_leaf": 1000, "verbose": -1}
    booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=3)
    raw, contributions = TreeShap(booster).explain(x[:10])
    np.testing.assert_array_equal(raw, booster.predict(x[:10], raw_score=True))
    assert not contributions.any()


def test_treeshap_refuses_rows_of_the_wrong_width() -> None:
    explainer = TreeShap(_booster(zero_as_missing=False, num_leaves=7, max_depth=3, rounds=2))
    with pytest.raises(ValueError, match="5 features"):
        explainer.explain(np.zeros((2, 4)))


def test_compile_explainer_compiles_what_a_real_booster_needs(tmp_path: Path) -> None:
    """In a new process (its own numba cache), the warm-up compiles both kernels, and explaining a real booster then
    compiles nothing more: the first model loaded does not wait for the compiler."""
    model = tmp_path / "booster.txt"
    _booster(zero_as_missing=False, num_leaves=15, max_depth=6).save_model(str(model))
    np.save(tmp_path / "cases.npy", _cases(3))
    script = f"""
import lightgbm as lgb, numpy as np
from models.treeshap import TreeShap, _explain_rows, _fill_tables, compile_explainer
assert not _explain_rows.signatures and not _fill_tables.signatures
compile_explainer()
warmed = (len(_explain_rows.signatures), len(_fill_tables.signatures))
TreeShap(lgb.Booster(model_file={str(model)!r})).explain(np.load({str(tmp_path / "cases.npy")!r}))
print(warmed, (len(_explain_rows.signatures), len(_fill_tables.signatures)))
"""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["(1,", "1)", "(1,", "1)"]
