"""Exact TreeSHAP (tree-path-dependent) for a LightGBM booster, precomputed when loaded and compiled with numba."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numba
import numpy as np

__all__ = ["GROUP_BITS", "TreeShap", "compile_explainer"]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]
GROUP_BITS = 8  # a group's table has 2^bits rows (a leaf deeper than this is a group of its own)
MAX_DEPTH = 16  # a booster with deeper leaves is explained by LightGBM's own TreeSHAP (the same values, slower)
_K_ZERO = 1e-35  # LightGBM's kZeroThreshold
# Split kinds: LightGBM's missing type (decision_type bits 2-3: none, zero, NaN) for numeric splits, or categorical.
_NUMERIC, _NUMERIC_ZERO_MISSING, _NUMERIC_NAN_MISSING, _CATEGORICAL = 0, 1, 2, 3


@dataclass(frozen=True)
class _Trees:
    """Every tree of the booster flattened into arrays: its splits, its leaves, and its leaf groups' tables."""

    node_feature: IntArray
    node_threshold: FloatArray
    node_kind: IntArray  # _NUMERIC, _NUMERIC_ZERO_MISSING, _NUMERIC_NAN_MISSING or _CATEGORICAL
    node_default_left: IntArray
    node_cat_start: IntArray  # into cat_words: the left-going categories' bitset
    node_cat_stop: IntArray
    cat_words: IntArray
    tree_node_start: IntArray  # tree t's nodes are [start[t], start[t + 1])
    tree_group_start: IntArray
    group_bit_start: IntArray  # group g's index is the left/right decisions of group_bit_node[start[g]:start[g+1]]
    group_bit_node: IntArray  # (node index within its tree)
    group_feature_start: IntArray  # group g adds to the features group_feature[start[g]:start[g + 1]]
    group_feature: IntArray
    # Group g, decisions i: row table[group_table_start[g] + i * (width + 1):][:width + 1] holds the reached leaf's
    # value (0.0 when the reached leaf lies outside the group), then the contributions of the group's features.
    group_table_start: IntArray
    table: FloatArray
    base_value: float
    max_nodes: int


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split()] if text else []


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split()] if text else []


def _int_array(values: list[Any]) -> IntArray:
    return np.asarray(values, dtype=np.int64)


def _parse_trees(model_text: str) -> list[dict[str, str]]:
    trees: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in model_text.splitlines():
        if line.startswith("Tree="):
            current = {}
            trees.append(current)
        elif line.startswith("end of trees"):
            break
        elif current is not None and "=" in line:
            key, _, value = line.partition("=")
            current[key] = value
    return trees


def _paths(left: list[int], right: list[int], internal_count: list[float], leaf_count: list[float]
           ) -> dict[int, list[tuple[int, bool, float]]]:  # fmt: skip
    """Each leaf's path from the root: (node, whether the leaf lies left of it, share of the node's cases that went
    that way: LightGBM's cover, as its own TreeSHAP uses)."""
    paths: dict[int, list[tuple[int, bool, float]]] = {}
    stack: list[tuple[int, list[tuple[int, bool, float]]]] = [(0, [])]
    while stack:
        node, path = stack.pop()
        for child, went_left in ((left[node], True), (right[node], False)):
            child_count = internal_count[child] if child >= 0 else leaf_count[~child]
            step = [*path, (node, went_left, child_count / internal_count[node])]
            if child >= 0:
                stack.append((child, step))
            else:
                paths[~child] = step
    return paths


def _groups(left: list[int], right: list[int]) -> list[tuple[list[int], list[int]]]:
    """The tree's leaves in groups small enough to tabulate: (the nodes whose decisions index the group's table,
    the group's leaves). A subtree is one group when its own splits and its ancestors' number at most GROUP_BITS."""
    out: list[tuple[list[int], list[int]]] = []

    def inside(node: int) -> tuple[list[int], list[int]]:
        if node < 0:
            return [], [~node]
        nodes_l, leaves_l = inside(left[node])
        nodes_r, leaves_r = inside(right[node])
        return [node, *nodes_l, *nodes_r], leaves_l + leaves_r

    def visit(node: int, ancestors: list[int]) -> None:
        nodes, leaves = inside(node)
        if node < 0 or len(ancestors) + len(nodes) <= GROUP_BITS:
            out.append(([*ancestors, *nodes], leaves))
            return
        visit(left[node], [*ancestors, node])
        visit(right[node], [*ancestors, node])

    visit(0, [])
    return out


