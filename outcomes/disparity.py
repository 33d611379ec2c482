"""The deeper fairness audit: disparities against a reference group, with intervals, judged by a written policy.

Groups: sex, major ethnic group, detailed census ethnicity, disability, age band, the family's recorded parental
factors (mental health, substance misuse), and the intersections of sex, ethnic group and age band. Each group of
at least ``min_group_cases`` test closures is compared with its dimension's reference (the largest group) on:

- ``calibration_gap``: observed re-referral rate minus mean predicted probability (calibration in the large);
- ``flag_rate``, ``fpr``, ``fnr``: the high band's flag rate and false positive and false negative rates;
- ``extension_missing``: the share of cases scored without the case-management extension.

Each difference (and ratio) has a bootstrap interval: cases are resampled within the group and within the
reference, independently; a calibration gap's standard error is never taken below what it would be were both groups
calibrated (the mean of p(1-p) over n), since the bootstrap understates it where a rare label has a handful of
events in a small group; likewise the share scored without the extension is never given a standard error below
the two-proportion test's under equal shares. Smaller groups are listed as "too few to judge". The same audit runs
on the need-confirmed label (``outcomes/need.py``), with the probabilities scaled by the share of re-referrals that
confirmed need, and the calibration gap also on its complement, the re-referrals that found no need (scaled by
the share that did not). The two sensitivity labels tell the planted biases apart: a group referred more often for
the same need (surveillance) is under-predicted on re-referrals that found no need and not on those that confirmed
it; a group whose risk the features under-measure is under-predicted on re-referral and on need confirmed alike.

Which findings block promotion and which only warn is the fairness policy (``FairnessPolicy``, the ``[fairness]``
section of the gate's policy file); ``judge`` applies it. A difference counts only when it is material (at least the
policy's size) *and* beyond chance at a family-wise level (Bonferroni, on the bootstrap standard error), so
auditing a hundred groups does not raise a hundred alarms. The comparisons are controlled in two tiers, each at the
policy's family-wise level: the blocking ones (a few dozen: the label's calibration gap and the share scored
without the extension, for the blocking dimensions' groups) and the warning ones (a few hundred: the sensitivity
labels, flag and error rates, detailed ethnicity codes, intersections). A few dozen blocking comparisons are not
drowned by the hundreds of warning ones; the chance of any false finding is at most the sum of the two levels.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from features import FEATURES
from outcomes.evaluate import BoolArray, FloatArray, bootstrap_counts, weighted_mean, weighted_share
from outcomes.fairness import audit_groups

__all__ = [
    "DIMENSIONS",
    "LABELS",
    "FairnessFinding",
    "FairnessPolicy",
    "FairnessReport",
    "audit_columns",
    "calibration_curves_plot",
    "deep_fairness_audit",
    "judge",
    "pool_closures",
]

LABELS = {
    "rereferral": "re-referral within 365 days",
    "need_confirmed": "re-referral that confirmed need",
    "no_need": "re-referral that found no need",
}
DIMENSIONS = ("sex", "ethnic_group", "ethnicity", "disability", "age_band", "parental_factors", "sex_ethnic_age")
METRICS = ("calibration_gap", "flag_rate", "fpr", "fnr", "extension_missing")
TOO_FEW = "too few to judge"
_EXTENSION = tuple(spec.name for spec in FEATURES if spec.extension)
_NOT_A_REFERENCE = {"unknown", "U"}
# the extension's share is the same whatever the label; a derived label's rates say little beyond the label's
_LABEL_METRICS = {"rereferral": METRICS, "need_confirmed": METRICS[:-1], "no_need": ("calibration_gap",)}


class FairnessPolicy(BaseModel):
    """The ``[fairness]`` section of the gate's policy file (see the comments there for the reasons)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_group_cases: int = Field(ge=10)
    bootstrap: int = Field(ge=50)
    family_wise_level: float = Field(gt=0, lt=1)
    blocking_dimensions: tuple[str, ...]
    blocking_metrics: tuple[str, ...]
    max_calibration_gap_difference: float = Field(gt=0)
    max_extension_missing_difference: float = Field(gt=0)
    warning_metrics: tuple[str, ...]
    max_rate_difference: float = Field(gt=0)
    ratio_low: float = Field(gt=0, lt=1)
    ratio_high: float = Field(gt=1)
    audited_closures: Literal["test_year", "backtest"] = "test_year"


