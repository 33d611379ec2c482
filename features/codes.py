"""Census code lists as enums, from the DfE CIN census specification 2025-26.

Each member's value is the census code; ``.label`` is the specification's wording. The codes are checked
against ``shared/reference/cin-census/codes_2025_2026.json`` by a test.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self

__all__ = [
    "NEGLECT_FACTOR",
    "AbuseCategory",
    "AssessmentFactor",
    "ClosureReason",
    "Disability",
    "EthnicGroup",
    "Ethnicity",
    "PrimaryNeed",
    "ReferralSource",
    "Sex",
    "ethnic_group",
    "sex_from_gender_current",
]


class _CodeList(StrEnum):
    """A census code with its label; compares and serialises as the code itself."""

    label: str

    def __new__(cls, code: str, label: str) -> Self:
        member = str.__new__(cls, code)
        member._value_ = code
        member.label = label
        return member


class Sex(_CodeList):
    M = "M", "male"
    F = "F", "female"
    U = "U", "unknown"


class Ethnicity(_CodeList):
    WBRI = "WBRI", "White British"
    WIRI = "WIRI", "White Irish"
    WIRT = "WIRT", "Traveller of Irish heritage"
    WOTH = "WOTH", "Any other White background"
    WROM = "WROM", "Gypsy/Roma"
    MWBC = "MWBC", "White and Black Caribbean"
    MWBA = "MWBA", "White and Black African"
    MWAS = "MWAS", "White and Asian"
    MOTH = "MOTH", "Any other mixed background"
    AIND = "AIND", "Indian"
    APKN = "APKN", "Pakistani"
    ABAN = "ABAN", "Bangladeshi"
    AOTH = "AOTH", "Any other Asian background"
    BCRB = "BCRB", "Caribbean"
    BAFR = "BAFR", "African"
    BOTH = "BOTH", "Any other black background"
    CHNE = "CHNE", "Chinese"
    OOTH = "OOTH", "Any other ethnic group"
    REFU = "REFU", "Refused"
    NOBT = "NOBT", "Information not yet obtained"


class Disability(_CodeList):
    NONE = "NONE", "No disability"
    MOB = "MOB", "Mobility"
    HAND = "HAND", "Hand function"
    PC = "PC", "Personal care"
    INC = "INC", "Incontinence"
    COMM = "COMM", "Communication"
    LD = "LD", "Learning"
    HEAR = "HEAR", "Hearing"
    VIS = "VIS", "Vision"
    BEH = "BEH", "Behaviour"
    CON = "CON", "Consciousness"
    AUT = "AUT", "Autism"
    DDA = "DDA", "Other"


class ReferralSource(_CodeList):
    S1A = "1A", "INDIVIDUAL – family member, relative or carer"
    S1B = "1B", "INDIVIDUAL – acquaintance (including neighbours and child minders)"
    S1C = "1C", "INDIVIDUAL – self"
    S1D = "1D", "INDIVIDUAL – other (including strangers)"
    S2A = "2A", "SCHOOLS"
    S2B = "2B", "EDUCATION SERVICES"
    S3A = "3A", "HEALTH SERVICES – general practitioner (GP)"
    S3B = "3B", "HEALTH SERVICES – health visitor"
    S3C = "3C", "HEALTH SERVICES – school nurse"
    S3D = "3D", "HEALTH SERVICES – other primary health services"
    S3E = "3E", "HEALTH SERVICES – A&E (accident and emergency department)"
    S3F = "3F", "HEALTH SERVICES – other (for example hospice)"
    S4 = "4", "HOUSING - local authority housing or housing association"
    S5A = "5A", "LA SERVICES – social care for example adults social care services"
    S5B = (
        "5B",
        "LA SERVICES – other internal (department other than social care in local authorities, for example, youth offending (excluding housing))",
    )
    S5C = (
        "5C",
        "LA SERVICES – external, for example, from another local authority’s adults social care services",
    )
    S5D = "5D", "LA SERVICES – early help"
    S6 = "6", "POLICE"
    S7 = (
        "7",
        "OTHER LEGAL AGENCY – including courts, probation, immigration, CAFCASS (Children and Family Court Advisory and Support Service) or prison",
    )
    S8 = "8", "OTHER – including children’s centres, independent agency providers or voluntary organisations"
    S9 = "9", "ANONYMOUS"
    S10 = "10", "UNKNOWN"


class PrimaryNeed(_CodeList):
    N1 = "N1", "Abuse, neglect and exploitation"
    N2 = "N2", "Child's disability"
    N3 = "N3", "Parental disability or illness"
    N4 = "N4", "Family in acute stress"
    N5 = "N5", "Family dysfunction"
    N6 = "N6", "Socially unacceptable behaviour"
    N7 = "N7", "Low income"
    N8 = "N8", "Absent parenting"
    N9 = "N9", "Cases other than children in need"
    N0 = "N0", "Not stated"


class ClosureReason(_CodeList):
    RC1 = "RC1", "Adopted"
    RC2 = "RC2", "Died"
    RC3 = "RC3", "Child arrangements order"
    RC4 = "RC4", "Special guardianship order"
    RC5 = "RC5", "Transferred to services of another local authority"
    RC6 = "RC6", "Transferred to adult social care services"
    RC7 = "RC7", "Services ceased for any other reason, including child no longer in need"
    RC8 = "RC8", "Case closed after assessment, no further action"
    RC9 = "RC9", "Case closed after assessment, referred to early help"


class AssessmentFactor(_CodeList):
    F1A = "1A", "Alcohol misuse: concerns about alcohol misuse by the child"
    F1B = "1B", "Alcohol misuse: concerns about alcohol misuse by the parent(s)/carer(s)"
    F1C = "1C", "Alcohol misuse: concerns about alcohol misuse by another person living in the household"
    F2A = "2A", "Drug misuse: concerns about drug misuse by the child"
    F2B = "2B", "Drug misuse: concerns about drug misuse by the parent(s)/carer(s)"
    F2C = "2C", "Drug misuse: concerns about drug misuse by another person living in the household"
    F3A = "3A", "Domestic violence: concerns about the child being the subject of domestic violence"
    F3B = (
        "3B",
        "Domestic violence: concerns about the child’s parent(s)/carer(s) being the subject of domestic violence",
    )
    F3C = (
        "3C",
        "Domestic violence: concerns about another person living in the household being the subject of domestic violence",
    )
    F4A = "4A", "Mental health: concerns about the mental health of the child"
    F4B = "4B", "Mental health: concerns about the mental health of the parent(s)/carer(s)"
    F4C = "4C", "Mental health: concerns about the mental health of another person in the family/household"
    F5A = "5A", "Learning disability: concerns about the child’s learning disability"
    F5B = "5B", "Learning disability: concerns about the parent(s)/carer(s) learning disability"
    F5C = (
        "5C",
        "Learning disability: concerns about another person in the family/household’s learning disability",
    )
    F6A = "6A", "Physical disability or illness: concerns about a physical disability or illness of the child"
    F6B = (
        "6B",
        "Physical disability or illness: concerns about a physical disability or illness of the parent(s)/carer(s)",
    )
    F6C = (
        "6C",
        "Physical disability or illness: concerns about a physical disability or illness of another person in the family/household",
    )
    F7A = (
        "7A",
        "Young carer: concerns that services may be required or the child’s health or development may be impaired due to their caring responsibilities",
    )
    F8B = (
        "8B",
        "Privately fostered: concerns that services may be required or the child may be at risk as a privately fostered child - overseas children who intend to return",
    )
    F8C = (
        "8C",
        "Privately fostered: concerns that services may be required or the child may be at risk as a privately fostered child - overseas children who intend to stay",
    )
    F8D = (
        "8D",
        "Privately fostered: concerns that services may be required or the child may be at risk as a privately fostered child - UK children in educational placements",
    )
    F8E = (
        "8E",
        "Privately fostered: concerns that services may be required or the child may be at risk as a privately fostered child - UK children making alternative family arrangements",
    )
    F8F = (
        "8F",
        "Privately fostered: concerns that services may be required or the child may be at risk as a privately fostered child - other",
    )
    F9A = (
        "9A",
        "UASC: concerns that services may be required or the child may be at risk of harm as an unaccompanied asylum-seeking child",
    )
    F10A = (
        "10A",
        "Missing: concerns that services may be required or the child may be at risk of harm due to going/being missing",
    )
    F11A = (
        "11A",
        "Child sexual exploitation: concerns that services may be required or the child may be at risk of harm due to child sexual exploitation",
    )
    F12A = (
        "12A",
        "Trafficking: concerns that services may be required or the child may be at risk of harm due to trafficking",
    )
    F13A = (
        "13A",
        "Gangs: concerns that services may be required or the child may be at risk of harm because of involvement in/with gangs",
    )
    F14A = (
        "14A",
        "Socially unacceptable behaviour: concerns that services may be required or the child may be at risk due to their socially unacceptable behaviour",
    )
    F15A = (
        "15A",
        "Self-harm: concerns that services may be required or due to suspected/actual self-harming child may be at risk of harm",
    )
    F16A = (
        "16A",
        "Abuse or neglect – ‘NEGLECT’: concerns that services may be required or the child may be suffering or likely to suffer significant harm due to abuse or neglect",
    )
    F17A = (
        "17A",
        "Abuse or neglect – ‘EMOTIONAL ABUSE’: concerns that services may be required or the child may be suffering or likely to suffer significant harm due to abuse or neglect",
    )
    F18A = (
        "18A",
        "Abuse or neglect – ‘PHYSICAL ABUSE’: concerns that services may be required or the child may be suffering or likely to suffer significant harm due to abuse or neglect.",
    )
    F18B = (
        "18B",
        "Abuse or neglect – ‘PHYSICAL ABUSE’ (child on child): concerns that services may be required or the child may be suffering or likely to suffer significant harm due to abuse or neglect by another child",
    )
    F18C = (
        "18C",
        "Abuse or neglect – ‘PHYSICAL ABUSE’ (adult on child): concerns that services may be required or the child may be suffering or likely to suffer significant harm due to abuse or neglect by an adult",
    )
    F19A = (
        "19A",
        "Abuse or neglect – ‘SEXUAL ABUSE’: concerns that services may be required or the child may be suffering or likely to suffer significant harm due to abuse or neglect.",
    )
    F19B = (
        "19B",
        "Abuse or neglect – ‘SEXUAL ABUSE’ (child on child): concerns that services may be required or the child may be suffering or likely to suffer significant harm due to abuse or neglect by another child",
    )
    F19C = (
        "19C",
        "Abuse or neglect – ‘SEXUAL ABUSE’ (adult on child): concerns that services may be required or the child may be suffering or likely to suffer significant harm due to abuse or neglect by an adult",
    )
    F20 = "20", "Other"
    F21 = (
        "21",
        "No factors identified - only use this if there is no evidence of any of the factors above and no further action is being taken",
    )
    F22A = (
        "22A",
        "Female genital mutilation (FGM) - concerns that services may be required or the child may be at risk due to female genital mutilation",
    )
    F23A = (
        "23A",
        "Abuse linked to faith or belief - concerns that services may be required or the child may be at risk due to abuse linked to faith or belief",
    )
    F24A = (
        "24A",
        "Child criminal exploitation: concerns that services may be required or the child may be at risk of harm due to child criminal exploitation",
    )


class AbuseCategory(_CodeList):
    NEG = "NEG", "Neglect"
    PHY = "PHY", "Physical abuse"
    SAB = "SAB", "Sexual abuse"
    EMO = "EMO", "Emotional abuse"
    MUL = "MUL", "Multiple/not recommended"


class EthnicGroup(StrEnum):
    """The five major census ethnic groups, plus 'unknown' for refused or not yet obtained. Audit only."""

    WHITE = "white"
    MIXED = "mixed"
    ASIAN = "asian"
    BLACK = "black"
    OTHER = "other"
    UNKNOWN = "unknown"


_GROUP_BY_PREFIX = {
    "W": EthnicGroup.WHITE,
    "M": EthnicGroup.MIXED,
    "A": EthnicGroup.ASIAN,
    "B": EthnicGroup.BLACK,
}


def ethnic_group(code: Ethnicity) -> EthnicGroup:
    """Map a detailed ethnicity code to its major group (CHNE is 'other' in the current census grouping)."""
    if code in (Ethnicity.REFU, Ethnicity.NOBT):
        return EthnicGroup.UNKNOWN
    return _GROUP_BY_PREFIX.get(code.value[0], EthnicGroup.OTHER)


# Before 2024-25 returns carried GenderCurrent: 1 male, 2 female, 0 not recorded or unborn, 9 indeterminate.
_GENDER_CURRENT = {"1": Sex.M, "2": Sex.F, "0": Sex.U, "9": Sex.U}


def sex_from_gender_current(value: str) -> Sex:
    """Translate a pre-2024-25 GenderCurrent code; raises KeyError for anything else."""
    return _GENDER_CURRENT[value.strip()]


NEGLECT_FACTOR = AssessmentFactor.F16A
