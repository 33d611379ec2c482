"""``ingest`` as the ingestion tests call it: every call is checked against ingesting the same input in shares
(``features.Part``, as training does in several processes), so each shape of input those tests build, broken files,
bad extension lines and children without an id among them, is a test that the shares lose and repeat nothing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from features import IngestResult, Part, merge_summaries
from features import ingest as ingest_whole

__all__ = ["ingest"]


def ingest(paths: Sequence[Path], **kwargs: Any) -> IngestResult:
    """``features.ingest``, after checking that its shares (2 and 3) give the same records, problems and summary."""
    whole = ingest_whole(paths, **kwargs)
    if kwargs.get("part") is None:
        for count in (2, 3):
            assert_shares_add_up(whole, [ingest_whole(paths, **kwargs, part=Part(i, count)) for i in range(count)])
    return whole


def assert_shares_add_up(whole: IngestResult, parts: list[IngestResult]) -> None:
    records = sorted((record for part in parts for record in part.records), key=lambda record: record.la_child_id)
    assert records == whole.records
    problems = sorted(repr(problem) for part in parts for problem in part.problems)
    assert problems == sorted(repr(problem) for problem in whole.problems)
    assert merge_summaries([part.summary() for part in parts]) == whole.summary()