def _flatten(booster: lgb.Booster) -> _Trees:
    model_text = booster.model_to_string()
    if "num_class=1\n" not in model_text or "num_tree_per_iteration=1\n" not in model_text:
        raise _UnsupportedError("only single-output boosters (binary or regression) are tabulated")
    if "is_linear=1" in model_text or "average_output" in model_text:
        raise _UnsupportedError("linear trees and averaged (random forest) outputs are not tabulated")
    nodes: dict[str, list[Any]] = {k: [] for k in ("feature", "threshold", "kind", "default_left", "cat_start",
                                                   "cat_stop")}  # fmt: skip
    cat_words: list[int] = []
    tree_node_start, tree_leaf_start, tree_group_start = [0], [0], [0]
    leaf_value: list[float] = []
    # Per leaf (for the leaf tables): its distinct path features' cover products; per path entry: the bit of its
    # node in the leaf's group index, the direction to the leaf and the feature's slot in the leaf.
    leaf_cover: list[list[float]] = []
    leaf_path_start, path_bit, path_left, path_slot = [0], list[int](), list[int](), list[int]()
    leaf_group: list[tuple[int, int, list[int]]] = []  # (leaf, its group, its features' slots in the group's)
    group_bit_start, group_bit_node, group_feature_start, group_feature = [0], list[int](), [0], list[int]()
    base_value = 0.0
    for tree in _parse_trees(model_text):
        n_leaves = int(tree["num_leaves"])
        values = _floats(tree["leaf_value"])
        tree_leaf_start.append(tree_leaf_start[-1] + n_leaves)
        leaf_value.extend(values)
        if n_leaves == 1:  # a constant: all of it is base value, and a group of no splits adds it to the raw score
            base_value += values[0]
            leaf_cover.append([])
            leaf_path_start.append(len(path_bit))
            leaf_group.append((len(leaf_value) - 1, len(group_bit_start) - 1, []))
            group_bit_start.append(len(group_bit_node))
            group_feature_start.append(len(group_feature))
            tree_node_start.append(tree_node_start[-1])
            tree_group_start.append(len(group_bit_start) - 1)
            continue
        feature = _ints(tree["split_feature"])
        threshold = _floats(tree["threshold"])
        decision = _ints(tree["decision_type"])
        left, right = _ints(tree["left_child"]), _ints(tree["right_child"])
        internal_count, leaf_count = _floats(tree["internal_count"]), _floats(tree["leaf_count"])
        boundaries, words = _ints(tree.get("cat_boundaries", "")), _ints(tree.get("cat_threshold", ""))
        word_offset = len(cat_words)
        cat_words.extend(words)
        for n in range(n_leaves - 1):
            categorical = decision[n] & 1
            index = int(threshold[n]) if categorical else 0
            nodes["feature"].append(feature[n])
            nodes["threshold"].append(threshold[n])
            nodes["kind"].append(_CATEGORICAL if categorical else (decision[n] >> 2) & 3)
            nodes["default_left"].append((decision[n] >> 1) & 1)
            nodes["cat_start"].append(word_offset + boundaries[index] if categorical else 0)
            nodes["cat_stop"].append(word_offset + boundaries[index + 1] if categorical else 0)
        tree_node_start.append(tree_node_start[-1] + n_leaves - 1)
        paths = _paths(left, right, internal_count, leaf_count)
        first_leaf = tree_leaf_start[-2]
        slots: list[list[int]] = [[] for _ in range(n_leaves)]
        covers: list[list[float]] = [[] for _ in range(n_leaves)]
        entries: list[list[tuple[int, bool, int]]] = [[] for _ in range(n_leaves)]
        for leaf in range(n_leaves):
            base_value += values[leaf] * leaf_count[leaf] / internal_count[0]
            for node, went_left, share in paths[leaf]:
                if feature[node] not in slots[leaf]:
                    slots[leaf].append(feature[node])
                    covers[leaf].append(1.0)
                slot = slots[leaf].index(feature[node])
                covers[leaf][slot] *= share
                entries[leaf].append((node, went_left, slot))
        bit_of_leaf: dict[int, dict[int, int]] = {}
        for bit_nodes, leaves in _groups(left, right):
            group = len(group_bit_start) - 1
            features = sorted({f for leaf in leaves for f in slots[leaf]})
            bit_nodes = sorted(bit_nodes)
            group_bit_node.extend(bit_nodes)
            group_bit_start.append(len(group_bit_node))
            group_feature.extend(features)
            group_feature_start.append(len(group_feature))
            for leaf in leaves:
                bit_of_leaf[leaf] = {node: b for b, node in enumerate(bit_nodes)}
                leaf_group.append((first_leaf + leaf, group, [features.index(f) for f in slots[leaf]]))
        tree_group_start.append(len(group_bit_start) - 1)
        for leaf in range(n_leaves):
            leaf_cover.append(covers[leaf])
            for node, went_left, slot in entries[leaf]:
                path_bit.append(bit_of_leaf[leaf][node])
                path_left.append(int(went_left))
                path_slot.append(slot)
            leaf_path_start.append(len(path_bit))
    group_of_leaf = np.full(len(leaf_value), -1, dtype=np.int64)
    slot_start = np.zeros(len(leaf_value) + 1, dtype=np.int64)
    slot_in_group = np.zeros(sum(len(c) for c in leaf_cover), dtype=np.int64)
    np.cumsum([len(c) for c in leaf_cover], out=slot_start[1:])
    for leaf, group, group_slots in leaf_group:
        group_of_leaf[leaf] = group
        slot_in_group[slot_start[leaf] : slot_start[leaf + 1]] = group_slots
    bits = np.diff(group_bit_start)
    if bits.max(initial=0) > MAX_DEPTH:
        raise _UnsupportedError(f"leaves deeper than {MAX_DEPTH} splits are not tabulated")
    widths = np.diff(group_feature_start) + 1  # each row: the raw score's share, then the contributions
    sizes = (np.int64(1) << bits) * widths
    group_table_start = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    table = np.zeros(int(sizes.sum()))
    _fill_tables(
        np.asarray(leaf_value), group_of_leaf, slot_start, np.array([r for c in leaf_cover for r in c]),
        slot_in_group, np.asarray(leaf_path_start, dtype=np.int64), np.asarray(path_bit, dtype=np.int64),
        np.asarray(path_left, dtype=np.int64), np.asarray(path_slot, dtype=np.int64),
        np.asarray(group_bit_start, dtype=np.int64), widths.astype(np.int64), group_table_start, table,
    )  # fmt: skip
    return _Trees(
        node_feature=_int_array(nodes["feature"]),
        node_threshold=np.asarray(nodes["threshold"], dtype=float),
        node_kind=_int_array(nodes["kind"]),
        node_default_left=_int_array(nodes["default_left"]),
        node_cat_start=_int_array(nodes["cat_start"]),
        node_cat_stop=_int_array(nodes["cat_stop"]),
        cat_words=_int_array(cat_words),
        tree_node_start=_int_array(tree_node_start),
        tree_group_start=_int_array(tree_group_start),
        group_bit_start=_int_array(group_bit_start),
        group_bit_node=_int_array(group_bit_node),
        group_feature_start=_int_array(group_feature_start),
        group_feature=_int_array(group_feature),
        group_table_start=group_table_start,
        table=table,
        base_value=base_value,
        max_nodes=int(np.diff(tree_node_start).max(initial=1)),
    )


