"""``closure-risk score`` of validated Parquet: the same output as the same records from JSON lines."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import batch.local
import features.columnar
from closure_risk import EXIT_INPUT, main
from features import ChildRecord
from features.columnar import RECORD_SCHEMA, records_table
from tests.conftest import AS_OF


def _score(source: Path, out: Path, bundle: Path, capsys: pytest.CaptureFixture[str], workers: int = 2
           ) -> dict[str, object]:  # fmt: skip
    code = main(["score", str(source), "--out", str(out), "--as-of", AS_OF.isoformat(), "--model", str(bundle),
                 "--workers", str(workers)])  # fmt: skip
    assert code == 0
    summary: dict[str, object] = json.loads(capsys.readouterr().out)
    return summary


def test_ingest_parquet_then_score_equals_score_of_the_json_lines(
    tiny_authority: Path, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr(features.columnar, "ROW_GROUP", 300)  # several row groups, read by two workers
    monkeypatch.setattr(batch.local, "_CHUNK_BYTES", 300_000)
    jsonl, parquet = tmp_path / "records.jsonl", tmp_path / "records.parquet"
    args = ["ingest", *map(str, sorted(tiny_authority.glob("cin_*.xml"))), "--extension",
            str(tiny_authority / "extension.jsonl"), "--out", str(jsonl), "--parquet", str(parquet)]  # fmt: skip
    assert main(args) == 0
    capsys.readouterr()
    from_json = _score(jsonl, tmp_path / "from-json.jsonl", bundle, capsys)
    from_parquet = _score(parquet, tmp_path / "from-parquet.jsonl", bundle, capsys)
    assert (tmp_path / "from-parquet.jsonl").read_bytes() == (tmp_path / "from-json.jsonl").read_bytes()
    assert (from_parquet["input_format"], from_parquet["validated_on_read"]) == ("parquet", False)
    same = ("scored", "no_open_episode", "invalid", "invalid_lines", "model_version")
    assert {k: from_parquet[k] for k in same} == {k: from_json[k] for k in same}
    assert int(str(from_json["scored"])) > 100
    assert int(str(from_json["no_open_episode"])) > 0  # records without an open episode, counted alike
    written = [json.loads(line) for line in (tmp_path / "from-json.jsonl").read_text(encoding="utf-8").splitlines()]
    assert any(w["warnings"] for w in written)


def test_unmarked_parquet_is_checked_row_by_row_and_keeps_every_good_record(
    open_records: list[ChildRecord], bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = open_records[:12]
    table = records_table(records).to_pylist()
    table[4]["episodes"][-1]["closure_reason"] = "RC1"  # a reason without a closure date breaks a census rule
    unmarked = tmp_path / "unmarked.parquet"
    pq.write_table(pa.Table.from_pylist(table, schema=RECORD_SCHEMA), unmarked)  # no marker
    good = [r for i, r in enumerate(records) if i != 4]
    jsonl = tmp_path / "good.jsonl"
    jsonl.write_text("".join(r.model_dump_json(exclude_none=True) + "\n" for r in good), encoding="utf-8")
    summary = _score(unmarked, tmp_path / "scores.jsonl", bundle, capsys, workers=1)
    expected = _score(jsonl, tmp_path / "expected.jsonl", bundle, capsys, workers=1)
    assert (summary["scored"], summary["invalid"], summary["validated_on_read"]) == (11, 1, True)
    assert summary["invalid_lines"] == [
        {
            "row": 5,
            "errors": [
                {
                    "path": f"episodes.{len(records[4].episodes) - 1}.closure_date",
                    "rule": "closure_incomplete",
                    "message": "closure_reason is set but closure_date is not",
                }
            ],
        }
    ]
    assert (tmp_path / "scores.jsonl").read_bytes() == (tmp_path / "expected.jsonl").read_bytes()
    assert expected["scored"] == 11


def test_score_of_a_damaged_parquet_says_so_without_a_traceback(
    open_records: list[ChildRecord], bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(b"PAR1 not really")
    out = tmp_path / "scores.jsonl"
    assert main(["score", str(damaged), "--out", str(out), "--model", str(bundle)]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert "damaged.parquet is not a readable Parquet file" in err
    assert "Traceback" not in err
    assert not out.exists()
