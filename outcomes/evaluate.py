"""Test-set evaluation: discrimination, calibration and the high band, each with a bootstrap 95% interval."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from features import Band

__all__ = [
    "BANDS",
    "BandOutcome",
    "Evaluation",
    "HighBand",
    "Interval",
    "Metrics",
    "OracleComparison",
    "calibration_plot",
    "evaluate",
    "expected_calibration_error",
    "intervals_of",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

BANDS = tuple(b.value for b in Band)
NAN = float("nan")
# Resample counts are built in blocks of at most this many cells (8 bytes each), whatever the test set's size.
_BLOCK_CELLS = 2_000_000


@dataclass(frozen=True, slots=True)
class Interval:
    """A point estimate and its bootstrap 95% percentile interval; NaN where undefined."""

    value: float
    low: float
    high: float

    @classmethod
    def from_samples(cls, value: float, samples: FloatArray) -> Interval:
        """The interval of the resampled values, NaN ones (undefined resamples) left out."""
        usable = samples[~np.isnan(samples)]
        if usable.size == 0:
            return cls(float(value), NAN, NAN)
        low, high = np.percentile(usable, [2.5, 97.5])
        return cls(float(value), float(low), float(high))


@dataclass(frozen=True, slots=True)
class Metrics:
    """Discrimination and calibration of the probabilities."""

    roc_auc: Interval
    pr_auc: Interval
    brier: Interval
    log_loss: Interval
    ece: Interval  # expected calibration error, ten equal-width bins


@dataclass(frozen=True, slots=True)
class HighBand:
    """The high band as a flag: the cases a manager would be asked to look at again."""

    precision: Interval
    recall: Interval
    flag_rate: Interval


@dataclass(frozen=True, slots=True)
class OracleComparison:
    """The true probabilities' own scores on the same cases and resamples, and the model's share of the oracle AUC."""

    roc_auc: Interval
    brier: Interval
    auc_ratio: Interval


@dataclass(frozen=True, slots=True)
class BandOutcome:
    """Cases in a band, the re-referral rate observed among them and their mean predicted probability."""

    n: int
    observed_rate: float  # NaN for an empty band
    mean_predicted: float


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What ``evaluate`` found; NaN stands for undefined. ``as_dict`` is its JSON form."""

    n: int
    positives: int
    prevalence: float
    metrics: Metrics
    high_band: HighBand
    bands: dict[str, BandOutcome]  # every name of ``BANDS``, in order
    oracle: OracleComparison | None  # only where the true probabilities are known

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def intervals_of(block: Metrics | HighBand | OracleComparison) -> dict[str, Interval]:
    """A block's intervals by metric name, in their order."""
    return {f.name: getattr(block, f.name) for f in fields(block)}


# --- input checks -------------------------------------------------------------------------------------------------


def as_labels(y: npt.ArrayLike, name: str = "y") -> BoolArray:
    """0/1 (or boolean) labels as a boolean vector."""
    values = np.asarray(y)
    if values.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {values.shape}")
    if values.dtype == np.bool_:
        return values
    if values.size and not np.isin(values, (0, 1)).all():
        raise ValueError(f"{name} must hold only 0 and 1")
    return values.astype(np.bool_)


def as_probabilities(p: npt.ArrayLike, name: str = "p") -> FloatArray:
    """Probabilities as a float vector, each in [0, 1]."""
    values = np.asarray(p, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {values.shape}")
    if not ((values >= 0.0) & (values <= 1.0)).all():  # NaN fails both comparisons
        raise ValueError(f"{name} must hold probabilities in [0, 1], without NaN")
    return values


def _same_length(**arrays: npt.NDArray[Any]) -> int:
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"arrays differ in length: {lengths}")
    return next(iter(lengths.values()))


def _bin_index(p: FloatArray, bins: int) -> npt.NDArray[np.intp]:
    """Equal-width bins on [0, 1]: bin k holds k/bins <= p < (k+1)/bins; p = 1 falls in the last bin."""
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    return np.minimum(np.floor(p * bins), bins - 1).astype(np.intp)


