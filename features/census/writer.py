"""Writing a CIN census return: deterministic, byte for byte, in the 2025-26 schema's element order."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final
from xml.sax.saxutils import escape

from features.record import ChildRecord, Episode, record_as_of

__all__ = ["SOFTWARE_CODE", "WRITER_RELEASE", "write_census_return"]


SOFTWARE_CODE: Final = "case-closure-risk"
WRITER_RELEASE: Final = "1"
_XML_INVALID: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_LEA: Final = re.compile(r"\d{3}")
_I5: Final = " " * 10
_I6: Final = " " * 12


def _in_year(episode: Episode, start: dt.date, end: dt.date) -> bool:
    return episode.referral_date <= end and (episode.closure_date is None or episode.closure_date >= start)


def _header(collection_year: int, reference_date: dt.date, lea: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<Message>\n"
        "  <Header>\n"
        "    <CollectionDetails>\n"
        "      <Collection>CIN</Collection>\n"
        f"      <Year>{collection_year}</Year>\n"
        f"      <ReferenceDate>{reference_date.isoformat()}</ReferenceDate>\n"
        "    </CollectionDetails>\n"
        "    <Source>\n"
        "      <SourceLevel>L</SourceLevel>\n"
        f"      <LEA>{lea}</LEA>\n"
        f"      <SoftwareCode>{SOFTWARE_CODE}</SoftwareCode>\n"
        f"      <Release>{WRITER_RELEASE}</Release>\n"
        "      <SerialNo>001</SerialNo>\n"
        f"      <DateTime>{collection_year}-04-01T00:00:00</DateTime>\n"
        "    </Source>\n"
        "  </Header>\n"
        "  <Children>\n"
    )


def _child_xml(record: ChildRecord, episodes: Sequence[Episode]) -> str:
    """One Child element, in schema order; indentation is two spaces per level."""
    out: list[str] = []
    add = out.append
    add("    <Child>\n      <ChildIdentifiers>\n")
    add(f"        <LAchildID>{escape(record.la_child_id)}</LAchildID>\n")
    if record.birth_date is not None:
        add(f"        <PersonBirthDate>{record.birth_date}</PersonBirthDate>\n")
    if record.expected_birth_date is not None:
        add(f"        <ExpectedPersonBirthDate>{record.expected_birth_date}</ExpectedPersonBirthDate>\n")
    add(f"        <Sex>{record.sex.value}</Sex>\n      </ChildIdentifiers>\n")
    add(f"      <ChildCharacteristics>\n        <Ethnicity>{record.ethnicity.value}</Ethnicity>\n")
    if record.disabilities:
        add("        <Disabilities>\n")
        for disability in record.disabilities:
            add(f"          <Disability>{disability.value}</Disability>\n")
        add("        </Disabilities>\n")
    add("      </ChildCharacteristics>\n")
    for e in episodes:
        add(f"      <CINdetails>\n        <CINreferralDate>{e.referral_date}</CINreferralDate>\n")
        add(f"        <ReferralSource>{e.referral_source.value}</ReferralSource>\n")
        if e.primary_need is not None:
            add(f"        <PrimaryNeedCode>{e.primary_need.value}</PrimaryNeedCode>\n")
        if e.closure_date is not None:
            add(f"        <CINclosureDate>{e.closure_date}</CINclosureDate>\n")
        if e.closure_reason is not None:
            add(f"        <ReasonForClosure>{e.closure_reason.value}</ReasonForClosure>\n")
        if e.initial_cpc_date is not None:
            add(f"        <DateOfInitialCPC>{e.initial_cpc_date}</DateOfInitialCPC>\n")
        for a in e.assessments:
            add("        <Assessments>\n")
            add(f"{_I5}<AssessmentActualStartDate>{a.start_date}</AssessmentActualStartDate>\n")
            if a.internal_review_date is not None:
                add(f"{_I5}<AssessmentInternalReviewDate>{a.internal_review_date}</AssessmentInternalReviewDate>\n")
            if a.authorisation_date is not None:
                add(f"{_I5}<AssessmentAuthorisationDate>{a.authorisation_date}</AssessmentAuthorisationDate>\n")
            if a.factors:
                add(f"{_I5}<FactorsIdentifiedAtAssessment>\n")
                for factor in a.factors:
                    add(f"{_I6}<AssessmentFactors>{factor.value}</AssessmentFactors>\n")
                add(f"{_I5}</FactorsIdentifiedAtAssessment>\n")
            add("        </Assessments>\n")
        for p in e.cin_plans:
            add(f"        <CINPlanDates>\n{_I5}<CINPlanStartDate>{p.start_date}</CINPlanStartDate>\n")
            if p.end_date is not None:
                add(f"{_I5}<CINPlanEndDate>{p.end_date}</CINPlanEndDate>\n")
            add("        </CINPlanDates>\n")
        for s in e.section47s:
            add(f"        <Section47>\n{_I5}<S47ActualStartDate>{s.start_date}</S47ActualStartDate>\n")
            if s.icpc_target_date is not None:
                add(f"{_I5}<InitialCPCtarget>{s.icpc_target_date}</InitialCPCtarget>\n")
            if s.icpc_date is not None:
                add(f"{_I5}<DateOfInitialCPC>{s.icpc_date}</DateOfInitialCPC>\n")
            add(f"{_I5}<ICPCnotRequired>{int(s.icpc_not_required)}</ICPCnotRequired>\n        </Section47>\n")
        add(f"        <ReferralNFA>{int(e.referral_nfa)}</ReferralNFA>\n")
        for c in e.protection_plans:
            add(f"        <ChildProtectionPlans>\n{_I5}<CPPstartDate>{c.start_date}</CPPstartDate>\n")
            if c.end_date is not None:
                add(f"{_I5}<CPPendDate>{c.end_date}</CPPendDate>\n")
            add(f"{_I5}<InitialCategoryOfAbuse>{c.initial_category.value}</InitialCategoryOfAbuse>\n")
            add(f"{_I5}<LatestCategoryOfAbuse>{c.latest_category.value}</LatestCategoryOfAbuse>\n")
            add(f"{_I5}<NumberOfPreviousCPP>{c.previous_plans}</NumberOfPreviousCPP>\n")
            if c.review_dates:
                add(f"{_I5}<Reviews>\n")
                for review in c.review_dates:
                    add(f"{_I6}<CPPreviewDate>{review}</CPPreviewDate>\n")
                add(f"{_I5}</Reviews>\n")
            add("        </ChildProtectionPlans>\n")
        add("      </CINdetails>\n")
    add("    </Child>\n")
    return "".join(out)


def write_census_return(records: Iterable[ChildRecord], *, collection_year: int, out: Path, lea: str = "999") -> int:
    """Write the return for collection year Y (1 April Y-1 to 31 March Y); return how many children it holds.

    Every child with an episode open at some point in the year is written as it stood on 31 March Y, with just
    those episodes, in the 2025-26 schema's element order. Extension fields are not census data and are not
    written. The output depends only on the records and arguments, byte for byte. Raises ValueError when no
    child qualifies (the schema requires at least one Child) and leaves ``out`` untouched.
    """
    if not _LEA.fullmatch(lea):
        raise ValueError(f"lea must be a three-digit local authority code, not {lea!r}")
    start, reference_date = dt.date(collection_year - 1, 4, 1), dt.date(collection_year, 3, 31)
    partial = out.with_name(out.name + ".partial")
    written = 0
    try:
        with partial.open("w", encoding="utf-8", newline="\n") as stream:
            stream.write(_header(collection_year, reference_date, lea))
            batch: list[str] = []
            for record in records:
                if not any(_in_year(e, start, reference_date) for e in record.episodes):
                    continue
                if _XML_INVALID.search(record.la_child_id):
                    raise ValueError(f"LAchildID {record.la_child_id!r} holds a character XML cannot carry")
                as_of = record_as_of(record, reference_date)
                assert as_of is not None  # an episode in the year was referred on or before its end
                batch.append(_child_xml(as_of, [e for e in as_of.episodes if _in_year(e, start, reference_date)]))
                written += 1
                if len(batch) >= 1000:
                    stream.write("".join(batch))
                    batch.clear()
            stream.write("".join(batch))
            stream.write("  </Children>\n</Message>\n")
        if written == 0:
            raise ValueError(
                f"no child has an episode open in collection year {collection_year} "
                "(the schema requires at least one Child)"
            )
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return written
