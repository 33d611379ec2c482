"""The closure-risk command line end to end: generate a cohort, ingest it back, refuse bad files clearly."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from lxml import etree

from closure_risk import EXIT_INPUT, main
from features import FEATURE_NAMES
from features.record import ChildRecord
from synthetic.cohort import simulate_cohort

COHORT: dict[str, Any] = {"children": 400, "seed": 7, "start": 2021, "end": 2024}


def _generate(out: Path, capsys: pytest.CaptureFixture[str], **overrides: int) -> dict[str, object]:
    params = {**COHORT, **overrides}
    args = ["generate", *(f"--{k}={v}" for k, v in params.items()), f"--out={out}", "--workers=1"]
    assert main(args) == 0
    summary: dict[str, object] = json.loads(capsys.readouterr().out)
    return summary


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cohort")
    assert main(["generate", *(f"--{k}={v}" for k, v in COHORT.items()), f"--out={out}", "--workers=1"]) == 0
    return out


def _digests(folder: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(folder.iterdir())}


def test_generate_writes_a_return_per_year_extension_truth_and_manifest(generated: Path) -> None:
    names = {f.name for f in generated.iterdir()}
    assert names == {"cin_2021.xml", "cin_2022.xml", "cin_2023.xml", "cin_2024.xml", "extension.jsonl",
                     "truth.csv", "manifest.json"}  # fmt: skip
    manifest = json.loads((generated / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["parameters"] == COHORT
    assert manifest["children"] == COHORT["children"]


def _generate_in_fresh_process(out: Path, hash_seed: str, workers: int, seed: int = COHORT["seed"]) -> None:
    params = {**COHORT, "seed": seed}
    args = [sys.executable, "-c", "import sys, closure_risk; sys.exit(closure_risk.main())", "generate",
            *(f"--{k}={v}" for k, v in params.items()), f"--out={out}", f"--workers={workers}"]  # fmt: skip
    subprocess.run(args, check=True, capture_output=True, env={**os.environ, "PYTHONHASHSEED": hash_seed})


def test_generate_same_seed_same_bytes_in_any_process(generated: Path, tmp_path: Path) -> None:
    # Fresh interpreters with different hash seeds: set or dict-order dependence would show here.
    _generate_in_fresh_process(tmp_path / "a", hash_seed="1", workers=1)
    _generate_in_fresh_process(tmp_path / "b", hash_seed="2", workers=2)
    assert _digests(tmp_path / "a") == _digests(generated)
    assert _digests(tmp_path / "b") == _digests(generated)


def test_generate_other_seed_other_bytes(generated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _generate(tmp_path / "other", capsys, seed=8)
    assert _digests(tmp_path / "other")["cin_2024.xml"] != _digests(generated)["cin_2024.xml"]


@pytest.mark.parametrize("schema_year", [2025, 2026])
def test_generated_returns_are_valid_against_the_census_schema(
    generated: Path, shared_reference: Path, schema_year: int
) -> None:
    schema = etree.XMLSchema(etree.parse(str(shared_reference / "cin-census" / "schema" /
                                             f"CIN_schema_{schema_year}.xsd")))  # fmt: skip
    for path in sorted(generated.glob("cin_*.xml")):
        document = etree.parse(str(path))
        assert schema.validate(document), f"{path.name}: {schema.error_log}"


def test_ingest_generated_cohort_reports_no_problems_and_gives_back_the_records(
    generated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    problems, out = tmp_path / "problems.csv", tmp_path / "records.jsonl"
    args = ["ingest", *map(str, sorted(generated.glob("cin_*.xml"))), "--extension", str(generated / "extension.jsonl"),
            "--problems", str(problems), "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["problems"] == 0
    header = "source,la_child_id,path,rule,message,severity,dfe_rule,dfe_message"
    assert problems.read_text(encoding="utf-8").strip() == header
    ingested = [ChildRecord.model_validate_json(line) for line in out.read_text(encoding="utf-8").splitlines()]
    expected = simulate_cohort(**COHORT, workers=1).records
    assert summary["children"] == len(expected)
    assert sorted(ingested, key=lambda r: r.la_child_id) == sorted(expected, key=lambda r: r.la_child_id)


def test_ingest_not_xml_fails_with_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "return.xml"
    path.write_text("LAchildID,Sex\nC1,M\n", encoding="utf-8")
    assert main(["ingest", str(path)]) == EXIT_INPUT
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "return.xml" in captured.err
    assert len(captured.err.strip().splitlines()) == 1


def test_ingest_file_with_one_bad_child_exits_zero_with_the_good_children(
    generated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (generated / "cin_2024.xml").read_text(encoding="utf-8")
    broken = text.replace("<CINreferralDate>", "<CINreferralDate>31/02/", 1)
    path = tmp_path / "cin_2024.xml"
    path.write_text(broken, encoding="utf-8")
    problems = tmp_path / "problems.csv"
    assert main(["ingest", str(path), "--problems", str(problems)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["children_with_problems"] == 1
    assert summary["children"] == text.count("<Child>") - 1
    assert "CINreferralDate" in problems.read_text(encoding="utf-8")


def test_generate_refuses_end_before_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--children=5", "--seed=1", "--start=2024", "--end=2020", f"--out={tmp_path}"]) == 2
    assert "before --start" in capsys.readouterr().err


def test_features_writes_the_training_frame_and_a_summary(
    generated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "frame" / "training.parquet"
    assert main(["features", "--data", str(generated), "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    frame = pd.read_parquet(out)
    assert len(frame) == summary["eligible"] == summary["rows"]
    assert summary["positives"] == int(frame["label"].sum())
    assert summary["censored"] > 0
    assert summary["truth"]["label_agrees_with_truth"] == 1.0
    assert {"la_child_id", "closure_date", "label", *FEATURE_NAMES} <= set(frame.columns)


def test_features_refuses_a_folder_without_returns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["features", "--data", str(tmp_path), "--out", str(tmp_path / "x.parquet")]) == EXIT_INPUT
    assert "no CIN census returns" in capsys.readouterr().err


_THREADS = (
    "import json, cli; cli.configure_process(); import numpy, threadpoolctl; "
    "print(json.dumps([info['num_threads'] for info in threadpoolctl.threadpool_info()]))"
)


@pytest.mark.parametrize(("given", "expected"), [(None, 1), ("2", 2)])
def test_commands_run_one_numerical_thread_unless_told_otherwise(given: str | None, expected: int) -> None:
    # configure_process runs before a subcommand imports numpy; the libraries read the variables when they load.
    env = {
        k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    }
    if given is not None:
        env["OPENBLAS_NUM_THREADS"] = given
    out = subprocess.run([sys.executable, "-c", _THREADS], env=env, capture_output=True, text=True, check=True).stdout
    threads = json.loads(out)
    assert threads, "numpy loaded no threaded library"
    assert max(threads) == expected


@pytest.mark.parametrize(
    ("uri", "made", "new"),
    [
        ("sqlite:///{dir}/mlflow.db", False, True),
        ("sqlite:///{dir}/mlflow.db", True, False),
        ("sqlite:///:memory:", False, False),
        ("postgresql://mlflow@127.0.0.1/mlflow", False, False),
        ("file://{dir}/mlruns", False, False),
    ],
)
def test_first_run_knows_a_store_has_no_champion_only_when_it_is_a_local_file_not_made_yet(
    tmp_path: Path, uri: str, made: bool, new: bool
) -> None:
    from cli.service import _store_is_new

    if made:
        (tmp_path / "mlflow.db").write_bytes(b"")
    assert _store_is_new(uri.format(dir=tmp_path)) is new


def test_first_run_generates_in_its_own_process_what_the_command_generates(
    generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli import service

    monkeypatch.setattr(service, "DEFAULT_COHORT", COHORT)
    process = service._start_generating(tmp_path / "early")
    assert process.pid != os.getpid()
    summary = service._generated(process)
    assert summary["children"] == COHORT["children"]
    assert summary["episodes"] > 0
    assert _digests(tmp_path / "early") == _digests(generated)


def test_first_run_generation_that_fails_ends_the_command_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli import service

    monkeypatch.setattr(service, "DEFAULT_COHORT", {**COHORT, "end": COHORT["start"] - 1})
    with pytest.raises(SystemExit, match=r"generating the synthetic authority failed: .*--end .* is before --start"):
        service._generated(service._start_generating(tmp_path / "early"))
    assert not (tmp_path / "early" / "manifest.json").exists()