@numba.njit(cache=True)
def _fill_tables(
    leaf_value: FloatArray, group_of_leaf: IntArray, slot_start: IntArray, cover: FloatArray, slot_in_group: IntArray,
    leaf_path_start: IntArray, path_bit: IntArray, path_left: IntArray, path_slot: IntArray,
    group_bit_start: IntArray, group_width: IntArray, group_table_start: IntArray, table: FloatArray,
) -> None:  # fmt: skip  # pragma: no cover (compiled)
    """Add each leaf's Shapley values, for every decision pattern of its group, into the group's table.

    For a leaf with distinct path features 1..d, covers r and a case satisfying s_j (0 or 1) of them:
    phi_k = value * (s_k - r_k) * sum over coalitions S of the others of |S|! (d-1-|S|)! / d! prod_S s prod_notS r.
    """
    for leaf in range(len(leaf_value)):
        group = group_of_leaf[leaf]
        if group < 0:
            continue
        start = slot_start[leaf]
        d = slot_start[leaf + 1] - start
        weights = np.empty(d)  # |S|! (d - 1 - |S|)! / d! for |S| = 0 .. d - 1
        for m in range(d):
            w = 1.0 / d
            for i in range(1, m + 1):
                w *= i / (d - i)
            weights[m] = w
        phi = np.empty((1 << d, d))
        coef = np.empty(d)
        for mask in range(1 << d):
            for k in range(d):
                coef[:] = 0.0
                coef[0] = 1.0
                size = 0
                for j in range(d):
                    if j == k:
                        continue
                    s_j = float((mask >> j) & 1)
                    r_j = cover[start + j]
                    size += 1
                    for m in range(size, 0, -1):
                        coef[m] = coef[m] * r_j + coef[m - 1] * s_j
                    coef[0] *= r_j
                total = 0.0
                for m in range(d):
                    total += weights[m] * coef[m]
                phi[mask, k] = leaf_value[leaf] * (float((mask >> k) & 1) - cover[start + k]) * total
        n_bits = group_bit_start[group + 1] - group_bit_start[group]
        width = group_width[group]
        for pattern in range(1 << n_bits):
            mask = (1 << d) - 1
            for p in range(leaf_path_start[leaf], leaf_path_start[leaf + 1]):
                if ((pattern >> path_bit[p]) & 1) != path_left[p]:
                    mask &= ~(1 << path_slot[p])
            offset = group_table_start[group] + pattern * width
            reached = True
            for p in range(leaf_path_start[leaf], leaf_path_start[leaf + 1]):
                reached = reached and ((pattern >> path_bit[p]) & 1) == path_left[p]
            if reached:  # at most one leaf of a group is reached: its value is the group's share of the raw score
                table[offset] = leaf_value[leaf]
            for k in range(d):
                table[offset + 1 + slot_in_group[start + k]] += phi[mask, k]


