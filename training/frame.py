"""The training frame: labels plus the point-in-time features of each eligible closure, seen on its closure date."""

from __future__ import annotations

import csv
import datetime as dt
import functools
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features import ChildRecord, Part, build_features, ingest, merge_summaries
from outcomes.labels import LabelSummary, label_closures
from outcomes.need import need_confirmed_label

__all__ = ["TrainingFrame", "build_training_frame", "load_training_frame"]

MAX_WORKERS = 2  # processes that share the children out by default: the cores of the machine it is made for


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
    return _assembled([_frame_part(records, data_end=data_end, truth=truth)], truth=truth is not None)


@dataclass
class _FramePart:
    """The rows of some children (records sorted by LAchildID) and what adds up across parts."""

    frame: pd.DataFrame
    labels: LabelSummary
    matched: int = 0  # rows whose outcome the truth file gives
    agreed: int = 0  # ... and whose label agrees with it
    positive: int = 0  # ... and whose true outcome is a re-referral


def _frame_part(records: Sequence[ChildRecord], *, data_end: dt.date, truth: Path | None) -> _FramePart:
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
    part = _FramePart(frame, labels)
    if truth is not None:
        known = _read_truth(truth)
        found = [known.get((c.la_child_id, c.referral_date)) for c in closures]
        frame["true_probability"] = np.array([f[0] if f else np.nan for f in found])
        matched = [(c.label, f[1]) for c, f in zip(closures, found, strict=True) if f is not None and f[1] is not None]
        part.matched = len(matched)
        part.agreed = sum(a == b for a, b in matched)
        part.positive = sum(b for _, b in matched)
    return part


def _assembled(parts: Sequence[_FramePart], *, truth: bool) -> TrainingFrame:
    """One frame from the parts' rows in LAchildID order (each child's rows in one part), as one process builds it."""
    if len(parts) == 1:
        frame = parts[0].frame
    else:
        frame = pd.concat([part.frame for part in parts], ignore_index=True)
        frame = frame.sort_values("la_child_id", kind="stable", ignore_index=True)
    first = parts[0].labels
    labels = LabelSummary(data_end=first.data_end, **{
        name: sum(getattr(part.labels, name) for part in parts)
        for name in ("closures", "excluded_reason", "excluded_age", "censored", "eligible", "positives")
    })  # fmt: skip
    summary: dict[str, object] = {**labels.as_dict(), "rows": len(frame), "in_scope": int(frame["in_scope"].sum())}
    if truth:
        matched = sum(part.matched for part in parts)
        summary["truth"] = {
            "rows_matched": matched,
            "label_agrees_with_truth": sum(part.agreed for part in parts) / matched if matched else None,
            "truth_positive_rate": sum(part.positive for part in parts) / matched if matched else None,
            "mean_true_probability": float(np.nanmean(frame["true_probability"])) if len(frame) else None,
        }
    return TrainingFrame(frame=frame, labels=labels, summary=summary)


def load_training_frame(data: Path, *, workers: int | None = None) -> TrainingFrame:
    """Ingest a data folder (``cin_*.xml``, optional ``extension.jsonl`` and ``truth.csv``) into a training frame.

    ``workers`` (default: one per core, at most ``MAX_WORKERS``) forked processes share the children out
    (``features.Part``): each reads every return but links, validates and builds the rows of its own children
    only, and the parts are put together as one process would have built them (the same frame, the same summary).
    """
    returns = sorted(data.glob("*.xml"))
    if not returns:
        raise FileNotFoundError(f"{data}: no CIN census returns (*.xml)")
    extension_path = data / "extension.jsonl"
    extension = extension_path if extension_path.exists() else None
    truth_path = data / "truth.csv"
    truth = truth_path if truth_path.exists() else None
    count = min(os.cpu_count() or 1, MAX_WORKERS) if workers is None else workers
    if count < 2 or "fork" not in multiprocessing.get_all_start_methods():
        loaded = [_load_part(returns, extension, truth, None)]
    else:
        with ProcessPoolExecutor(max_workers=count, mp_context=multiprocessing.get_context("fork")) as pool:
            share = functools.partial(_load_part, returns, extension, truth)
            loaded = list(pool.map(share, [Part(i, count) for i in range(count)]))
    if loaded[0][1] is None:
        raise ValueError(f"{data}: no return states its reference date, so censoring cannot be applied")
    built = _assembled([part for _, _, part in loaded if part is not None], truth=truth is not None)
    built.summary = {"ingest": merge_summaries([summary for summary, _, _ in loaded]), **built.summary}
    return built


def _load_part(
    returns: list[Path], extension: Path | None, truth: Path | None, part: Part | None
) -> tuple[dict[str, Any], dt.date | None, _FramePart | None]:
    """One share's ingestion summary, data end and rows (none where no return states its reference date)."""
    result = ingest(returns, extension=extension, part=part)
    if result.data_end is None:
        return result.summary(), None, None
    return result.summary(), result.data_end, _frame_part(result.records, data_end=result.data_end, truth=truth)
