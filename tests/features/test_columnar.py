"""Validated records as Parquet: read back as the JSON decoder reads them, marked by the rules that validated them."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import features.columnar
from features import ChildRecord
from features.columnar import (
    RecordFileError,
    is_parquet,
    open_record_file,
    read_rows,
    read_validated,
    records_table,
    rules_version,
    write_records_parquet,
)
from features.decode import record_decoder


def test_parquet_round_trip_reads_what_the_json_decoder_reads(
    open_records: list[ChildRecord], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(features.columnar, "ROW_GROUP", 7)  # lists cut across row groups
    records = open_records[:60]
    assert any(e.services is None for r in records for e in r.episodes)  # missing extensions stay missing
    assert any(e.services for r in records for e in r.episodes)
    path = tmp_path / "records.parquet"
    assert write_records_parquet(records, path) == len(records)
    found = open_record_file(path)
    assert (found.validated, found.rows, found.row_groups, found.refusal) == (True, 60, 9, None)
    read = [r for i in range(found.row_groups) for r in read_validated(found, i)]
    decode = record_decoder().decode
    assert read == [decode(r.model_dump_json(exclude_none=True)) for r in records]
    assert isinstance(read[0], record_decoder().struct or ChildRecord)  # the decoder's struct: nothing re-checked


def test_parquet_without_the_marker_or_with_other_rules_is_not_read_unchecked(
    open_records: list[ChildRecord], tmp_path: Path
) -> None:
    table = records_table(open_records[:3])
    bare, other = tmp_path / "bare.parquet", tmp_path / "other.parquet"
    pq.write_table(table, bare)
    marked = {b"closure_risk.validated": b"true", b"closure_risk.rules_version": b"0123456789abcdef"}
    pq.write_table(table.replace_schema_metadata(marked), other)
    unmarked, older = open_record_file(bare), open_record_file(other)
    assert not unmarked.validated
    assert "not marked as validated" in (unmarked.refusal or "")
    assert not older.validated
    assert f"other census rules (0123456789abcdef; these are {rules_version()})" in (older.refusal or "")
    with pytest.raises(RecordFileError, match="not marked as validated"):
        read_validated(unmarked, 0)
    assert [r["la_child_id"] for r in read_rows(unmarked, 0)] == [r.la_child_id for r in open_records[:3]]


def test_damaged_or_foreign_parquet_is_a_record_file_error(open_records: list[ChildRecord], tmp_path: Path) -> None:
    path = tmp_path / "records.parquet"
    write_records_parquet(open_records[:3], path)
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(RecordFileError, match=r"cut\.parquet is not a readable Parquet file"):
        open_record_file(cut)
    foreign = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"la_child_id": ["C1"]}), foreign)
    with pytest.raises(RecordFileError, match="not a file of case records: no column 'sex'"):
        open_record_file(foreign)


def test_parquet_is_known_by_name_or_by_its_first_bytes(tmp_path: Path) -> None:
    named, unnamed, text = tmp_path / "a.parquet", tmp_path / "a.bin", tmp_path / "a.jsonl"
    pq.write_table(pa.table({"x": [1]}), unnamed)
    named.write_bytes(b"")
    text.write_text("{}\n", encoding="utf-8")
    assert (is_parquet(named), is_parquet(unnamed), is_parquet(text), is_parquet(tmp_path / "none")) == (
        True, True, False, False,
    )  # fmt: skip