@numba.njit(cache=True, nogil=True)
def _explain_rows(
    x: FloatArray, out: FloatArray, raw: FloatArray, node_feature: IntArray, node_threshold: FloatArray,
    node_kind: IntArray, node_default_left: IntArray, node_cat_start: IntArray, node_cat_stop: IntArray,
    cat_words: IntArray, tree_node_start: IntArray, tree_group_start: IntArray, group_bit_start: IntArray,
    group_bit_node: IntArray, group_feature_start: IntArray, group_feature: IntArray, group_table_start: IntArray,
    table: FloatArray, max_nodes: int,
) -> None:  # fmt: skip  # pragma: no cover (compiled)
    """Add every row's contributions to ``out`` and put its raw score in ``raw`` (the reached leaves' values summed
    in tree order, as LightGBM sums them: the other groups add exactly 0.0)."""
    left = np.empty(max(max_nodes, 1), dtype=np.int64)
    for i in range(x.shape[0]):
        row = x[i]
        phi = out[i]
        score = 0.0
        for t in range(len(tree_node_start) - 1):
            first = tree_node_start[t]
            for n in range(tree_node_start[t + 1] - first):
                # LightGBM's own split decisions (tree.h: NumericalDecision, CategoricalDecision).
                g = first + n
                value = row[node_feature[g]]
                kind = node_kind[g]
                if kind == _NUMERIC_NAN_MISSING:
                    go = node_default_left[g] if np.isnan(value) else value <= node_threshold[g]
                elif kind == _NUMERIC:
                    go = (0.0 if np.isnan(value) else value) <= node_threshold[g]
                elif kind == _NUMERIC_ZERO_MISSING:
                    value = 0.0 if np.isnan(value) else value
                    go = node_default_left[g] if -_K_ZERO <= value <= _K_ZERO else value <= node_threshold[g]
                else:  # categorical: the left-going categories are a bitset; NaN and negative codes go right
                    go = False
                    if not np.isnan(value) and value > -1.0:
                        code = int(value)
                        word = node_cat_start[g] + code // 32
                        go = word < node_cat_stop[g] and (cat_words[word] >> (code % 32)) & 1 == 1
                left[n] = go
            for group in range(tree_group_start[t], tree_group_start[t + 1]):
                pattern = 0
                for bit, b in enumerate(range(group_bit_start[group], group_bit_start[group + 1])):
                    pattern |= left[group_bit_node[b]] << bit
                start = group_feature_start[group]
                width = group_feature_start[group + 1] - start
                offset = group_table_start[group] + pattern * (width + 1)
                score += table[offset]
                for k in range(width):
                    phi[group_feature[start + k]] += table[offset + 1 + k]
        raw[i] = score