# --- bootstrap machinery (shared with outcomes.fairness) ----------------------------------------------------------


def bootstrap_counts(n: int, n_boot: int, rng: np.random.Generator) -> Iterator[FloatArray]:
    """``n_boot`` resamples of ``n`` cases with replacement, in blocks: row b, column i = times case i was drawn."""
    if n < 1:
        raise ValueError("cannot resample an empty set of cases")
    block = max(1, min(n_boot, _BLOCK_CELLS // n))
    done = 0
    while done < n_boot:
        rows = min(block, n_boot - done)
        draws = rng.integers(0, n, size=(rows, n)) + (np.arange(rows) * n)[:, None]
        yield np.bincount(draws.ravel(), minlength=rows * n).reshape(rows, n).astype(np.float64)
        done += rows


def _ratio(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    """numerator / denominator, NaN where the denominator is 0."""
    out = np.full(np.shape(numerator), NAN)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def _tie_groups(w: FloatArray, y: BoolArray, score: FloatArray, *, descending: bool) -> tuple[FloatArray, FloatArray]:
    """Weights of positives and of negatives per distinct score, scores in order: two (resamples, distinct) arrays."""
    order = np.argsort(-score if descending else score, kind="stable")
    ordered = score[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    w_ordered = w[:, order]
    positive = y[order]
    return (
        np.add.reduceat(w_ordered * positive, starts, axis=1),
        np.add.reduceat(w_ordered * ~positive, starts, axis=1),
    )


def weighted_roc_auc(w: FloatArray, y: BoolArray, score: FloatArray) -> FloatArray:
    """ROC AUC of each weighted resample (ties count one half); NaN for a resample with a single class."""
    pos, neg = _tie_groups(w, y, score, descending=False)
    negatives_below = np.cumsum(neg, axis=1) - neg
    concordant = (pos * (negatives_below + 0.5 * neg)).sum(axis=1)
    return _ratio(concordant, pos.sum(axis=1) * neg.sum(axis=1))


def weighted_average_precision(w: FloatArray, y: BoolArray, score: FloatArray) -> FloatArray:
    """Average precision (scikit-learn's step-wise PR AUC) of each resample; NaN for a single class."""
    pos, neg = _tie_groups(w, y, score, descending=True)
    true_pos = np.cumsum(pos, axis=1)
    flagged = true_pos + np.cumsum(neg, axis=1)
    precision = np.zeros_like(true_pos)
    np.divide(true_pos, flagged, out=precision, where=flagged > 0)
    positives = pos.sum(axis=1)
    ap = _ratio((pos * precision).sum(axis=1), positives)
    ap[neg.sum(axis=1) == 0] = NAN
    return ap


def weighted_mean(w: FloatArray, values: npt.NDArray[Any]) -> FloatArray:
    """The weighted mean of ``values`` in each resample."""
    return _ratio(w @ values.astype(np.float64), w.sum(axis=1))


def weighted_share(w: FloatArray, event: BoolArray, among: BoolArray) -> FloatArray:
    """Share of the weight of cases in ``among`` that is in ``event``; NaN where ``among`` has no weight."""
    return _ratio(w @ (event & among).astype(np.float64), w @ among.astype(np.float64))


def weighted_ece(w: FloatArray, y: BoolArray, p: FloatArray, *, bins: int = 10) -> FloatArray:
    """Expected calibration error of each resample (see ``expected_calibration_error``)."""
    # share_k * |mean(y) - mean(p)|_k = |sum over bin k of (y - p)| / n, so one matrix product gives every bin.
    residual_by_bin = np.zeros((len(p), bins))
    residual_by_bin[np.arange(len(p)), _bin_index(p, bins)] = y - p
    return _ratio(np.abs(w @ residual_by_bin).sum(axis=1), w.sum(axis=1))


def _log_loss_terms(y: BoolArray, p: FloatArray) -> FloatArray:
    # scikit-learn clips the probability of the observed class to [eps, 1 - eps]
    eps = np.finfo(np.float64).eps
    terms: FloatArray = -np.log(np.clip(np.where(y, p, 1.0 - p), eps, 1.0 - eps))
    return terms


# --- public API ---------------------------------------------------------------------------------------------------


def expected_calibration_error(y: npt.ArrayLike, p: npt.ArrayLike, *, bins: int = 10) -> float:
    """Sum over equal-width bins on [0, 1] of (bin share) * |mean(y) - mean(p)|; empty bins skipped; NaN if no cases."""
    labels, probs = as_labels(y), as_probabilities(p)
    n = _same_length(y=labels, p=probs)
    if n == 0:
        return NAN
    residual = np.bincount(_bin_index(probs, bins), weights=labels - probs, minlength=bins)
    return float(np.abs(residual).sum() / n)


def _point_metrics(y: BoolArray, p: FloatArray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    two_classes = bool(y.any() and not y.all())
    return {
        "roc_auc": float(roc_auc_score(y, p)) if two_classes else NAN,
        "pr_auc": float(average_precision_score(y, p)) if two_classes else NAN,
        "brier": float(brier_score_loss(y, p, pos_label=True)),
        "log_loss": float(log_loss(y, p, labels=[False, True])),
        "ece": expected_calibration_error(y, p),
    }


def _resampled_metrics(y: BoolArray, p: FloatArray) -> dict[str, Callable[[FloatArray], FloatArray]]:
    squared_error = (p - y) ** 2
    log_loss_terms = _log_loss_terms(y, p)
    return {
        "roc_auc": lambda w: weighted_roc_auc(w, y, p),
        "pr_auc": lambda w: weighted_average_precision(w, y, p),
        "brier": lambda w: weighted_mean(w, squared_error),
        "log_loss": lambda w: weighted_mean(w, log_loss_terms),
        "ece": lambda w: weighted_ece(w, y, p),
    }


def _rate(event: BoolArray, among: BoolArray) -> float:
    total = int(among.sum())
    return float((event & among).sum() / total) if total else NAN


def evaluate(
    y: npt.ArrayLike,
    p: npt.ArrayLike,
    *,
    high: npt.ArrayLike,
    band: npt.ArrayLike,
    truth: npt.ArrayLike | None = None,
    n_boot: int = 500,
    seed: int = 0,
) -> Evaluation:
    """Metrics of calibrated probabilities ``p`` against 0/1 labels ``y``, with bootstrap 95% intervals.

    Point estimates come from scikit-learn. Every metric of every resample is a weighted version of the same formula
    (resample counts as weights), computed for a block of resamples at once; the weighted formulas agree with
    scikit-learn's on the resampled cases, ties included. A resample with a single class is skipped for AUC-type
    metrics.

    Args:
        high: whether each case is in the high band (the cases a manager would be asked to look at again).
        band: each case's band name, one of ``BANDS``.
        truth: the true probability of each case, where known (synthetic data): adds the oracle block, computed on
            the same resamples, so ``auc_ratio`` (model AUC / oracle AUC) has an interval of its own.
        n_boot: resamples; 0 leaves every interval NaN.
    """
    labels, probs = as_labels(y), as_probabilities(p)
    flagged = as_labels(high, "high")
    bands = np.asarray(band).astype(str)
    oracle = None if truth is None else as_probabilities(truth, "truth")
    n = _same_length(y=labels, p=probs, high=flagged, band=bands, **({} if oracle is None else {"truth": oracle}))
    if n == 0:
        raise ValueError("no cases to evaluate")
    if n_boot < 0:
        raise ValueError(f"n_boot must be 0 or more, got {n_boot}")
    unknown = sorted(set(np.unique(bands)) - set(BANDS))
    if unknown:
        raise ValueError(f"unknown band names {unknown}; expected {list(BANDS)}")

    points = _point_metrics(labels, probs)
    resampled = _resampled_metrics(labels, probs)
    everyone = np.ones(n, dtype=np.bool_)
    points |= {
        "precision": _rate(labels, flagged),
        "recall": _rate(flagged, labels),
        "flag_rate": _rate(flagged, everyone),
    }
    resampled |= {
        "precision": lambda w: weighted_share(w, labels, flagged),
        "recall": lambda w: weighted_share(w, flagged, labels),
        "flag_rate": lambda w: weighted_mean(w, flagged),
    }
    if oracle is not None:
        oracle_points = _point_metrics(labels, oracle)
        points |= {
            "oracle_roc_auc": oracle_points["roc_auc"],
            "oracle_brier": oracle_points["brier"],
            "auc_ratio": points["roc_auc"] / oracle_points["roc_auc"],
        }
        oracle_squared_error = (oracle - labels) ** 2
        resampled |= {
            "oracle_roc_auc": lambda w: weighted_roc_auc(w, labels, oracle),
            "oracle_brier": lambda w: weighted_mean(w, oracle_squared_error),
        }

    blocks: dict[str, list[FloatArray]] = {name: [] for name in points}
    for w in bootstrap_counts(n, n_boot, np.random.default_rng(seed)):
        values = {name: metric(w) for name, metric in resampled.items()}
        if oracle is not None:
            with np.errstate(divide="ignore", invalid="ignore"):  # an oracle AUC of 0 is not a number we need
                values["auc_ratio"] = values["roc_auc"] / values["oracle_roc_auc"]
        for name, value in values.items():
            blocks[name].append(value)
    intervals = {
        name: Interval.from_samples(points[name], np.concatenate(blocks[name]) if blocks[name] else np.empty(0))
        for name in points
    }

    def interval(name: str) -> Interval:
        return intervals[name]

    positives = int(labels.sum())
    return Evaluation(
        n=n,
        positives=positives,
        prevalence=positives / n,
        metrics=Metrics(*map(interval, ("roc_auc", "pr_auc", "brier", "log_loss", "ece"))),
        high_band=HighBand(*map(interval, ("precision", "recall", "flag_rate"))),
        bands={
            name: BandOutcome(
                n=int(in_band.sum()),
                observed_rate=float(labels[in_band].mean()) if in_band.any() else NAN,
                mean_predicted=float(probs[in_band].mean()) if in_band.any() else NAN,
            )
            for name, in_band in ((name, bands == name) for name in BANDS)
        },
        oracle=None
        if oracle is None
        else OracleComparison(*map(interval, ("oracle_roc_auc", "oracle_brier", "auc_ratio"))),
    )


def calibration_plot(y: npt.ArrayLike, p: npt.ArrayLike, path: Path, *, title: str, bins: int = 10) -> None:
    """Write a reliability diagram (PNG): observed rate against mean predicted probability per equal-width bin,
    the diagonal of perfect calibration, and the number of cases per bin underneath."""
    # The Agg canvas is attached to this figure alone: no pyplot, no global backend switch, never a window.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels, probs = as_labels(y), as_probabilities(p)
    _same_length(y=labels, p=probs)
    index = _bin_index(probs, bins)
    counts = np.bincount(index, minlength=bins).astype(np.float64)
    filled = counts > 0
    observed = _ratio(np.bincount(index, weights=labels, minlength=bins).astype(np.float64), counts)
    predicted = _ratio(np.bincount(index, weights=probs, minlength=bins).astype(np.float64), counts)
    edges = np.linspace(0.0, 1.0, bins + 1)

    figure = Figure(figsize=(6.0, 6.5), layout="constrained")
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    top.plot([0.0, 1.0], [0.0, 1.0], linestyle="--", color="grey", label="perfect calibration")
    top.plot(predicted[filled], observed[filled], marker="o", label="model")
    top.set(xlim=(0.0, 1.0), ylim=(0.0, 1.0), ylabel="observed re-referral rate", title=title)
    top.legend(loc="upper left")
    top.text(0.98, 0.02, f"ECE {expected_calibration_error(labels, probs, bins=bins):.3f}, n={len(probs)}",
             ha="right", va="bottom", transform=top.transAxes)  # fmt: skip
    bottom.bar(edges[:-1], counts, width=1.0 / bins, align="edge", edgecolor="white")
    bottom.set(xlabel="predicted probability", ylabel="cases")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=120)
