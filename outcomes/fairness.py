"""Fairness audit: discrimination, calibration and high-band error rates by sex, ethnic group, disability and age band.

Ethnicity is never a model input; it is read here only to audit (DESIGN.md section 6).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from outcomes.evaluate import (
    BoolArray,
    FloatArray,
    Interval,
    as_labels,
    as_probabilities,
    bootstrap_counts,
    expected_calibration_error,
    weighted_ece,
    weighted_mean,
    weighted_roc_auc,
    weighted_share,
)

__all__ = [
    "AGE_BANDS",
    "AUDIT_GROUPS",
    "COLUMNS",
    "age_band",
    "audit_groups",
    "fairness_audit",
    "fairness_plot",
    "group_calibration_breaches",
]

AUDIT_GROUPS = ("sex", "ethnic_group", "disability", "age_band")
AGE_BANDS = ("0-4", "5-9", "10-14", "15-17", "unknown")
UNKNOWN = "unknown"
# The order groups are listed in; a value not named here follows, sorted.
_GROUP_ORDER: dict[str, tuple[str, ...]] = {
    "sex": ("F", "M", "U", UNKNOWN),
    "ethnic_group": ("white", "mixed", "asian", "black", "other", UNKNOWN),
    "disability": ("yes", "no", UNKNOWN),
    "age_band": AGE_BANDS,
}
_REQUIRED = ("y", "p", "high", "sex", "ethnic_group", "disability", "age_years")
_INTERVAL_METRICS = ("auc", "ece", "flag_rate", "fpr", "fnr")
COLUMNS = (
    "dimension",
    "group",
    "n",
    "positives",
    "observed_rate",
    "mean_predicted",
    *(f"{m}{suffix}" for m in _INTERVAL_METRICS for suffix in ("", "_low", "_high")),
)
NAN = float("nan")


def age_band(age_years: pd.Series) -> pd.Series:
    """Age in years as a band: "0-4", "5-9", "10-14", "15-17"; missing -> "unknown".

    A negative age (a case opened before birth, aged from the expected birth date) counts as "0-4". The census covers
    children under 18, so an age of 18 or more is an error in the data and raises ``ValueError``.
    """
    ages = pd.to_numeric(age_years).astype(np.float64).to_numpy()
    too_old = ages >= 18
    if too_old.any():
        raise ValueError(f"{int(too_old.sum())} ages of 18 or over; the audit covers children (max {ages.max():.2f})")
    codes = np.select([np.isnan(ages), ages < 5, ages < 10, ages < 15], [4, 0, 1, 2], default=3).astype(np.int64)
    bands = pd.Categorical.from_codes(codes, categories=pd.Index(list(AGE_BANDS)))
    return pd.Series(bands, index=age_years.index, name="age_band")


def _as_group_names(values: pd.Series) -> npt.NDArray[np.object_]:
    """Group names as plain strings, missing -> "unknown"."""
    names = values.astype("string").fillna(UNKNOWN)
    return names.to_numpy(dtype=object)


def _disability_groups(values: pd.Series) -> npt.NDArray[np.object_]:
    flags = pd.to_numeric(values).astype(np.float64).to_numpy()
    if not np.isin(flags[~np.isnan(flags)], (0.0, 1.0)).all():
        raise ValueError("disability must hold 0, 1 or missing")
    return np.select([flags == 1.0, flags == 0.0], ["yes", "no"], default=UNKNOWN).astype(object)


def audit_groups(frame: pd.DataFrame) -> dict[str, npt.NDArray[np.object_]]:
    return {
        "sex": _as_group_names(frame["sex"]),
        "ethnic_group": _as_group_names(frame["ethnic_group"]),
        "disability": _disability_groups(frame["disability"]),
        "age_band": _as_group_names(age_band(frame["age_years"])),
    }


def _ordered(dimension: str, groups: Sequence[str]) -> list[str]:
    known = _GROUP_ORDER.get(dimension, ())
    return [g for g in known if g in groups] + sorted(g for g in groups if g not in known)


# --- point estimates: fairlearn -----------------------------------------------------------------------------------
# MetricFrame's y_pred is the high-band flag; metrics of the probability receive it through sample_params (which
# MetricFrame splits by group like y_true and y_pred).


def _auc(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, p: npt.ArrayLike) -> float:
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(y_true)
    return float(roc_auc_score(labels, p)) if np.unique(labels).size == 2 else NAN


def _ece(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, p: npt.ArrayLike) -> float:
    return expected_calibration_error(y_true, p)


def _mean_predicted(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, p: npt.ArrayLike) -> float:
    return float(np.asarray(p, dtype=np.float64).mean())


def _positives(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    return float(np.sum(y_true))


def _observed_rate(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    return float(np.asarray(y_true, dtype=np.float64).mean())


def _fpr(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    from fairlearn.metrics import false_positive_rate

    # fairlearn answers 0 for a group without negatives; the rate is undefined there
    has_negatives = bool((np.asarray(y_true) == 0).any())
    return float(false_positive_rate(y_true, y_pred, pos_label=1)) if has_negatives else NAN


def _fnr(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    from fairlearn.metrics import false_negative_rate

    has_positives = bool((np.asarray(y_true) == 1).any())
    return float(false_negative_rate(y_true, y_pred, pos_label=1)) if has_positives else NAN


def _point_estimates(y: BoolArray, p: FloatArray, high: BoolArray, groups: npt.NDArray[np.object_]) -> pd.DataFrame:
    """One row per group: n, positives, observed_rate, mean_predicted and the five audited metrics."""
    from fairlearn.metrics import MetricFrame, count, selection_rate

    metrics: dict[str, Callable[..., float]] = {
        "n": count,
        "positives": _positives,
        "observed_rate": _observed_rate,
        "mean_predicted": _mean_predicted,
        "auc": _auc,
        "ece": _ece,
        "flag_rate": selection_rate,
        "fpr": _fpr,
        "fnr": _fnr,
    }
    by_probability = {"p": p}
    frame = MetricFrame(
        metrics=metrics,
        y_true=y.astype(np.int64),
        y_pred=high.astype(np.int64),
        sensitive_features=pd.Series(groups, name="group"),
        sample_params={"mean_predicted": by_probability, "auc": by_probability, "ece": by_probability},
    )
    by_group: pd.DataFrame = frame.by_group
    return by_group


# --- intervals: within-group bootstrap ----------------------------------------------------------------------------


def _group_intervals(
    y: BoolArray, p: FloatArray, high: BoolArray, points: Mapping[str, float], *, n_boot: int, rng: np.random.Generator
) -> dict[str, Interval]:
    resampled: dict[str, Callable[[FloatArray], FloatArray]] = {
        "auc": lambda w: weighted_roc_auc(w, y, p),
        "ece": lambda w: weighted_ece(w, y, p),
        "flag_rate": lambda w: weighted_mean(w, high),
        "fpr": lambda w: weighted_share(w, high, ~y),
        "fnr": lambda w: weighted_share(w, ~high, y),
    }
    blocks: dict[str, list[FloatArray]] = {name: [] for name in resampled}
    for w in bootstrap_counts(len(y), n_boot, rng):
        for name, metric in resampled.items():
            blocks[name].append(metric(w))
    return {
        name: Interval.from_samples(float(points[name]), np.concatenate(blocks[name]) if n_boot else np.empty(0))
        for name in resampled
    }


def fairness_audit(frame: pd.DataFrame, *, n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """Per-group metrics with bootstrap 95% intervals, one row per (dimension, group) in ``AUDIT_GROUPS``.

    Point estimates come from one fairlearn ``MetricFrame`` per audit dimension; each group's intervals resample
    cases within the group (so they reflect its own size, not the share of it a whole-population resample happens to
    draw). Every group present in the data gets a row, however small; a metric a group cannot define is NaN.

    Args:
        frame: columns y (0/1), p (calibrated probability), high (in the high band), sex, ethnic_group,
            disability (1/0/missing) and age_years.

    Returns:
        Columns ``COLUMNS``: dimension, group, n, positives, observed_rate, mean_predicted, then value, _low and
        _high for auc, ece, flag_rate, fpr and fnr (false positive and negative rates of the high band).
    """
    missing = [c for c in _REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"fairness_audit needs columns {missing}")
    if n_boot < 0:
        raise ValueError(f"n_boot must be 0 or more, got {n_boot}")
    y = as_labels(frame["y"].to_numpy(), "y")
    p = as_probabilities(frame["p"].to_numpy(), "p")
    high = as_labels(frame["high"].to_numpy(), "high")
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for dimension, groups in audit_groups(frame).items():
        if len(groups) == 0:
            continue
        by_group = _point_estimates(y, p, high, groups).to_dict("index")
        points = {str(g): {str(k): float(v) for k, v in row.items()} for g, row in by_group.items()}
        for group in _ordered(dimension, list(points)):
            member = groups == group
            estimates = points[group]
            intervals = _group_intervals(y[member], p[member], high[member], estimates, n_boot=n_boot, rng=rng)
            row: dict[str, Any] = {
                "dimension": dimension,
                "group": group,
                "n": int(estimates["n"]),
                "positives": int(estimates["positives"]),
                "observed_rate": float(estimates["observed_rate"]),
                "mean_predicted": float(estimates["mean_predicted"]),
            }
            for name, interval in intervals.items():
                row |= {name: interval.value, f"{name}_low": interval.low, f"{name}_high": interval.high}
            rows.append(row)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def group_calibration_breaches(table: pd.DataFrame, *, max_ece: float = 0.05, min_n: int = 100) -> list[str]:
    """A reason for every group of at least ``min_n`` cases whose calibration error exceeds ``max_ece``."""
    breaching = table[(table["n"] >= min_n) & (table["ece"] > max_ece)]
    return [
        f"{row.dimension}={row.group}: calibration error {row.ece:.3f} > {max_ece:g} (n={row.n})"
        for row in breaching.itertuples(index=False)
    ]


def fairness_plot(table: pd.DataFrame, path: Path, *, max_ece: float | None = 0.05) -> None:
    """Write one PNG: a row per audit dimension, with per-group calibration error, flag rate and AUC, each with its
    95% interval; group sizes are in the labels, and ``max_ece`` (if given) is marked on the calibration panels."""
    # The Agg canvas is attached to this figure alone: no pyplot, no global backend switch, never a window.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dimensions = [d for d in AUDIT_GROUPS if d in set(table["dimension"])]
    dimensions += sorted(set(table["dimension"]) - set(dimensions))
    if not dimensions:
        raise ValueError("the fairness table is empty")
    panels = (("ece", "calibration error (ECE)"), ("flag_rate", "high-band flag rate"), ("auc", "ROC AUC"))
    heights = [max(1.0, 0.35 * int((table["dimension"] == d).sum())) + 0.8 for d in dimensions]
    figure = Figure(figsize=(13.0, sum(heights)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(dimensions), len(panels), squeeze=False, height_ratios=heights)
    for row, dimension in enumerate(dimensions):
        part = table[table["dimension"] == dimension]
        positions = np.arange(len(part))[::-1]
        names = [f"{g} (n={n})" for g, n in zip(part["group"], part["n"], strict=True)]
        for col, (metric, label) in enumerate(panels):
            ax = axes[row, col]
            value = part[metric].to_numpy(dtype=np.float64)
            # a percentile interval need not contain its point estimate; clip so error bars stay drawable
            below = np.nan_to_num(np.clip(value - part[f"{metric}_low"].to_numpy(dtype=np.float64), 0.0, None))
            above = np.nan_to_num(np.clip(part[f"{metric}_high"].to_numpy(dtype=np.float64) - value, 0.0, None))
            ax.errorbar(value, positions, xerr=np.vstack([below, above]), fmt="o", capsize=3)
            if metric == "ece" and max_ece is not None:
                ax.axvline(max_ece, color="firebrick", linestyle="--", linewidth=1)
            ax.set_yticks(positions, names if col == 0 else [""] * len(names))
            ax.set_ylim(-0.7, len(part) - 0.3)
            ax.grid(axis="x", alpha=0.3)
            if row == 0:
                ax.set_title(label)
        axes[row, 0].set_ylabel(dimension)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=110)
