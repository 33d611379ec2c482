"""Batch scoring on Spark (``closure-risk score --engine spark``): each executor runs ``models.assess``."""

from __future__ import annotations

import atexit
import datetime as dt
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from batch.records import parse_records
from models import BATCH_FIELDS, Assessment, RiskModel, assess

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = [
    "DEFAULT_MASTER",
    "INVALID",
    "MINIMUM_JAVA",
    "NO_OPEN_EPISODE",
    "OUTPUT_COLUMNS",
    "OUTPUT_SCHEMA",
    "SCORED",
    "SparkUnavailableError",
    "input_format",
    "require_java",
    "require_pyspark",
    "score_texts",
    "score_with_spark",
    "spark_session",
]

DEFAULT_MASTER = "local[*]"
MINIMUM_JAVA = 17
_PACKAGES = Path(__file__).resolve().parents[1]

REASON_TYPE = "struct<feature:string,label:string,value:double,category:string,contribution:double,direction:string>"
# What the job writes (``as_of`` becomes the partition folder): the single-process scorer's fields, with each
# reason's value split by type, since a Parquet column has one (``value`` for numbers, ``category`` for categories).
_SPARK_TYPES = {
    "la_child_id": "string",
    "episode_referral_date": "date",
    "as_of": "date",
    "model_version": "string",
    "probability": "double",
    "band": "string",
    "in_scope": "boolean",
    "out_of_distribution": "array<string>",
    "raw_score": "double",
    "base_value": "double",
    "reasons": f"array<{REASON_TYPE}>",
    "warnings": "array<string>",
}
OUTPUT_COLUMNS = tuple((name, _SPARK_TYPES[name]) for name in BATCH_FIELDS)
# Every input record leaves one row: scored, or why not (``status``); ``problem`` holds a bad record's errors.
_BATCH_COLUMNS = (*OUTPUT_COLUMNS, ("status", "string"), ("problem", "string"))
OUTPUT_SCHEMA = ", ".join(f"{name} {kind}" for name, kind in OUTPUT_COLUMNS)
_BATCH_SCHEMA = ", ".join(f"{name} {kind}" for name, kind in _BATCH_COLUMNS)
_PANDAS_3_WARNING = "PySpark does not yet fully support pandas >= 3"
SCORED, INVALID, NO_OPEN_EPISODE = "scored", "invalid", "no_open_episode"


class SparkUnavailableError(RuntimeError):
    """The Spark engine cannot start here: the message says what to install."""


def require_pyspark() -> None:
    import importlib.util

    if importlib.util.find_spec("pyspark") is None:
        raise SparkUnavailableError(
            "pyspark is not installed: install the optional extra (make install-spark, or pip install '.[spark]')"
        )


