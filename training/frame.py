"""The training frame: labels plus the point-in-time features of each eligible closure, seen on its closure date."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features import ChildRecord, build_features, ingest
from outcomes.labels import LabelSummary, label_closures
from outcomes.need import need_confirmed_label

__all__ = ["TrainingFrame", "build_training_frame", "load_training_frame"]


@dataclass
class TrainingFrame:
    frame: pd.DataFrame
    labels: LabelSummary
    summary: dict[str, object]


def _read_truth(path: Path) -> dict[tuple[str, dt.date], tuple[float, int | None]]:
    truth: dict[tuple[str, dt.date], tuple[float, int | None]] = {}
    with path.open(encoding="utf-8", newline="") as stream:
        for row in csv.DictReader(stream):
            outcome = row["rereferred_within_365"]
            key = (row["la_child_id"], dt.date.fromisoformat(row["referral_date"]))
            truth[key] = (float(row["true_probability"]), int(outcome) if outcome else None)
    return truth


def build_training_frame(
    records: Sequence[ChildRecord], *, data_end: dt.date, truth: Path | None = None
) -> TrainingFrame:
    """Label every closure, build its features at its closure date, and join the truth where there is one.

    Each row is built by ``features.build_features`` from the child's record cut just after the closing episode,
    with ``as_of`` = the closure date: the case exactly as a manager would have scored it that day (the closure
    itself is never read). With the generator's ``truth.csv``, each row also carries the true probability.
    """
    closures, labels = label_closures(records, data_end=data_end)
    views = [
        records[c.record_index].model_copy(update={"episodes": records[c.record_index].episodes[: c.episode_index + 1]})
        for c in closures
    ]
    frame = build_features(views, [c.closure_date for c in closures])
    if len(frame) != len(closures):  # a closure dated as_of is always the current episode
        raise AssertionError(f"{len(closures)} closures gave {len(frame)} feature rows")
    frame = frame.rename(columns={"as_of": "closure_date"})
    reasons = pd.Series([c.closure_reason for c in closures], dtype=pd.CategoricalDtype(["RC7", "RC8", "RC9"]))
    frame.insert(3, "closure_reason", reasons)
    frame.insert(4, "label", np.array([c.label for c in closures], dtype=np.int8))
    # Audit only, never model inputs: the detailed ethnicity code and the need-confirmed label (outcomes/need.py).
    frame["ethnicity"] = pd.Series([records[c.record_index].ethnicity.value for c in closures], dtype="object")
    need = [need_confirmed_label(records[c.record_index], c.episode_index, data_end=data_end) for c in closures]
    frame["label_need_confirmed"] = np.array(need, dtype=np.int8)
    summary: dict[str, object] = {**labels.as_dict(), "rows": len(frame), "in_scope": int(frame["in_scope"].sum())}
    if truth is not None:
        known = _read_truth(truth)
        found = [known.get((c.la_child_id, c.referral_date)) for c in closures]
        frame["true_probability"] = np.array([f[0] if f else np.nan for f in found])
        matched = [(c.label, f[1]) for c, f in zip(closures, found, strict=True) if f is not None and f[1] is not None]
        summary["truth"] = {
            "rows_matched": len(matched),
            "label_agrees_with_truth": sum(a == b for a, b in matched) / len(matched) if matched else None,
            "truth_positive_rate": sum(b for _, b in matched) / len(matched) if matched else None,
            "mean_true_probability": float(np.nanmean(frame["true_probability"])) if len(frame) else None,
        }
    return TrainingFrame(frame=frame, labels=labels, summary=summary)


def load_training_frame(data: Path) -> TrainingFrame:
    """Ingest a data folder (``cin_*.xml``, optional ``extension.jsonl`` and ``truth.csv``) into a training frame."""
    returns = sorted(data.glob("*.xml"))
    if not returns:
        raise FileNotFoundError(f"{data}: no CIN census returns (*.xml)")
    extension = data / "extension.jsonl"
    result = ingest(returns, extension=extension if extension.exists() else None)
    if result.data_end is None:
        raise ValueError(f"{data}: no return states its reference date, so censoring cannot be applied")
    truth = data / "truth.csv"
    built = build_training_frame(result.records, data_end=result.data_end, truth=truth if truth.exists() else None)
    built.summary = {"ingest": result.summary(), **built.summary}
    return built
