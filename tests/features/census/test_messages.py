"""Messages in the census's own words: element names, 1-based paths, the allowed codes, both episodes of an overlap."""

from __future__ import annotations

from pathlib import Path

from features.census import census_words
from tests.features.shares import ingest
from tests.strategies import census_xml, child_xml, episode_xml


def test_census_words_names_fields_by_their_elements_counted_from_one() -> None:
    loc = ("episodes", 0, "assessments", 0, "start_date")
    message = "assessments[0].start_date (2023-04-20) is before referral_date (2023-05-01)"
    assert census_words(message, ("episodes", 0, "assessments")) == (
        "Assessments[1]/AssessmentActualStartDate (2023-04-20) is before CINreferralDate (2023-05-01)"
    )
    assert census_words("authorisation_date (x) is before start_date (y)", loc) == (
        "AssessmentAuthorisationDate (x) is before AssessmentActualStartDate (y)"
    )
    assert census_words("referral_nfa is true but the episode has section47s", ("episodes", 0, "section47s")) == (
        "ReferralNFA is true but the episode has Section47"
    )
    assert census_words("a factor is listed more than once", loc) == "a factor is listed more than once"


def test_ingest_messages_use_element_names(tmp_path: Path) -> None:
    modules = "<Assessments><AssessmentActualStartDate>2023-04-20</AssessmentActualStartDate></Assessments>"
    path = tmp_path / "cin.xml"
    path.write_text(census_xml(child_xml("C1", episode_xml("2023-05-01", modules=modules))), encoding="utf-8")
    [problem] = ingest([path]).problems
    assert problem.path == "Child[1]/CINdetails[1]/Assessments[1]/AssessmentActualStartDate"
    assert problem.message == (
        "Assessments[1]/AssessmentActualStartDate (2023-04-20) is before CINreferralDate (2023-05-01)"
    )


def test_a_code_error_lists_the_allowed_codes(tmp_path: Path) -> None:
    path = tmp_path / "cin.xml"
    path.write_text(census_xml(child_xml("C1", sex="<Sex>X</Sex>")), encoding="utf-8")
    [problem] = ingest([path]).problems
    assert problem.message == "Sex: 'X' is not one of the Sex codes: M, F, U"


def test_an_overlap_names_both_episodes_by_referral_date_and_return(tmp_path: Path) -> None:
    first, second = tmp_path / "cin_2024.xml", tmp_path / "cin_2025.xml"
    first.write_text(census_xml(child_xml("C1", episode_xml("2023-05-01", closure="2024-02-01", reason="RC7")),
                                year=2024), encoding="utf-8")  # fmt: skip
    overlapping = episode_xml("2023-12-01", closure="2024-06-01", reason="RC7")
    second.write_text(census_xml(child_xml("C1", overlapping), year=2025), encoding="utf-8")
    [problem] = ingest([first, second]).problems
    assert problem.rule == "episodes_overlap"
    assert problem.message == (
        "the episode referred 2023-12-01 (cin_2025.xml, Child[1]/CINdetails[1]) begins inside the episode referred "
        "2023-05-01 (cin_2024.xml, Child[1]/CINdetails[1]), which closed 2024-02-01"
    )
