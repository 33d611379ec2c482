"""The paperwork drafted per model version, logged with it: each document holds each field of its list (filled or
marked for the authority), the equality draft holds the ablation, and no route is claimed that does not exist."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import mlflow
import pytest

from cli import build_parser
from models import registry
from training.paperwork import (
    ATRS_FIELDS,
    ATRS_SOURCES,
    DOCUMENTS,
    DPIA_SECTIONS,
    EQUALITY_SECTIONS,
    ROUTES,
    SPECIAL_CATEGORY,
    TO_COMPLETE,
)
from training.pipeline import train
from training.settings import TrainingSettings

OPENAPI = Path(__file__).resolve().parents[1] / "serving" / "openapi.json"


@pytest.fixture(scope="module")
def paperwork(
    tiny_authority: Path, tiny_cohort_policy: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("paperwork")
    settings = TrainingSettings(
        tracking_uri=f"sqlite:///{folder}/mlflow.db", artifact_location=str(folder / "mlruns"), experiment="paperwork",
        bootstrap=60, shap_sample=100, max_calibration_error=1.0, max_group_calibration_error=1.0,
        min_closures=0, min_rereferrals=0,  # the tiny cohort is far below the policy's minimum
        gate_policy_file=tiny_cohort_policy,
    )  # fmt: skip
    report = train(tiny_authority, settings)
    assert report.promoted  # the documents are logged with the champion
    # Found as a reader of the registry would: the champion alias, its registered version, that version's run.
    client = mlflow.MlflowClient()
    champion = client.get_model_version_by_alias(registry.MODEL_NAME, registry.CHAMPION)
    assert (str(champion.version), champion.run_id) == (report.version, report.run_id)
    run_id = str(champion.run_id)
    listed = {Path(a.path).name for a in client.list_artifacts(run_id, "report/paperwork")}
    assert listed == {f"{name}.{ext}" for name in DOCUMENTS for ext in ("md", "pdf")}
    assert len(listed) == 8  # the DPIA, the equality impact draft, the privacy notice and the ATRS record, twice each
    texts = {}
    for name in DOCUMENTS:
        pdf = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=f"report/paperwork/{name}.pdf"))
        assert pdf.read_bytes().startswith(b"%PDF")
        md = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=f"report/paperwork/{name}.md")
        texts[name] = Path(md).read_text(encoding="utf-8")
    return texts


def test_atrs_record_holds_every_tier_1_and_tier_2_field(paperwork: dict[str, str]) -> None:
    text = paperwork["atrs_record"]
    for field_id, _, name in ATRS_FIELDS:
        found = re.search(rf"^\*\*{re.escape(field_id)} {re.escape(name)}\.\*\* (.+)$", text, re.M)
        assert found is not None, f"ATRS field {field_id} {name} is missing"
        assert found.group(1).strip()
    assert text.count(TO_COMPLETE) >= 1  # the authority's own facts are never guessed
    for url in ATRS_SOURCES:  # the record cites the template and the guidance its fields come from
        assert f"<{url}>" in text
    assert "1.1 Name.** Case closure re-referral risk" in text
    assert "Pre-deployment" in text  # a synthetic authority: not in use


def test_dpia_and_equality_drafts_hold_each_section_and_the_ablation(paperwork: dict[str, str]) -> None:
    for section in DPIA_SECTIONS:
        assert f"\n## {section}\n" in paperwork["dpia"], section
    for section in EQUALITY_SECTIONS:
        assert f"\n## {section}\n" in paperwork["equality_impact"], section
    for name in SPECIAL_CATEGORY:
        assert f"(`{name}`)" in paperwork["dpia"]
    assert "trained on a synthetic authority" in paperwork["dpia"]
    ablation = paperwork["equality_impact"].split("## Ablation", 1)[1]
    assert "Not run" not in ablation
    assert re.search(r"\| ROC AUC \| 0\.\d{3} \| 0\.\d{3} \|", ablation)
    assert re.search(r"\| sex \| ", ablation)
    assert "subject access request" in paperwork["privacy_notice"]


def test_no_document_claims_a_route_that_does_not_exist(paperwork: dict[str, str]) -> None:
    (subcommands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    commands = set(subcommands.choices)
    paths = set(json.loads(OPENAPI.read_text())["paths"])
    everything = "\n".join(paperwork.values()) + "\n".join(ROUTES.values())
    for command in re.findall(r"`closure-risk ([a-z-]+)", everything):
        assert command in commands, command
    for path in re.findall(r"`(?:GET|POST|DELETE) (/v1/[^`\s]+)`", everything):
        assert path in paths, path
    asking = [s for s in re.split(r"(?<=[.;])\s", everything) if "can ask" in s.lower()]
    assert all("subject access request" in s for s in asking), asking  # asking names the route that exists


def test_atrs_fields_follow_the_v3_template_numbering() -> None:
    """Tier 1 is one section of four fields; tier 2 has five sections (the tool specification holding the model and
    data specifications), each field numbered once, in the template's order."""
    ids = [field_id for field_id, _, _ in ATRS_FIELDS]
    assert len(ids) == len(set(ids))
    assert [i for i in ids if i.startswith("1.")] == ["1.1", "1.2", "1.3", "1.4"]
    assert {i.split(".")[1] for i in ids if i.startswith("2.")} == {"1", "2", "3", "4", "5"}
    assert [i for i in ids if i.startswith("2.1.4")] == ["2.1.4", *(f"2.1.4.{n}" for n in range(1, 6))]
    assert ids == sorted(ids, key=lambda i: tuple(int(part) for part in i.split(".")))
