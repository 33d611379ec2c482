"""``closure-risk score --engine spark``: Spark on ``local[2]`` writes exactly the single-process scores and reasons.

Needs the optional extra (pyspark) and Java 17 or later. Without them these tests skip with the reason, except
under CI=true, where they fail: CI must run the Spark engine.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from batch.spark import (
    INVALID,
    NO_OPEN_EPISODE,
    SCORED,
    SparkUnavailableError,
    require_java,
    require_pyspark,
    score_texts,
    spark_session,
)
from closure_risk import main
from features import ChildRecord, current_episode, ingest, write_records_jsonl
from features.columnar import write_records_parquet
from models import RiskModel
from synthetic import generate_cohort
from tests.conftest import AS_OF
from tests.models.oracle import expected_scores

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DATES = (dt.date(2025, 3, 31), dt.date(2024, 9, 30))


def _spark_available() -> None:
    try:
        require_pyspark()
        require_java()
    except SparkUnavailableError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{exc}; CI=true, so the Spark engine tests must run", pytrace=False)
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    """One local[2] session for the module (start-up is the slow part); the CLI finds and reuses it."""
    _spark_available()
    session, _ = spark_session("local[2]", {"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "2"})
    yield session
    session.stop()


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[ChildRecord]]:
    """A synthetic authority's linked records as JSON lines: a few thousand cases open on the two dates."""
    _spark_available()
    folder = tmp_path_factory.mktemp("spark-authority")
    generate_cohort(children=8_000, seed=43, start=2017, end=2025, out=folder, workers=2)
    records = ingest(sorted(folder.glob("*.xml")), extension=folder / "extension.jsonl").records
    path = folder / "records.jsonl"
    write_records_jsonl(records, path)
    return path, records


def _single_process(source: Path, bundle: Path, as_of: dt.date, out: Path) -> list[dict[str, Any]]:
    code = main(["score", str(source), "--out", str(out), "--as-of", as_of.isoformat(), "--model", str(bundle)])
    assert code == 0
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def _written(spark: SparkSession, output: Path, as_of: dt.date) -> list[dict[str, Any]]:
    """The Spark job's rows for one date, in the single-process scorer's JSON form."""
    rows = spark.read.parquet(str(output)).where(f"as_of = DATE'{as_of.isoformat()}'").collect()
    out = []
    for row in rows:
        line = row.asDict(recursive=True)
        line["episode_referral_date"] = line["episode_referral_date"].isoformat()
        line["as_of"] = line["as_of"].isoformat()
        for reason in line["reasons"]:
            category = reason.pop("category")
            reason["value"] = category if category is not None else reason["value"]
        out.append(line)
    return out


