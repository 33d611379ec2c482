"""Sample returns published by other teams (partly invalid on purpose): every child is kept or reported."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from features.census import read_census_return
from tests.features.shares import ingest

SAMPLES = {
    # file: (Child elements, children kept, problems by rule)
    # warnings since issue 16: referrals dated after the return's ReferenceDate, and Year vs ReferenceDate
    "d2i_fake_CIN_data.xml": (
        332,
        324,
        {"disability_none_alone": 3, "duplicate_code": 5, "referral_after_reference_date": 8},
    ),
    # its Year (2023) disagrees with its ReferenceDate (2024-03-31): a warning since issue 16
    "d2i_CIN_Census_2024.xml": (
        2,
        0,
        {
            "before_referral": 2,
            "invalid_code": 2,
            "referral_after_reference_date": 1,
            "unexpected_text": 1,
            "year_reference_date_mismatch": 1,
        },
    ),
    "liia_cin-2022.xml": (1, 0, {"after_closure": 2, "before_referral": 5}),
}


def _child_ids(path: Path) -> list[str | None]:
    """LAchildID of every Children/Child element, read independently of the reader under test."""
    document = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False))
    ids: list[str | None] = []
    for child in document.getroot().iterfind("Children/Child"):
        text = (child.findtext("ChildIdentifiers/LAchildID") or "").strip()
        ids.append(text or None)
    return ids


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_ingest_accounts_for_every_child_of_a_sample(shared_reference: Path, name: str) -> None:
    path = shared_reference / "cin-census" / "samples" / name
    elements, kept, rules = SAMPLES[name]
    ids = _child_ids(path)
    result = ingest([path])
    kept_ids = {r.la_child_id for r in result.records}
    reported_ids = {p.la_child_id for p in result.problems if p.is_error}
    assert len(ids) == elements
    assert all(child_id is not None and (child_id in kept_ids) != (child_id in reported_ids) for child_id in ids)
    assert len(result.records) == kept
    assert result.summary()["problems_by_rule"] == rules
    assert all(p.source == name and p.path and p.message for p in result.problems)


def test_read_census_return_reads_sample_headers(shared_reference: Path) -> None:
    samples = shared_reference / "cin-census" / "samples"
    headers = {
        name: (ret.collection_year, str(ret.reference_date))
        for name in SAMPLES
        for ret in [read_census_return(samples / name)]
    }
    assert headers == {
        "d2i_fake_CIN_data.xml": (2022, "2022-07-21"),
        "d2i_CIN_Census_2024.xml": (2023, "2024-03-31"),
        "liia_cin-2022.xml": (2022, "2022-03-31"),
    }


def test_read_census_return_names_the_faults_planted_in_the_2024_sample(shared_reference: Path) -> None:
    ret = read_census_return(shared_reference / "cin-census" / "samples" / "d2i_CIN_Census_2024.xml")
    assert {(p.la_child_id, p.path, p.rule) for p in ret.problems} == {
        (None, "Header/CollectionDetails/Year", "year_reference_date_mismatch"),
        ("DfEX0000001", "Child[1]/ChildIdentifiers", "unexpected_text"),
        ("DfEX0000001", "Child[1]/ChildIdentifiers/Sex", "invalid_code"),
        (
            "DfEX0000001",
            "Child[1]/CINdetails[1]/Assessments[1]/FactorsIdentifiedAtAssessment/AssessmentFactors[2]",
            "invalid_code",
        ),
    }
    assert [c.la_child_id for c in ret.children] == ["child_fails_assessments"]
