"""One case assessed: the single function behind every output (the API, the offline scorer, Spark, the report)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

import numpy as np

from features import (
    EXTENSION_FIELDS,
    FEATURE_NAMES,
    FEATURES,
    Band,
    ChildRecord,
    Episode,
    EthnicGroup,
    feature_rows,
    feature_spec,
)
from models.bundle import FeatureValue, FloatArray, RiskModel
from models.whatif import OpenCase, WhatIf, what_ifs_of_cases

IntArray = np.ndarray[Any, np.dtype[np.intp]]
__all__ = ["BATCH_FIELDS", "ROW_FIELDS", "Assessed", "Assessment", "ReasonRow", "assess"]

_LABELS = tuple(feature_spec(name).label for name in FEATURE_NAMES)
_CATEGORIES = tuple(spec.categories if spec.kind == "categorical" else None for spec in FEATURES)

# What the offline engines (one process, Spark) write for each scored case.
BATCH_FIELDS = (
    "la_child_id",
    "episode_referral_date",
    "as_of",
    "model_version",
    "probability",
    "band",
    "in_scope",
    "out_of_distribution",
    "raw_score",
    "base_value",
    "reasons",
    "warnings",
)


class ReasonRow(TypedDict):
    """One feature's share of a score, as every output shows it."""

    feature: str
    label: str  # the feature in a manager's words
    value: FeatureValue  # the case's value; None where it was not recorded
    contribution: float  # exact TreeSHAP, log-odds
    direction: Literal["raises", "lowers"]


_BANDS = {b.value: b for b in Band}
_ETHNIC_GROUPS = tuple(EthnicGroup)  # in the order of ``FeatureRows.groups``' codes
_NOT_IN_SCOPE = "Outside the neglect population the model is reported on: scored, but read it with care."
_UNUSUAL = "Unlike the closed cases the model learned from: the score is less reliable."


def _value(j: int, raw: float) -> FeatureValue:
    """A model-matrix value as the case's own value: None where missing, the category where categorical."""
    if raw != raw:  # NaN
        return None
    categories = _CATEGORIES[j]
    return categories[int(raw)] if categories is not None else raw


def _missing_from_return(reference_date: dt.date) -> str:
    return (
        f"Open in an earlier census return but missing from the return of {reference_date:%d %B %Y}, which should "
        "hold it: the case may have closed. Check that it is still open before acting on the score."
    )


def _warnings(in_scope: bool, unusual: list[str], episode: Episode) -> list[str]:
    out = []
    if not in_scope:
        out.append(_NOT_IN_SCOPE)
    if unusual:
        out.append(_UNUSUAL)
    if episode.missing_from_return is not None:
        out.append(_missing_from_return(episode.missing_from_return))
    missing = [name.replace("_", " ") for name in EXTENSION_FIELDS if getattr(episode, name) is None]
    if missing:
        out.append(f"Not recorded in the case file, so the score goes without it: {', '.join(missing)}.")
    return out


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs microseconds a case in a million-case run
class Assessment:
    """One open case assessed: its score, band, explanation (as arrays), what-ifs and warnings."""

    la_child_id: str
    position: int  # the record's index in the batch assessed
    episode: Episode  # the episode open on ``as_of``: the one scored
    as_of: dt.date
    model_name: str
    model_version: str
    probability: float
    band: Band
    band_observed_rate: float | None
    raw_score: float
    base_value: float
    in_scope: bool
    out_of_distribution: list[str]
    values: FloatArray  # the model's input row (categoricals as codes in the specification's order, NaN if missing)
    contributions: FloatArray  # exact TreeSHAP, log-odds, in FEATURE_NAMES order: base_value + sum = raw_score
    order: IntArray  # feature indices, largest absolute contribution first (ties in FEATURE_NAMES order)
    ethnic_group: EthnicGroup  # for the fairness audit only: never a model input
    what_ifs: list[WhatIf] = field(default_factory=list)

    @property
    def episode_referral_date(self) -> dt.date:
        return self.episode.referral_date

    @property
    def warnings(self) -> list[str]:
        """What the caller is warned of: outside the population, unlike the training cases, facts not recorded."""
        return _warnings(self.in_scope, self.out_of_distribution, self.episode)

    @property
    def features(self) -> dict[str, FeatureValue]:
        """The model's input values as plain JSON values: what reproduces the score."""
        return {
            name: _value(j, raw) for j, (name, raw) in enumerate(zip(FEATURE_NAMES, self.values.tolist(), strict=True))
        }

    def reasons(self, top: int | None = None) -> list[ReasonRow]:
        """Each feature's contribution, largest absolute first; the first ``top`` of them (all for None)."""
        order = self.order[:top].tolist()
        shares, row = self.contributions.tolist(), self.values.tolist()
        return [{"feature": FEATURE_NAMES[j], "label": _LABELS[j], "value": _value(j, row[j]),
                 "contribution": shares[j], "direction": "raises" if shares[j] > 0 else "lowers"}
                for j in order]  # fmt: skip

    def to_row(self, *, top: int | None = None, fields: Sequence[str] | None = None) -> dict[str, Any]:
        """The assessment as one flat row of plain values (dates stay dates): ``fields`` of ``ROW_FIELDS``, in the
        order given (all of them for None); ``reasons`` holds the first ``top`` (all for None). Only the fields asked
        for are worked out."""
        names = ROW_FIELDS if fields is None else fields
        unknown = [name for name in names if name not in _FIELDS]
        if unknown:
            raise ValueError(f"an assessment has no field {unknown[0]!r}")
        return {name: _FIELDS[name](self, top) for name in names}


