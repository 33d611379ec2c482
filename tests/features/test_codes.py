"""The census code lists against the specification's own list in ../shared."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

import pytest

from features.codes import (
    AbuseCategory,
    AssessmentFactor,
    ClosureReason,
    Disability,
    EthnicGroup,
    Ethnicity,
    PrimaryNeed,
    ReferralSource,
    Sex,
    ethnic_group,
    sex_from_gender_current,
)

CODE_LISTS: dict[str, type[StrEnum]] = {
    "sextype": Sex,
    "ethnicitytype": Ethnicity,
    "disabilitytype": Disability,
    "referralsourcetype": ReferralSource,
    "primaryneedcodetype": PrimaryNeed,
    "reasonforclosuretype": ClosureReason,
    "assessmentfactorstype": AssessmentFactor,
    "categoryofabusetype": AbuseCategory,
}


@pytest.mark.parametrize("year", ["2025", "2026"])
@pytest.mark.parametrize("type_name", sorted(CODE_LISTS))
def test_code_list_matches_the_census_specification(shared_reference: Path, year: str, type_name: str) -> None:
    spec = json.loads((shared_reference / "cin-census" / "codes_2025_2026.json").read_text(encoding="utf-8"))
    enum = CODE_LISTS[type_name]
    assert [m.value for m in enum] == list(spec[year][type_name])


def test_code_list_labels_are_the_specifications_wording(shared_reference: Path) -> None:
    spec = json.loads((shared_reference / "cin-census" / "codes_2025_2026.json").read_text(encoding="utf-8"))
    factors = spec["2026"]["assessmentfactorstype"]
    assert all(AssessmentFactor(code).label == label for code, label in factors.items())


@pytest.mark.parametrize(("code", "sex"), [("1", Sex.M), ("2", Sex.F), ("0", Sex.U), ("9", Sex.U), (" 2 ", Sex.F)])
def test_sex_from_gender_current_maps_pre_2025_codes(code: str, sex: Sex) -> None:
    assert sex_from_gender_current(code) is sex


def test_sex_from_gender_current_rejects_other_codes() -> None:
    with pytest.raises(KeyError):
        sex_from_gender_current("M")


@pytest.mark.parametrize(
    ("code", "group"),
    [
        (Ethnicity.WBRI, EthnicGroup.WHITE),
        (Ethnicity.WROM, EthnicGroup.WHITE),
        (Ethnicity.MWBC, EthnicGroup.MIXED),
        (Ethnicity.APKN, EthnicGroup.ASIAN),
        (Ethnicity.BAFR, EthnicGroup.BLACK),
        (Ethnicity.CHNE, EthnicGroup.OTHER),
        (Ethnicity.OOTH, EthnicGroup.OTHER),
        (Ethnicity.REFU, EthnicGroup.UNKNOWN),
        (Ethnicity.NOBT, EthnicGroup.UNKNOWN),
    ],
)
def test_ethnic_group_maps_every_code_to_its_census_group(code: Ethnicity, group: EthnicGroup) -> None:
    assert ethnic_group(code) is group