def require_java(minimum: int = MINIMUM_JAVA) -> int:
    """The major version of the Java that Spark will start (``JAVA_HOME``, else ``java`` on PATH); at least 17."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    where = f"JAVA_HOME={java_home}" if java_home else "PATH"
    install = f"install Java {minimum} or later (Debian: apt-get install openjdk-{minimum}-jre-headless)"
    if java is None or not Path(java).is_file():
        raise SparkUnavailableError(f"Spark needs Java and there is none on {where}: {install}")
    try:
        shown = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=120, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        raise SparkUnavailableError(f"{java} -version failed ({exc}): {install}") from None
    found = re.search(r'version "(\d+)(?:\.(\d+))?', shown.stderr + shown.stdout)
    if found is None:
        raise SparkUnavailableError(f"{java} -version printed no version: {install}")
    major = int(found.group(1))
    if major == 1 and found.group(2):  # "1.8.0_392" is Java 8
        major = int(found.group(2))
    if major < minimum:
        raise SparkUnavailableError(f"Spark 4 needs Java {minimum} or later; {java} is Java {major}: {install}")
    return major


def spark_session(master: str | None = None, conf: dict[str, str] | None = None) -> tuple[SparkSession, bool]:
    """The Spark session to run on, and whether it was started here (so the caller stops it).

    An active session (a Databricks job, a test) is used as it is. Under ``spark-submit`` the master is the one
    it was given; elsewhere it is ``master``, by default ``local[*]``, where the executors run this Python.
    """
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    if SparkContext._active_spark_context is not None:  # pyspark's own "is one running" check
        return SparkSession.builder.getOrCreate(), False
    require_java()
    chosen = master or (None if "PYSPARK_GATEWAY_PORT" in os.environ else DEFAULT_MASTER)
    builder = SparkSession.builder.appName("closure-risk score")
    if chosen is not None:
        builder = builder.master(chosen)
        if chosen.startswith("local"):
            # Local executors are processes of this machine: they run this interpreter, with its packages.
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = builder.config("spark.ui.showConsoleProgress", "false")
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _PANDAS_3_WARNING, FutureWarning)  # see score_with_spark
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark, True


def input_format(path: str) -> str:
    """``parquet`` for a ``.parquet`` file or folder (or a folder of Parquet files), else ``jsonl``."""
    if path.rstrip("/").endswith(".parquet"):
        return "parquet"
    local = Path(path)
    if local.is_dir() and any(local.glob("*.parquet")):
        return "parquet"
    return "jsonl"


# --- executor side: plain pandas, no Spark ------------------------------------------------------------------------


def _reason_row(reason: dict[str, Any]) -> dict[str, object]:
    value = reason["value"]
    return {
        "feature": reason["feature"],
        "label": reason["label"],
        "value": value if isinstance(value, float) else None,
        "category": value if isinstance(value, str) else None,
        "contribution": reason["contribution"],
        "direction": reason["direction"],
    }


def _scored_row(assessment: Assessment, *, top: int | None) -> dict[str, object]:
    row = assessment.to_row(top=top, fields=BATCH_FIELDS)
    return {**row, "reasons": [_reason_row(r) for r in row["reasons"]], "status": SCORED, "problem": None}


def _status_row(status: str, problem: str | None = None) -> dict[str, object]:
    return {"status": status, "problem": problem, "out_of_distribution": [], "reasons": [], "warnings": []}


def score_texts(model: RiskModel, texts: Sequence[str], *, as_of: dt.date, top: int | None) -> pd.DataFrame:
    """Validate, assess and explain one batch of JSON records: one row per record (``_BATCH_SCHEMA``)."""
    records, invalid = parse_records(texts)
    rows = [_status_row(INVALID, json.dumps(bad.errors)) for bad in invalid]
    assessed = assess(model, records, as_of, what_ifs=False)
    rows.extend(_scored_row(a, top=top) for a in assessed.assessments)
    rows.extend(_status_row(NO_OPEN_EPISODE) for _ in assessed.not_open)
    return pd.DataFrame(rows, columns=[name for name, _ in _BATCH_COLUMNS])


_LOADED: dict[str, RiskModel] = {}  # bundle name -> model, once per Python worker (Spark reuses workers)


def _score_partition(batches: Iterator[pd.DataFrame], *, bundle: str, as_of: dt.date, top: int | None
                     ) -> Iterator[pd.DataFrame]:  # fmt: skip
    from pyspark import SparkFiles

    if bundle not in _LOADED:
        _LOADED[bundle] = RiskModel.load(Path(SparkFiles.get(bundle)))
    model = _LOADED[bundle]
    for batch in batches:
        yield score_texts(model, batch["value"].tolist(), as_of=as_of, top=top)


# --- driver side ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SparkScoreSummary:
    output: str
    model_version: str
    as_of: dt.date
    scored: int
    no_open_episode: int
    invalid: int
    invalid_examples: list[list[dict[str, str]]]
    partitions: int
    master: str


def _code_archive(folder: Path) -> Path:
    """This project's executor code (``features``, ``models`` and ``batch``) as one zip for ``addPyFile``."""
    archive = folder / "closure_risk_code.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for package in ("features", "models", "batch"):
            for source in sorted((_PACKAGES / package).rglob("*.py")):
                out.write(source, source.relative_to(_PACKAGES).as_posix())
    return archive


_SHIPPED_CODE: set[str] = set()  # application ids whose executors have this project's code