class _UnsupportedError(Exception):
    """A booster this module does not tabulate: LightGBM explains it instead."""


class TreeShap:
    """Exact tree-path-dependent SHAP values and raw scores of a LightGBM booster's rows of float features.

    The values are LightGBM's ``pred_contrib`` and ``shap.TreeExplainer``'s (tree-path-dependent): the Shapley values of
    v(S) = sum over leaves of value(leaf) * prod over the leaf's path of [x goes this way, if the node's feature is in
    S; else the share of training cases that went this way]. For one leaf that is a product game over the d distinct
    features on its path, and a case enters it only through which of the path's splits it goes the leaf's way. So the
    Shapley values depend on the case only through a few split decisions, and are tabulated once, when the model is
    loaded ("Fast TreeSHAP v2", Yang 2021), here for groups of leaves at a time: a whole tree (or a subtree with its
    ancestors) of at most GROUP_BITS splits has one table indexed by all its decisions, each row the sum of its leaves'
    Shapley values and the reached leaf's value. Explaining a case is then, per tree, its split decisions and one table
    row added: no recursion, no allocation. The raw score is the reached leaves' values summed in tree order, as
    LightGBM sums them (bit for bit). Splits are decided exactly as LightGBM decides them (missing values,
    zero-as-missing, categorical bitsets), read from the booster's own text format. A booster with leaves deeper than
    MAX_DEPTH, linear trees, an averaged output or several outputs is explained by LightGBM itself.
    """

    def __init__(self, booster: lgb.Booster) -> None:
        self.n_features = booster.num_feature()
        self._booster = booster
        try:
            self._trees: _Trees | None = _flatten(booster)
        except _UnsupportedError:
            self._trees = None
        self.base_value = (
            self._trees.base_value if self._trees else float(self._lightgbm(np.zeros((1, self.n_features)))[1][0, -1])
        )

    def _lightgbm(self, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        contributions = np.asarray(self._booster.predict(x, pred_contrib=True, num_threads=1), dtype=float)
        return np.asarray(self._booster.predict(x, raw_score=True, num_threads=1), dtype=float), contributions

    def explain(self, matrix: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(raw scores, contributions) of each row: raw = base_value + the row's contributions, to rounding."""
        x = np.asarray(matrix, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected rows of {self.n_features} features, got shape {x.shape}")
        if self._trees is None:
            raw, contributions = self._lightgbm(x)
            return raw, contributions[:, :-1]
        tiny = (x != 0.0) & (np.abs(x) <= _K_ZERO)
        # LightGBM reads a dense row's values this close to zero as zero (and so must we, to decide as it does).
        x = np.ascontiguousarray(np.where(tiny, 0.0, x) if tiny.any() else x)
        out = np.zeros((x.shape[0], self.n_features))
        raw = np.empty(x.shape[0])
        t = self._trees
        _explain_rows(x, out, raw, t.node_feature, t.node_threshold, t.node_kind, t.node_default_left,
                      t.node_cat_start, t.node_cat_stop, t.cat_words, t.tree_node_start, t.tree_group_start,
                      t.group_bit_start, t.group_bit_node, t.group_feature_start, t.group_feature,
                      t.group_table_start, t.table, t.max_nodes)  # fmt: skip
        return raw, out


def compile_explainer() -> None:
    """Compile the explainer's kernels now (or load them from numba's cache), on a tiny booster of its own.

    The first model loaded by a new installation otherwise waits several seconds for the compiler, inside MLflow's
    logging of the model; a first ``closure-risk serve`` calls this while the cohort is generated in another
    process."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3))
    x[::7, 1] = np.nan  # a split with missing values, as real features have
    y = (x[:, 0] + rng.normal(scale=0.5, size=64) > 0).astype(float)
    params = {"objective": "binary", "num_leaves": 4, "min_data_in_leaf": 5, "num_threads": 1, "verbose": -1}
    booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=2)
    TreeShap(booster).explain(x[:2])
