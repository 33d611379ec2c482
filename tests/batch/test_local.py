"""``closure-risk score``: many cases offline through the same bundle, equal to the API's scores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import batch.local
from closure_risk import main
from features import FEATURE_NAMES, ChildRecord
from models import RiskModel, assess
from tests.conftest import AS_OF
from tests.models.oracle import expected_scores


@pytest.mark.parametrize("workers", [1, 2])
def test_score_command_writes_one_line_per_open_case_and_lists_bad_lines(
    bundle: Path, open_records: list[ChildRecord], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, workers: int,
) -> None:  # fmt: skip
    monkeypatch.setattr(batch.local, "_CHUNK_BYTES", 20_000)  # several chunks, each read by a worker
    monkeypatch.chdir(tmp_path)  # where the default MLflow store (sqlite:///mlflow.db) would be created
    records = open_records[:30]
    source = tmp_path / "cases.jsonl"
    lines = [r.model_dump_json(exclude_none=True) for r in records]
    closed = records[0].model_copy(update={"episodes": records[0].episodes[:-1]})
    extra = [closed.model_dump_json(exclude_none=True)] if closed.episodes else []
    source.write_text("\n".join([*lines, '{"la_child_id": "", "sex": "Q"}', *extra]) + "\n", encoding="utf-8")
    out = tmp_path / "scores.jsonl"
    code = main(["score", str(source), "--out", str(out), "--as-of", AS_OF.isoformat(), "--model", str(bundle),
                 "--reasons", "all", "--workers", str(workers)])  # fmt: skip
    assert code == 0
    assert not (tmp_path / "mlflow.db").exists()  # a bundle folder is read from its files: no store is created
    summary = json.loads(capsys.readouterr().out)
    assert summary["scored"] == len(records)
    assert summary["invalid"] == 1
    assert summary["invalid_lines"][0]["line"] == len(records) + 1
    assert summary["no_open_episode"] == len(extra)
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    model = RiskModel.load(bundle)
    expected = expected_scores(model, records, AS_OF)
    assert [w["probability"] for w in written] == [e.probability for e in expected]
    assert all(len(w["reasons"]) == len(FEATURE_NAMES) for w in written)
    assert [w["out_of_distribution"] for w in written] == [e.out_of_distribution for e in expected]
    # The same reasons, in the same order, with the same values as the API's scores (one assess for both).
    assessed = assess(model, records, AS_OF).assessments
    assert [w["reasons"] for w in written] == [a.reasons() for a in assessed]