_FIELDS: dict[str, Callable[[Assessment, int | None], Any]] = {
    "la_child_id": lambda a, _: a.la_child_id,
    "episode_referral_date": lambda a, _: a.episode.referral_date,
    "as_of": lambda a, _: a.as_of,
    "model_name": lambda a, _: a.model_name,
    "model_version": lambda a, _: a.model_version,
    "probability": lambda a, _: a.probability,
    "band": lambda a, _: a.band.value,
    "band_observed_rate": lambda a, _: a.band_observed_rate,
    "in_scope": lambda a, _: a.in_scope,
    "out_of_distribution": lambda a, _: list(a.out_of_distribution),
    "raw_score": lambda a, _: a.raw_score,
    "base_value": lambda a, _: a.base_value,
    "reasons": lambda a, top: a.reasons(top),
    "features": lambda a, _: a.features,
    "what_ifs": lambda a, _: [w.as_dict() for w in a.what_ifs],
    "warnings": lambda a, _: a.warnings,
    "ethnic_group": lambda a, _: a.ethnic_group.value,
}
ROW_FIELDS = tuple(_FIELDS)  # every field ``to_row`` can give, in the order it gives them


@dataclass(frozen=True)
class Assessed:
    """What ``assess`` returns: one assessment per record with an open episode, in input order, and the positions
    of the records that had none."""

    assessments: list[Assessment]
    not_open: list[int]


def assess(
    model: RiskModel,
    records: Sequence[ChildRecord],
    as_of: dt.date | Sequence[dt.date],
    *,
    what_ifs: bool = True,
    workers: int = 1,
) -> Assessed:
    """Assess the episode open on ``as_of`` (one date, or one per record) of each record.

    ``what_ifs=False`` skips the what-ifs (a batch run that never shows them); ``workers`` > 1 builds the features
    of a large batch in forked processes, as ``features.feature_rows`` does.

    ``assess(model, records, as_of)`` finds each record's open episode once, builds its point-in-time features, scores,
    calibrates, bands and explains them (exact TreeSHAP, kept as arrays), checks them against the cases the model
    learned from, works out the what-ifs and the caller's warnings, and returns one ``Assessment`` per open case plus
    the positions of the records with no open episode. ``Assessment.to_row`` is the one flat shape every consumer
    writes: the API's response, the audit row, the command line's JSON line and the Spark row take their fields from it.
    """
    rows = feature_rows(records, as_of, workers=workers)
    found = set(rows.positions)
    not_open = [i for i in range(len(records)) if i not in found]
    if len(rows) == 0:
        return Assessed([], not_open)
    raw_score, contributions = model.explainer.explain(rows.matrix)
    orders = np.argsort(-np.abs(contributions), axis=1, kind="stable")  # once for the batch, not per case
    probability = model.calibrated(raw_score, rows.matrix)
    bands = model.bands.assign(probability).tolist()
    unusual = model.reference.reasons_matrix(rows.matrix)
    base = model.explainer.base_value
    name, version = model.name, model.version
    rates = model.bands.observed_rate
    p_list, raw_list = probability.tolist(), raw_score.tolist()
    found_what_ifs: list[list[WhatIf]] = [[] for _ in p_list]
    if what_ifs:
        raising = contributions > 0
        matrix = rows.matrix.tolist()
        cases = [
            OpenCase(
                records[rows.positions[i]].episodes[rows.episodes[i]],
                rows.as_of[i],
                matrix[i],
                p_list[i],
                frozenset(FEATURE_NAMES[j] for j in np.flatnonzero(raising[i]).tolist()),
            )
            for i in range(len(rows))
        ]
        found_what_ifs = what_ifs_of_cases(model, cases)
    out = []
    for i, (p, raw) in enumerate(zip(p_list, raw_list, strict=True)):
        record = records[rows.positions[i]]
        episode = record.episodes[rows.episodes[i]]
        in_scope = bool(rows.in_scope[i])
        band = _BANDS[bands[i]]
        out.append(
            Assessment(
                la_child_id=record.la_child_id,
                position=rows.positions[i],
                episode=episode,
                as_of=rows.as_of[i],
                model_name=name,
                model_version=version,
                probability=p,
                band=band,
                band_observed_rate=rates.get(band),
                raw_score=raw,
                base_value=base,
                in_scope=in_scope,
                out_of_distribution=unusual[i],
                values=rows.matrix[i],
                contributions=contributions[i],
                order=orders[i],
                ethnic_group=_ETHNIC_GROUPS[rows.groups[i]],
                what_ifs=found_what_ifs[i],
            )
        )
    return Assessed(out, not_open)