def _by_case(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(lines, key=lambda line: (line["la_child_id"], line["episode_referral_date"]))


def test_require_java_names_what_to_install_when_there_is_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(SparkUnavailableError, match=r"Java 17 or later .*openjdk-17"):
        require_java()


def test_score_texts_leaves_one_row_per_record_and_names_no_child_in_problems(
    bundle: Path, open_records: list[ChildRecord]
) -> None:
    """What each Spark task runs, without Spark: scored rows as the bundle scores them, and why the others are not."""
    model = RiskModel.load(bundle)
    records = open_records[:20]
    earlier = next(r for r in open_records if len(r.episodes) > 1)
    closed = earlier.model_copy(update={"episodes": earlier.episodes[:-1]})  # only closed episodes remain
    texts = [r.model_dump_json(exclude_none=True) for r in [*records, closed]]
    texts.append('{"la_child_id": "SECRET1", "sex": "Q"}')
    rows = score_texts(model, texts, as_of=AS_OF, top=3)
    assert len(rows) == len(texts)
    assert list(rows["status"]).count(NO_OPEN_EPISODE) == 1
    (problem,) = rows.loc[rows["status"] == INVALID, "problem"]
    assert "sex" in problem
    assert "SECRET1" not in problem
    scored = rows[rows["status"] == SCORED]
    expected = expected_scores(model, records, AS_OF)
    assert list(scored["probability"]) == [e.probability for e in expected]
    assert [[r["feature"] for r in reasons] for reasons in scored["reasons"]] == [e.top(3) for e in expected]


@pytest.mark.spark
def test_spark_engine_equals_single_process_scores_and_reasons_row_for_row(
    spark: SparkSession,
    cases: tuple[Path, list[ChildRecord]],
    bundle: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source, records = cases
    jsonl = tmp_path / "cases.jsonl"
    jsonl.write_text(source.read_text(encoding="utf-8") + '{"la_child_id": "", "sex": "Q"}\n', encoding="utf-8")
    parquet = tmp_path / "cases.parquet"
    spark.read.json(str(source)).write.parquet(str(parquet))  # the same records as a Parquet table
    output = tmp_path / "scores"
    for as_of, given in zip(DATES, (jsonl, parquet), strict=True):
        expected = _single_process(jsonl, bundle, as_of, tmp_path / f"single-{as_of}.jsonl")
        capsys.readouterr()
        code = main(["score", "--engine", "spark", "--master", "local[2]", "--input", str(given), "--output",
                     str(output), "--as-of", as_of.isoformat(), "--model", str(bundle)])  # fmt: skip
        assert code == 0
        summary = json.loads(capsys.readouterr().out)
        open_cases = sum(current_episode(r, as_of) is not None for r in records)
        assert summary["scored"] == len(expected) == open_cases
        assert summary["no_open_episode"] == len(records) - open_cases
        assert summary["invalid"] == (1 if given == jsonl else 0)
        assert _by_case(_written(spark, output, as_of)) == _by_case(expected)
    assert sorted(p.name for p in output.glob("as_of=*")) == sorted(f"as_of={d.isoformat()}" for d in DATES)
    assert sum(len(_written(spark, output, d)) for d in DATES) > 2_000  # a few thousand cases in all


@pytest.mark.spark
def test_spark_engine_rerun_replaces_only_its_own_date(
    spark: SparkSession, cases: tuple[Path, list[ChildRecord]], bundle: Path, tmp_path: Path
) -> None:
    _, records = cases
    output = tmp_path / "scores"

    def score(count: int, as_of: dt.date) -> None:
        source = tmp_path / f"first-{count}.jsonl"
        write_records_jsonl(records[:count], source)
        assert main(["score", "--engine", "spark", "--input", str(source), "--output", str(output),
                     "--as-of", as_of.isoformat(), "--model", str(bundle)]) == 0  # fmt: skip

    def open_on(count: int, as_of: dt.date) -> int:
        return sum(current_episode(r, as_of) is not None for r in records[:count])

    score(600, DATES[0])
    score(600, DATES[1])
    score(200, DATES[0])
    assert len(_written(spark, output, DATES[0])) == open_on(200, DATES[0]) < open_on(600, DATES[0])
    assert len(_written(spark, output, DATES[1])) == open_on(600, DATES[1]) > 0


@pytest.mark.spark
def test_spark_udf_of_the_registered_model_gives_the_engine_explanations(
    spark: SparkSession, bundle: Path, open_records: list[ChildRecord], tmp_path: Path
) -> None:
    """``mlflow.pyfunc.spark_udf`` of a registered version (a model from code) returns, per case, the probability,
    band, raw score and every feature's exact contribution that the engine's ``assess`` gives."""
    import warnings

    import mlflow
    from pyspark.sql import functions as f

    from features import FEATURE_NAMES, FEATURES
    from models import assess, registry

    model = RiskModel.load(bundle)
    registry.configure_tracking(f"sqlite:///{tmp_path}/mlflow.db", experiment="udf",
                                artifact_location=str(tmp_path / "mlruns"))  # fmt: skip
    with registry.start_run("udf"):
        uri = registry.log_and_register(model).model_uri
    assessed = assess(model, open_records[:60], AS_OF, what_ifs=False).assessments
    rows = [{"la_child_id": a.la_child_id, **a.features} for a in assessed]
    kinds = [f"{s.name} {'string' if s.kind == 'categorical' else 'double'}" for s in FEATURES]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas >= 3", FutureWarning)
        frame = spark.createDataFrame(rows, schema=", ".join(["la_child_id string", *kinds]))
        udf = mlflow.pyfunc.spark_udf(spark, uri, env_manager="local")
        # A type-hinted model takes its rows as one struct column (each row becomes a CaseFeatures).
        features = f.struct(*[frame[name] for name in FEATURE_NAMES])
        scored = frame.select("la_child_id", udf(features).alias("score")).collect()
    served = {r["la_child_id"]: r["score"] for r in scored}
    assert len(served) == len(assessed)
    for a in assessed:
        score = served[a.la_child_id]
        assert (score["probability"], score["band"], score["raw_score"]) == (a.probability, a.band, a.raw_score)
        assert score["base_value"] == a.base_value
        assert [score["contributions"][name] for name in FEATURE_NAMES] == a.contributions.tolist()


@pytest.mark.spark
def test_spark_engine_reads_the_validated_parquet_of_ingest(
    spark: SparkSession,
    cases: tuple[Path, list[ChildRecord]],
    bundle: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, records = cases
    few = records[:400]
    parquet, jsonl = tmp_path / "records.parquet", tmp_path / "records.jsonl"
    write_records_parquet(few, parquet)  # list<struct> columns, as `closure-risk ingest --parquet` writes
    write_records_jsonl(few, jsonl)
    expected = _single_process(parquet, bundle, AS_OF, tmp_path / "single.jsonl")
    assert expected == _single_process(jsonl, bundle, AS_OF, tmp_path / "single-json.jsonl")
    capsys.readouterr()
    output = tmp_path / "scores"
    code = main(["score", "--engine", "spark", "--master", "local[2]", "--input", str(parquet), "--output",
                 str(output), "--as-of", AS_OF.isoformat(), "--model", str(bundle)])  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["scored"], summary["invalid"]) == (len(expected), 0)
    assert _by_case(_written(spark, output, AS_OF)) == _by_case(expected)