@dataclass(frozen=True)
class FairnessFinding:
    severity: Literal["block", "warn"]
    label: str
    dimension: str
    group: str
    metric: str
    text: str
    reference: str = ""


@dataclass(frozen=True)
class FairnessReport:
    """Every group's figures, every disparity against its reference, what the policy made of them, and the
    calibration curves by group."""

    groups: pd.DataFrame  # label, dimension, group, n, status, observed_rate, mean_predicted, METRICS...
    disparities: pd.DataFrame  # label, dimension, group, reference, metric, value, reference_value, difference...
    findings: tuple[FairnessFinding, ...]
    curves: pd.DataFrame  # label, dimension, group, bin, n, mean_predicted, observed_rate

    @property
    def blocking(self) -> tuple[FairnessFinding, ...]:
        return tuple(f for f in self.findings if f.severity == "block")

    @property
    def warnings(self) -> tuple[FairnessFinding, ...]:
        return tuple(f for f in self.findings if f.severity == "warn")

    def flags(self, dimension: str, group: str) -> tuple[FairnessFinding, ...]:
        """Findings on ``group`` of ``dimension``, as the compared group or as the reference it departs from."""
        return tuple(f for f in self.findings if f.dimension == dimension and group in (f.group, f.reference))


def audit_columns(frame: pd.DataFrame) -> dict[str, npt.NDArray[Any]]:
    """The audit's extra columns from a training frame: detailed ethnicity, recorded parental mental health and
    substance misuse, whether the case was scored without the extension, and the need-confirmed label."""
    out: dict[str, npt.NDArray[Any]] = {}
    if "ethnicity" in frame:
        out["ethnicity"] = frame["ethnicity"].astype("object").to_numpy()
    if "factor_parent_mental_health" in frame:
        out["parent_mental_health"] = frame["factor_parent_mental_health"].fillna(0).to_numpy(dtype=bool)
        substance = frame[["factor_parent_alcohol", "factor_parent_drugs"]].fillna(0).to_numpy(dtype=bool)
        out["parent_substance_misuse"] = np.asarray(substance.any(axis=1), dtype=bool)
    present = [c for c in _EXTENSION if c in frame]
    if present:
        out["extension_missing"] = frame[present].isna().all(axis=1).to_numpy(dtype=bool)
    if "label_need_confirmed" in frame:
        out["y_need"] = frame["label_need_confirmed"].to_numpy(dtype=np.int64)
    return out


def pool_closures(parts: Sequence[tuple[pd.DataFrame, npt.ArrayLike]]) -> pd.DataFrame:
    """One audit frame of several (each with its closures' child ids): the ids become a ``child`` index, so the
    bootstrap resamples a child's closures together, and leave the frame."""
    frame = pd.concat([part for part, _ in parts], ignore_index=True)
    children = np.concatenate([np.asarray(ids, dtype=object) for _, ids in parts])
    if len(children) != len(frame):
        raise ValueError(f"{len(frame)} closures but {len(children)} child ids")
    return frame.assign(child=pd.factorize(children)[0].astype(np.int64))


def _dimensions(frame: pd.DataFrame) -> dict[str, npt.NDArray[np.object_]]:
    groups = audit_groups(frame)
    out = {k: groups[k] for k in ("sex", "ethnic_group")}
    if "ethnicity" in frame:
        out["ethnicity"] = frame["ethnicity"].astype("string").fillna("unknown").to_numpy(dtype=object)
    out |= {k: groups[k] for k in ("disability", "age_band")}
    if "parent_mental_health" in frame:
        mental = frame["parent_mental_health"].to_numpy(dtype=bool)
        substance = frame["parent_substance_misuse"].to_numpy(dtype=bool)
        out["parental_factors"] = np.select(
            [mental & substance, mental, substance],
            ["mental health and substance misuse", "mental health", "substance misuse"],
            default="neither recorded",
        ).astype(object)
    out["sex_ethnic_age"] = np.array(
        [f"{s} / {e} / {a}" for s, e, a in zip(groups["sex"], groups["ethnic_group"], groups["age_band"], strict=True)],
        dtype=object,
    )
    return out


@dataclass(frozen=True)
class _Cases:
    y: BoolArray
    p: FloatArray
    high: BoolArray
    missing: BoolArray
    child: npt.NDArray[np.int64] | None = None  # the same child's closures are resampled together


