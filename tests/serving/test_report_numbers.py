"""Every number as a manager reads it, through the real app: the waterfall on the probability scale end to end,
"none" beside "not recorded", rounded bounds, and a 422 that names the field without echoing the record."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from features import ChildRecord, Role
from features.numbers import percent
from serving.app import create_app
from serving.report import build_report, format_value
from serving.settings import ServingSettings

AS_OF = dt.date(2025, 3, 31)


@pytest.fixture(scope="module")
def client(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    folder = tmp_path_factory.mktemp("report-numbers")
    settings = ServingSettings(
        model_uri=str(bundle),
        database_url=f"sqlite:///{folder}/audit.db",
        pseudonym_key_file=str(folder / "pseudonym.key"),
    )
    with TestClient(create_app(settings), base_url="https://testserver", follow_redirects=False) as test_client:
        yield test_client


def _post(client: TestClient, cases: list[dict[str, Any]]) -> Any:
    store = client.app.state.store  # type: ignore[attr-defined]
    key = store.create_key(name=f"system-{len(store.list_keys())}", role=Role.SYSTEM)[0]
    return client.post("/v1/score/batch", json={"cases": cases}, headers={"Authorization": f"Bearer {key}"})


def _case(record: ChildRecord) -> dict[str, Any]:
    return {"record": json.loads(record.model_dump_json(exclude_none=True)), "as_of": AS_OF.isoformat()}


def test_waterfall_runs_on_the_probability_scale_from_the_average_case_to_this_case(
    client: TestClient, open_records: list[ChildRecord]
) -> None:
    response = _post(client, [_case(r) for r in open_records[:15]])
    assert response.status_code == 200, response.text
    store = client.app.state.store  # type: ignore[attr-defined]
    model = client.app.state.models.model  # type: ignore[attr-defined]
    for answer in response.json()["scores"]:
        row = store.get_score(answer["score_id"])
        chart = build_report(row, [], model).chart
        assert chart.calibrated
        ends = []
        for bar in chart.bars:  # each bar starts where the one before it ended
            start, end = (bar.x, bar.x + bar.width) if bar.direction == "raises" else (bar.x + bar.width, bar.x)
            ends.append((start, end))
        for (_, before), (after, _) in itertools.pairwise(ends):
            assert after == pytest.approx(before, abs=1.6)  # a bar is drawn at least 1.5 units wide
        assert ends[0][0] == pytest.approx(chart.base_x, abs=1.6)
        assert ends[-1][1] == pytest.approx(chart.final_x, abs=1.6)
        base = float(model.calibrator.apply(np.array([row.base_value]))[0])
        assert chart.base_label == f"average case {percent(base)}"
        assert chart.final_label == f"this case {percent(row.probability)}"
        report = client.get(
            f"/v1/scores/{row.id}/report",
            headers={"Authorization": f"Bearer {store.create_key(name=f'm-{row.id}', role=Role.MANAGER)[0]}"},
        ).text
        caption = report.split("<figcaption")[1].split("</figcaption>")[0]
        assert "log-odds" not in caption
        assert "log-odds" not in report.split('id="h-why"')[1].split("<details")[0]  # only the figures table has it


def test_a_missing_value_reads_none_unless_the_case_file_did_not_record_it() -> None:
    recorded = {"visits_90d": 0.0, "days_since_visit": None, "plan_reviews": None, "goals_met_share": None}
    assert format_value("days_since_visit", None, recorded) == "none"  # visits recorded, none yet
    assert format_value("goals_met_share", None, recorded) == "not recorded"  # no plan reviews sent at all
    assert format_value("days_since_last_closure", None, recorded) == "none: no earlier episode"
    assert format_value("goals_met_share", 0.745, recorded) == "75%"


def test_out_of_distribution_reasons_show_rounded_bounds(client: TestClient, open_records: list[ChildRecord]) -> None:
    # A case open for ten years: its days open lie far above those of any closed case.
    old = next(r for r in open_records if len(r.episodes) == 1 and r.birth_date and (AS_OF - r.birth_date).days > 4000)
    assert old.birth_date is not None
    shifted = old.episodes[0].model_copy(update={"referral_date": old.birth_date + dt.timedelta(days=10)})
    record = old.model_copy(update={"episodes": [shifted]})
    response = _post(client, [{"record": json.loads(record.model_dump_json(exclude_none=True)), "as_of": str(AS_OF)}])
    assert response.status_code == 200, response.text
    reasons = response.json()["scores"][0]["out_of_distribution_reasons"]
    ranges = [reason for reason in reasons if "range of 99% of closed cases" in reason]
    assert any(reason.startswith("Days since this referral: ") for reason in ranges), reasons
    for reason in reasons:
        assert not re.search(r"\d\.\d{3,}", reason), reason  # never "0.205339 to 16.8843"


def test_a_future_referral_date_is_one_error_naming_the_field_without_the_record(
    client: TestClient, open_records: list[ChildRecord]
) -> None:
    record = next(r for r in open_records if r.episodes[-1].assessments)
    body = json.loads(record.model_dump_json(exclude_none=True))
    body["episodes"][-1]["referral_date"] = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    response = _post(client, [{"record": body, "as_of": AS_OF.isoformat()}])
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert [(e["loc"][-1], e["type"]) for e in errors] == [("referral_date", "referral_in_future")]
    text = response.text
    assert not re.search(r"\d{4}-\d{2}-\d{2}", text)  # no date of the record, not even the wrong one
    assert record.la_child_id not in text
    assert "input" not in errors[0]


def test_422_from_the_records_own_rules_names_field_and_rule_without_its_dates(
    client: TestClient, open_records: list[ChildRecord]
) -> None:
    record = next(r for r in open_records if r.episodes[-1].assessments)
    body = json.loads(record.model_dump_json(exclude_none=True))
    body["episodes"][-1]["assessments"][0]["start_date"] = "1999-01-01"
    response = _post(client, [{"record": body, "as_of": AS_OF.isoformat()}])
    assert response.status_code == 422
    (error,) = [e for e in response.json()["detail"] if e["type"] == "before_referral"]
    assert error["loc"][-3:] == ["assessments", 0, "start_date"]
    assert "is before referral_date" in error["msg"]
    assert not re.search(r"\d{4}-\d{2}-\d{2}", response.text)
    assert "ctx" not in error
