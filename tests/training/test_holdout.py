"""The pre-deployment hold-out: exactly the kept-out closures before the deployment date, judged on by every version,
its figures in the card and the run, and a version worse there than the champion refused with the reason printed."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from cli import main
from models import registry
from training import TrainingFrame
from training.holdout import HOLDOUT, holdout_rows
from training.pipeline import fit_and_judge, train
from training.settings import Candidate, SearchSpace, TrainingSettings, get_settings
from training.split import child_group, split_by_time

DEPLOYED = dt.date(2023, 4, 1)  # the start of collection year 2024: the tiny cohort's test year is after it
# Leaves bigger than the data: no split is possible, every case gets the same score (AUC 0.5).
WEAK = SearchSpace(candidates=(Candidate(num_leaves=2, max_depth=1, min_data_in_leaf=10**6),), max_rounds=2)


@pytest.fixture
def settings(tmp_path: Path) -> TrainingSettings:
    # The tiny cohort is far below the policy's minimums; calibration bounds opened as in tests/training/test_pipeline.
    return TrainingSettings(
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", artifact_location=str(tmp_path / "mlruns"),
        experiment="test-holdout", bootstrap=60, shap_sample=100, backtest_years=0, ablation=False,
        paperwork_pdf=False, max_calibration_error=1.0, max_group_calibration_error=1.0, min_closures=0,
        min_rereferrals=0, min_holdout_closures=100,
    )  # fmt: skip


def test_holdout_rows_are_exactly_the_kept_out_closures_before_the_deployment_date(tiny_frame: TrainingFrame) -> None:
    frame = tiny_frame.frame
    rows = holdout_rows(frame, deployed_since=DEPLOYED, seed=7)
    closed = pd.to_datetime(frame["closure_date"])
    kept_out = frame["la_child_id"].map(lambda c: child_group(str(c), seed=7)) == "test"
    expected = frame[(closed < pd.Timestamp(DEPLOYED)) & kept_out]
    assert len(rows) == len(expected) > 100
    assert (pd.to_datetime(rows["closure_date"]) < pd.Timestamp(DEPLOYED)).all()
    key = ["la_child_id", "closure_date"]
    assert sorted(map(tuple, rows[key].astype(str).to_numpy())) == sorted(
        map(tuple, expected[key].astype(str).to_numpy())
    )
    # The closure on the deployment date itself and everything after are not in it, and no row was ever fitted on.
    assert (closed[kept_out] >= pd.Timestamp(DEPLOYED)).any()
    split = split_by_time(frame, data_end=dt.date(2025, 3, 31), seed=7)
    assert set(rows["la_child_id"].astype(str)).isdisjoint(set(split.refit["la_child_id"].astype(str)))
    # A later date holds more; a date before every closure holds none.
    assert len(holdout_rows(frame, deployed_since=dt.date(2024, 4, 1), seed=7)) > len(rows)
    assert holdout_rows(frame, deployed_since=dt.date(2000, 1, 1), seed=7).empty


def test_a_version_worse_than_the_champion_on_the_holdout_is_refused_with_the_reason_printed(
    tiny_authority: Path,
    settings: TrainingSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    first = train(tiny_authority, settings.model_copy(update={"deployed_since": DEPLOYED}))
    assert first.promoted is True, first.reasons
    assert first.holdout is not None
    assert first.holdout["deployed_since"] == "2023-04-01"
    assert first.holdout["passed"] is True
    n = first.holdout["closures"]
    assert any(r.startswith(f"{HOLDOUT} (closures decided before 2023-04-01") and "no champion" in r
               for r in first.reasons)  # fmt: skip

    # The card prints the hold-out's figures, the same as the run's metrics, and says how the policy is enforced.
    card = Path(mlflow.artifacts.download_artifacts(run_id=first.run_id, artifact_path="report/model_card.md"))
    text = card.read_text(encoding="utf-8")
    assert "does not yet enforce" not in text
    assert "**How it is enforced.**" in text
    assert f"closures decided before 2023-04-01: {n} closures" in text
    run = mlflow.MlflowClient().get_run(first.run_id)
    assert run.data.params["deployed_since"] == "2023-04-01"
    metrics = run.data.metrics
    assert metrics["holdout_closures"] == n
    auc = metrics["holdout_roc_auc"]
    assert (
        f"| ROC AUC | {auc:.3f} ({metrics['holdout_roc_auc_low']:.3f} to {metrics['holdout_roc_auc_high']:.3f}) |"
        in text
    )
    assert first.holdout["test"]["roc_auc"] == round(auc, 4)
    assert "Verdict on the hold-out: **passed**" in text

    # A deliberately worse version (one score for every case), trained through the command line with the deployment
    # date given there: the gate refuses it on the hold-out, and the printed summary says why, with the figures.
    for name, value in {"TRACKING_URI": settings.tracking_uri, "ARTIFACT_LOCATION": str(tmp_path / "mlruns"),
                        "EXPERIMENT": "test-holdout", "BOOTSTRAP": "60", "SHAP_SAMPLE": "100", "BACKTEST_YEARS": "0",
                        "ABLATION": "false", "PAPERWORK_PDF": "false", "MAX_CALIBRATION_ERROR": "1.0",
                        "MAX_GROUP_CALIBRATION_ERROR": "1.0", "MIN_CLOSURES": "0", "MIN_REREFERRALS": "0",
                        "MIN_HOLDOUT_CLOSURES": "100", "SEARCH": WEAK.model_dump_json()}.items():  # fmt: skip
        monkeypatch.setenv(f"CCR_{name}", value)
    get_settings.cache_clear()
    capsys.readouterr()  # what the library call above printed
    try:
        assert main(["--quiet", "train", "--data", str(tiny_authority), "--deployed-since", "2023-04-01"]) == 0
    finally:
        get_settings.cache_clear()
    captured = capsys.readouterr()
    printed = json.loads(captured.out.strip().splitlines()[-1])
    # MLflow's own steps (registering, environment notes) are not printed beside the command's summary.
    assert "mlflow" not in captured.err.lower(), captured.err
    assert "registered model" not in captured.err.lower(), captured.err
    assert printed["promoted"] is False
    assert printed["holdout"]["passed"] is False
    assert printed["holdout"]["closures"] == n  # the same closures, judged again
    refusal = [r for r in printed["reasons"] if r.startswith(HOLDOUT) and "worse than the champion beyond chance" in r]
    assert len(refusal) == 1, printed["reasons"]
    versus = printed["holdout"]["versus_champion"]
    assert versus["difference_high"] < 0
    assert f"vs champion {versus['champion_auc']:.4f} on the same closures" in refusal[0]
    assert registry.champion_version() == "1"
    card = Path(mlflow.artifacts.download_artifacts(run_id=printed["run_id"], artifact_path="report/model_card.md"))
    text = card.read_text(encoding="utf-8")
    assert "Verdict on the hold-out: **refused**" in text
    assert refusal[0] in text


def test_no_version_is_judged_on_data_after_deployment_alone(tiny_authority: Path, settings: TrainingSettings) -> None:
    """A deployment date before every closure leaves no hold-out: the version is refused, not judged on later data."""
    run = fit_and_judge(tiny_authority, settings.model_copy(update={"deployed_since": dt.date(2010, 4, 1),
                                                                     "search": WEAK}))  # fmt: skip
    assert run.holdout is not None
    assert run.holdout.n == 0
    assert run.decision.promote is False
    (reason,) = [r for r in run.decision.reasons if r.startswith(HOLDOUT)]
    assert "too few to judge a version on" in reason
    assert "data after deployment would be the only data it is judged on" in reason