def _weights(c: _Cases, n_boot: int, rng: np.random.Generator) -> Iterator[FloatArray]:
    """Bootstrap weights of the cases: each case drawn alone, or each child with all its closures (a child closed
    in several audited years, or twice in one, is one family: its outcomes are not independent)."""
    if c.child is None:
        yield from bootstrap_counts(len(c.y), n_boot, rng)
        return
    children, which = np.unique(c.child, return_inverse=True)
    for w in bootstrap_counts(len(children), n_boot, rng):
        yield w[:, which]


def _points(c: _Cases) -> dict[str, float]:
    def share(event: BoolArray, among: BoolArray) -> float:
        return float((event & among).sum() / among.sum()) if among.any() else float("nan")

    return {
        "observed_rate": float(c.y.mean()),
        "mean_predicted": float(c.p.mean()),
        "calibration_gap": float(c.y.mean() - c.p.mean()),
        "flag_rate": float(c.high.mean()),
        "fpr": share(c.high, ~c.y),
        "fnr": share(~c.high, c.y),
        "extension_missing": float(c.missing.mean()),
    }


def _resamples(c: _Cases, n_boot: int, rng: np.random.Generator) -> dict[str, FloatArray]:
    out: dict[str, list[FloatArray]] = {m: [] for m in METRICS}
    for w in _weights(c, n_boot, rng):
        out["calibration_gap"].append(weighted_mean(w, c.y) - weighted_mean(w, c.p))
        out["flag_rate"].append(weighted_mean(w, c.high))
        out["fpr"].append(weighted_share(w, c.high, ~c.y))
        out["fnr"].append(weighted_share(w, ~c.high, c.y))
        out["extension_missing"].append(weighted_mean(w, c.missing))
    return {m: np.concatenate(v) for m, v in out.items()}


def _reference(groups: npt.NDArray[np.object_], judged: list[str]) -> str | None:
    candidates = [g for g in judged if g not in _NOT_A_REFERENCE]
    if not candidates:
        return None
    sizes = {g: int((groups == g).sum()) for g in candidates}
    return max(candidates, key=lambda g: (sizes[g], g))


def _curve_rows(label: str, dimension: str, group: str, c: _Cases, bins: int = 10) -> list[dict[str, Any]]:
    index = np.clip((c.p * bins).astype(np.int64), 0, bins - 1)
    rows = []
    for b in range(bins):
        inside = index == b
        if inside.any():
            rows.append({"label": label, "dimension": dimension, "group": group, "bin": b, "n": int(inside.sum()),
                         "mean_predicted": float(c.p[inside].mean()),
                         "observed_rate": float(c.y[inside].mean())})  # fmt: skip
    return rows