def _staging() -> Path:
    """A folder for the files shipped to executors, kept until this process ends: executors that join a running
    application later (dynamic allocation) fetch them from the driver then."""
    folder = Path(tempfile.mkdtemp(prefix="ccr-spark-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _read_records(spark: SparkSession, path: str, fmt: str) -> DataFrame:
    """One string column ``value``: each record as JSON, whatever the input format."""
    from pyspark.sql import functions as f

    if fmt == "jsonl":
        text = spark.read.text(path)
        return text.where(f.trim(text["value"]) != "")
    records = spark.read.parquet(path)
    return records.select(f.to_json(f.struct(*[records[c] for c in records.columns])).alias("value"))


def score_with_spark(spark: SparkSession, *, input_path: str, output: str, model: RiskModel, as_of: dt.date,
                     top: int | None = 5, fmt: str | None = None) -> SparkScoreSummary:  # fmt: skip
    """Score every record of ``input_path`` as of ``as_of``; write Parquet to ``output``, partition ``as_of=DATE``.

    Re-running a date replaces that date's partition only (dynamic partition overwrite); other dates are kept.

    Spark reads the case records (JSON lines, or Parquet of records) and spreads them over its executors; each executor
    assesses its share with the same ``models.assess`` as every other path inside ``mapInPandas`` and writes
    ``Assessment.to_row``'s batch fields. (The registered pyfunc model, through ``mlflow.pyfunc.spark_udf``, returns
    probabilities but not explanations.) The driver resolves the model (registry alias, version or folder) once, ships
    the bundle's files with ``SparkContext.addFile`` and this project's ``features``, ``models`` and ``batch`` code with
    ``addPyFile``, so executors need only the third-party packages and never reach the registry. Scores are written as
    Parquet, partitioned by the date they were scored as of.

    pyspark is an optional extra (``pip install '.[spark]'``, ``make install-spark``); nothing here imports it until a
    job starts, and the executor side imports only ``features``, ``models``, ``batch``, pandas and pydantic.
    """
    from pyspark import StorageLevel

    context = spark.sparkContext
    staging = _staging()
    bundle = f"bundle-{staging.name}"  # unique per job: executors cache models by this name
    model.save(staging / bundle)
    context.addFile(str(staging / bundle), recursive=True)
    if context.applicationId not in _SHIPPED_CODE:
        context.addPyFile(str(_code_archive(staging)))
        _SHIPPED_CODE.add(context.applicationId)

    records = _read_records(spark, input_path, fmt or input_format(input_path))
    if records.rdd.getNumPartitions() < context.defaultParallelism:
        records = records.repartition(context.defaultParallelism)
    job = functools.partial(_score_partition, bundle=bundle, as_of=as_of, top=top)
    with warnings.catch_warnings():
        # pyspark 4.3 warns that it does not fully support pandas 3; this job's types (strings, doubles, dates,
        # arrays of structs) round-trip exactly, as the equality test checks.
        warnings.filterwarnings("ignore", _PANDAS_3_WARNING, FutureWarning)
        rows = records.mapInPandas(job, _BATCH_SCHEMA).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        scored = rows.where(rows["status"] == SCORED).select(*[name for name, _ in OUTPUT_COLUMNS])
        writer = scored.write.mode("overwrite").option("partitionOverwriteMode", "dynamic")
        writer.partitionBy("as_of").parquet(output)
        counts = {str(r["status"]): int(r["count"]) for r in rows.groupBy("status").count().collect()}
        invalid = (
            rows.where(rows["status"] == INVALID).select("problem").limit(20).collect() if counts.get(INVALID) else []
        )
    finally:
        rows.unpersist()
    return SparkScoreSummary(
        output=output,
        model_version=model.version,
        as_of=as_of,
        scored=counts.get(SCORED, 0),
        no_open_episode=counts.get(NO_OPEN_EPISODE, 0),
        invalid=counts.get(INVALID, 0),
        invalid_examples=[json.loads(r["problem"]) for r in invalid],
        partitions=records.rdd.getNumPartitions(),
        master=str(context.master),
    )
