"""Feature drift: a feature's binned distribution among the training closures, and the PSI of later cases against it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features import FeatureSpec

__all__ = ["FLOOR", "Distribution", "population_stability"]

FLOOR = 1e-4
MISSING = "missing"
_DECILES = np.linspace(0.1, 0.9, 9)


def _is_missing(values: pd.Series) -> np.ndarray[Any, np.dtype[np.bool_]]:
    return np.asarray(values.isna().to_numpy(), dtype=np.bool_)


@dataclass(frozen=True)
class Distribution:
    """A feature's shares per bin; ``bins`` names them (the last is always ``missing``).

    numeric: ``edges`` are the inner bin edges, bin k holds edges[k-1] < x <= edges[k]; other kinds: one bin per value.

    Numeric features are binned at the training deciles (ties merged, so a count feature gets as many bins as it has
    distinct deciles); binary and categorical features by value. Missing values form a bin of their own, so a change in
    how often the case file records something is drift too. PSI = sum over bins of (actual - expected) * ln(actual /
    expected), with shares floored at ``FLOOR`` so an empty bin does not make it infinite. The usual reading: under 0.1
    stable, 0.1 to 0.25 a moderate shift, over 0.25 a large one.
    """

    kind: str
    bins: tuple[str, ...]
    shares: tuple[float, ...]
    edges: tuple[float, ...] = ()

    @classmethod
    def fit(cls, spec: FeatureSpec, values: pd.Series) -> Distribution:
        missing = _is_missing(values)
        if spec.kind == "numeric":
            present = pd.to_numeric(values[~missing]).to_numpy(dtype=float)
            edges = tuple(float(e) for e in np.unique(np.quantile(present, _DECILES))) if present.size else ()
            bins = (*(f"<= {e:g}" for e in edges), f"> {edges[-1]:g}", MISSING) if edges else ("all", MISSING)
            empty = cls(spec.kind, bins, (), edges)
        else:
            options = spec.categories if spec.kind == "categorical" else ("0", "1")
            empty = cls(spec.kind, (*options, MISSING), ())
        return cls(empty.kind, empty.bins, tuple(float(s) for s in empty.shares_of(values)), empty.edges)

    def counts_of(self, values: pd.Series) -> np.ndarray[Any, np.dtype[np.float64]]:
        """How many of ``values`` fall in each bin (values never seen at training count as missing)."""
        missing = _is_missing(values)
        counts = np.zeros(len(self.bins), dtype=np.float64)
        counts[-1] = missing.sum()
        present = values[~missing]
        if self.kind == "numeric":
            numbers = pd.to_numeric(present).to_numpy(dtype=float)
            index = np.searchsorted(np.asarray(self.edges), numbers, side="left")
            counts[:-1] += np.bincount(index, minlength=len(self.bins) - 1)
            return counts
        if self.kind == "binary":
            names = np.where(pd.to_numeric(present).to_numpy(dtype=float) == 1.0, "1", "0")
        else:
            names = present.astype("object").astype(str).to_numpy()
        position = {name: k for k, name in enumerate(self.bins[:-1])}
        for name, count in zip(*np.unique(names, return_counts=True), strict=True):
            counts[position.get(str(name), len(self.bins) - 1)] += count
        return counts

    def shares_of(self, values: pd.Series) -> np.ndarray[Any, np.dtype[np.float64]]:
        counts = self.counts_of(values)
        total = counts.sum()
        return counts / total if total else counts

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "bins": list(self.bins), "shares": list(self.shares), "edges": list(self.edges)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Distribution:
        return cls(data["kind"], tuple(data["bins"]), tuple(data["shares"]), tuple(data["edges"]))


def population_stability(expected: np.ndarray[Any, Any] | tuple[float, ...], actual: np.ndarray[Any, Any]) -> float:
    """PSI of the ``actual`` shares against the ``expected`` ones (same bins; each sums to 1)."""
    e = np.maximum(np.asarray(expected, dtype=float), FLOOR)
    a = np.maximum(np.asarray(actual, dtype=float), FLOOR)
    if e.shape != a.shape:
        raise ValueError(f"bins differ: {e.shape} expected shares, {a.shape} actual")
    return float(np.sum((a - e) * np.log(a / e)))