def deep_fairness_audit(frame: pd.DataFrame, *, policy: FairnessPolicy, seed: int = 0) -> FairnessReport:
    """Audit ``frame`` (y, p, high, the group columns and, where present, the columns of ``audit_columns``).

    Point estimates per group come from fairlearn's ``MetricFrame``; differences to the reference come from the
    bootstrap (``policy.bootstrap`` resamples within each group).
    """
    from fairlearn.metrics import MetricFrame, count

    rng = np.random.default_rng(seed)
    y_label = frame["y"].to_numpy(dtype=bool)
    p = frame["p"].to_numpy(dtype=np.float64)
    high = frame["high"].to_numpy(dtype=bool)
    missing = frame["extension_missing"].to_numpy(dtype=bool) if "extension_missing" in frame else np.zeros_like(high)
    child = frame["child"].to_numpy(dtype=np.int64) if "child" in frame else None
    labels: dict[str, tuple[BoolArray, FloatArray]] = {"rereferral": (y_label, p)}
    if "y_need" in frame and y_label.any():
        y_need = frame["y_need"].to_numpy(dtype=bool) & y_label
        # The model predicts any re-referral; scaled by the share that confirmed need (or did not), it predicts
        # that label, and the scaled predictions sum to the observed count over all test closures.
        share = float(y_need.sum() / y_label.sum())
        labels["need_confirmed"] = (y_need, p * share)
        labels["no_need"] = (y_label & ~y_need, p * (1.0 - share))
    dims = _dimensions(frame)
    group_rows: list[dict[str, Any]] = []
    disparity_rows: list[dict[str, Any]] = []
    curve_rows: list[dict[str, Any]] = []
    for label, (y, p_label) in labels.items():
        for dimension, groups in dims.items():
            sizes = MetricFrame(metrics={"n": count}, y_true=y.astype(np.int64), y_pred=high.astype(np.int64),
                                sensitive_features=pd.Series(groups, name="group")).by_group["n"]  # fmt: skip
            judged = sorted(str(g) for g, n in sizes.items() if n >= policy.min_group_cases)
            reference = _reference(groups, judged)
            samples: dict[str, dict[str, FloatArray]] = {}
            null_variance: dict[str, float] = {}
            missing_counts: dict[str, tuple[int, int]] = {}  # cases scored without the extension, and all cases
            found: dict[str, dict[str, float]] = {}
            for group in sorted(str(g) for g in sizes.index):
                member = groups == group
                cases = _Cases(y[member], p_label[member], high[member], missing[member],
                               None if child is None else child[member])  # fmt: skip
                found[group] = _points(cases)
                status = "judged" if group in judged else TOO_FEW
                row = {"label": label, "dimension": dimension, "group": group, "n": int(member.sum()),
                       "status": status, "reference": group == reference, **found[group]}  # fmt: skip
                group_rows.append(row)
                if status == "judged":
                    samples[group] = _resamples(cases, policy.bootstrap, rng)
                    # the gap's variance were the group calibrated: a floor under its bootstrap standard error,
                    # which a rare label's few events in a small group make too small
                    null_variance[group] = float(np.mean(cases.p * (1.0 - cases.p)) / len(cases.p))
                    missing_counts[group] = (int(cases.missing.sum()), len(cases.missing))
                    curve_rows += _curve_rows(label, dimension, group, cases)
            if reference is None:
                continue
            for group in judged:
                if group == reference:
                    continue
                for metric in _LABEL_METRICS[label]:
                    diff = samples[group][metric] - samples[reference][metric]
                    with np.errstate(divide="ignore", invalid="ignore"):
                        ratio = samples[group][metric] / samples[reference][metric]
                    floor = {
                        "calibration_gap": (null_variance[group] + null_variance[reference]) ** 0.5,
                        "extension_missing": _equal_shares_se(missing_counts[group], missing_counts[reference]),
                    }.get(metric, 0.0)
                    disparity_rows.append(
                        _disparity(
                            label,
                            dimension,
                            group,
                            reference,
                            metric,
                            found[group][metric],
                            found[reference][metric],
                            diff,
                            ratio,
                            se_floor=floor,
                        )
                    )
    groups_table = pd.DataFrame(group_rows)
    disparities = pd.DataFrame(disparity_rows)
    return FairnessReport(groups_table, disparities, judge(disparities, policy), pd.DataFrame(curve_rows))


def _equal_shares_se(group: tuple[int, int], reference: tuple[int, int]) -> float:
    """The standard error of a difference of two shares were they equal (the two-proportion test's): a floor under
    the bootstrap's, which collapses when the reference has only a few cases scored without the extension."""
    (k_group, n_group), (k_reference, n_reference) = group, reference
    q = (k_group + k_reference) / (n_group + n_reference)
    return float((q * (1.0 - q) * (1.0 / n_group + 1.0 / n_reference)) ** 0.5)


def _disparity(label: str, dimension: str, group: str, reference: str, metric: str, value: float,
               reference_value: float, diff: FloatArray, ratio: FloatArray,
               se_floor: float = 0.0) -> dict[str, Any]:  # fmt: skip
    diff, ratio = diff[np.isfinite(diff)], ratio[np.isfinite(ratio) & (ratio > 0)]
    se = max(float(diff.std(ddof=1)), se_floor) if diff.size > 1 else np.nan
    low, high = np.percentile(diff, [2.5, 97.5]) if diff.size else (np.nan, np.nan)
    r_low, r_high = np.percentile(ratio, [2.5, 97.5]) if ratio.size else (np.nan, np.nan)
    return {
        "label": label, "dimension": dimension, "group": group, "reference": reference, "metric": metric,
        "value": value, "reference_value": reference_value,
        "difference": value - reference_value, "difference_low": float(low), "difference_high": float(high),
        "difference_se": se,
        "ratio": value / reference_value if reference_value else np.nan,
        "ratio_low": float(r_low), "ratio_high": float(r_high),
        "log_ratio_se": float(np.log(ratio).std(ddof=1)) if ratio.size > 1 else np.nan,
    }  # fmt: skip


_WORDS = {
    "calibration_gap": "observed minus predicted rate",
    "flag_rate": "high-band flag rate",
    "fpr": "false positive rate",
    "fnr": "false negative rate",
    "extension_missing": "share scored without the extension",
}


def _z(level: float, comparisons: int) -> float:
    return NormalDist().inv_cdf(1 - level / (2 * max(comparisons, 1)))


def judge(disparities: pd.DataFrame, policy: FairnessPolicy) -> tuple[FairnessFinding, ...]:
    """Apply the policy: a blocking finding for each material, beyond-chance disparity in a blocking metric of a
    blocking dimension on the label; a warning for each in a warning metric, any other dimension, or a sensitivity
    label. Bonferroni within each tier (blocking, warning), each at the policy's family-wise level."""
    if disparities.empty:
        return ()
    rows = disparities.dropna(subset=["difference", "difference_se"])
    blocking = (
        (rows["label"] == "rereferral")
        & rows["dimension"].isin(policy.blocking_dimensions)
        & rows["metric"].isin(policy.blocking_metrics)
    )
    audited = rows["metric"].isin((*policy.blocking_metrics, *policy.warning_metrics))
    family = pd.Series(np.select([blocking, audited], ["block", "warn"], default=""), index=rows.index)
    z = {name: _z(policy.family_wise_level, int((family == name).sum())) for name in ("block", "warn")}
    findings: list[FairnessFinding] = []
    for tier, row in zip(family.tolist(), rows.to_dict("records"), strict=True):
        metric = str(row["metric"])
        if not tier:
            continue
        difference, ratio = float(row["difference"]), float(row["ratio"])
        # a ratio of two gaps (or two shares of missing records) says nothing: those metrics are judged on differences
        beyond = abs(difference) > z[tier] * float(row["difference_se"])
        if metric == "calibration_gap":
            material = abs(difference) >= policy.max_calibration_gap_difference
        elif metric == "extension_missing":
            material = difference >= policy.max_extension_missing_difference
        else:
            material = (
                abs(difference) >= policy.max_rate_difference and not policy.ratio_low <= ratio <= policy.ratio_high
            )
        if not (beyond and material):
            continue
        text = (
            f"{LABELS[str(row['label'])]}: {row['dimension']}={row['group']}: {_WORDS[metric]} {row['value']:.3f} "
            f"against {row['reference_value']:.3f} for {row['reference']} (difference {difference:+.3f}, 95% "
            f"interval {row['difference_low']:+.3f} to {row['difference_high']:+.3f}"
            + (f"; ratio {ratio:.2f})" if metric in ("flag_rate", "fpr", "fnr") else ")")
        )
        severity: Literal["block", "warn"] = "block" if tier == "block" else "warn"
        findings.append(
            FairnessFinding(
                severity,
                str(row["label"]),
                str(row["dimension"]),
                str(row["group"]),
                metric,
                text,
                str(row["reference"]),
            )
        )
    return tuple(findings)


def calibration_curves_plot(report: FairnessReport, path: Path, *, label: str = "rereferral") -> None:
    """Write one PNG: a panel per dimension (the intersections left out), a reliability curve per judged group."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    curves = report.curves[report.curves["label"] == label] if not report.curves.empty else report.curves
    dimensions = [d for d in DIMENSIONS if d != "sex_ethnic_age" and not curves.empty and d in set(curves["dimension"])]
    if not dimensions:
        raise ValueError("no judged group has a calibration curve")
    columns = 3
    rows = -(-len(dimensions) // columns)
    figure = Figure(figsize=(5.0 * columns, 4.6 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax, dimension in zip(axes.ravel(), dimensions, strict=False):
        part = curves[curves["dimension"] == dimension]
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
        for group, curve in part.groupby("group", sort=True):
            n = int(curve["n"].sum())
            ax.plot(curve["mean_predicted"], curve["observed_rate"], marker="o", markersize=3, label=f"{group} ({n})")
        ax.set(xlim=(0, 1), ylim=(0, 1), title=dimension, xlabel="predicted", ylabel="observed")
        ax.legend(fontsize=6, loc="upper left")
    for ax in axes.ravel()[len(dimensions) :]:
        ax.set_visible(False)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=100)
