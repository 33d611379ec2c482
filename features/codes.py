"""Census code lists as enums, from the DfE CIN census specification 2025-26.

Each member's value is the census code; ``.label`` is the specification's wording. The codes are checked
against ``shared/reference/cin-census/codes_2025_2026.json`` by a test.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "NEGLECT_FACTOR",
    "AbuseCategory",
    "AssessmentFactor",
    "ClosureReason",
    "Disability",
    "EthnicGroup",
    "Ethnicity",
    "PreProceedingsOutcome",
    "PrimaryNeed",
    "ReferralSource",
    "Sex",
    "ethnic_group",
    "sex_from_gender_current",
]


class _CodeList(StrEnum):
    """A census code; compares and serialises as the code itself, ``.label`` is the specification's wording."""

    @property
    def label(self) -> str:
        return _LABELS[type(self).__name__][self.value]


class PreProceedingsOutcome(StrEnum):
    """PPOutcome in the 2026 pre-proceedings block (code set CS131: A, B or C).

    A plain enum, not a :class:`_CodeList`: the code list's wording is not in the reference specification here.
    """

    A = "A"
    B = "B"
    C = "C"


class Sex(_CodeList):
    M = "M"
    F = "F"
    U = "U"


class Ethnicity(_CodeList):
    WBRI = "WBRI"
    WIRI = "WIRI"
    WIRT = "WIRT"
    WOTH = "WOTH"
    WROM = "WROM"
    MWBC = "MWBC"
    MWBA = "MWBA"
    MWAS = "MWAS"
    MOTH = "MOTH"
    AIND = "AIND"
    APKN = "APKN"
    ABAN = "ABAN"
    AOTH = "AOTH"
    BCRB = "BCRB"
    BAFR = "BAFR"
    BOTH = "BOTH"
    CHNE = "CHNE"
    OOTH = "OOTH"
    REFU = "REFU"
    NOBT = "NOBT"


class Disability(_CodeList):
    NONE = "NONE"
    MOB = "MOB"
    HAND = "HAND"
    PC = "PC"
    INC = "INC"
    COMM = "COMM"
    LD = "LD"
    HEAR = "HEAR"
    VIS = "VIS"
    BEH = "BEH"
    CON = "CON"
    AUT = "AUT"
    DDA = "DDA"


class ReferralSource(_CodeList):
    S1A = "1A"
    S1B = "1B"
    S1C = "1C"
    S1D = "1D"
    S2A = "2A"
    S2B = "2B"
    S3A = "3A"
    S3B = "3B"
    S3C = "3C"
    S3D = "3D"
    S3E = "3E"
    S3F = "3F"
    S4 = "4"
    S5A = "5A"
    S5B = "5B"
    S5C = "5C"
    S5D = "5D"
    S6 = "6"
    S7 = "7"
    S8 = "8"
    S9 = "9"
    S10 = "10"


class PrimaryNeed(_CodeList):
    N1 = "N1"
    N2 = "N2"
    N3 = "N3"
    N4 = "N4"
    N5 = "N5"
    N6 = "N6"
    N7 = "N7"
    N8 = "N8"
    N9 = "N9"
    N0 = "N0"


class ClosureReason(_CodeList):
    RC1 = "RC1"
    RC2 = "RC2"
    RC3 = "RC3"
    RC4 = "RC4"
    RC5 = "RC5"
    RC6 = "RC6"
    RC7 = "RC7"
    RC8 = "RC8"
    RC9 = "RC9"


class AssessmentFactor(_CodeList):
    F1A = "1A"
    F1B = "1B"
    F1C = "1C"
    F2A = "2A"
    F2B = "2B"
    F2C = "2C"
    F3A = "3A"
    F3B = "3B"
    F3C = "3C"
    F4A = "4A"
    F4B = "4B"
    F4C = "4C"
    F5A = "5A"
    F5B = "5B"
    F5C = "5C"
    F6A = "6A"
    F6B = "6B"
    F6C = "6C"
    F7A = "7A"
    F8B = "8B"
    F8C = "8C"
    F8D = "8D"
    F8E = "8E"
    F8F = "8F"
    F9A = "9A"
    F10A = "10A"
    F11A = "11A"
    F12A = "12A"
    F13A = "13A"
    F14A = "14A"
    F15A = "15A"
    F16A = "16A"
    F17A = "17A"
    F18A = "18A"
    F18B = "18B"
    F18C = "18C"
    F19A = "19A"
    F19B = "19B"
    F19C = "19C"
    F20 = "20"
    F21 = "21"
    F22A = "22A"
    F23A = "23A"
    F24A = "24A"


class AbuseCategory(_CodeList):
    NEG = "NEG"
    PHY = "PHY"
    SAB = "SAB"
    EMO = "EMO"
    MUL = "MUL"


# The specification's wording of every code, by code list.
_LABELS: dict[str, dict[str, str]] = {
    "Sex": {
        "M": "male",
        "F": "female",
        "U": "unknown",
    },
    "Ethnicity": {
        "WBRI": "White British",
        "WIRI": "White Irish",
        "WIRT": "Traveller of Irish heritage",
        "WOTH": "Any other White background",
        "WROM": "Gypsy/Roma",
        "MWBC": "White and Black Caribbean",
        "MWBA": "White and Black African",
        "MWAS": "White and Asian",
        "MOTH": "Any other mixed background",
        "AIND": "Indian",
        "APKN": "Pakistani",
        "ABAN": "Bangladeshi",
        "AOTH": "Any other Asian background",
        "BCRB": "Caribbean",
        "BAFR": "African",
        "BOTH": "Any other black background",
        "CHNE": "Chinese",
        "OOTH": "Any other ethnic group",
        "REFU": "Refused",
        "NOBT": "Information not yet obtained",
    },
    "Disability": {
        "NONE": "No disability",
        "MOB": "Mobility",
        "HAND": "Hand function",
        "PC": "Personal care",
        "INC": "Incontinence",
        "COMM": "Communication",
        "LD": "Learning",
        "HEAR": "Hearing",
        "VIS": "Vision",
        "BEH": "Behaviour",
        "CON": "Consciousness",
        "AUT": "Autism",
        "DDA": "Other",
    },
    "ReferralSource": {
        "1A": "INDIVIDUAL – family member, relative or carer",
        "1B": "INDIVIDUAL – acquaintance (including neighbours and child minders)",
        "1C": "INDIVIDUAL – self",
        "1D": "INDIVIDUAL – other (including strangers)",
        "2A": "SCHOOLS",
        "2B": "EDUCATION SERVICES",
        "3A": "HEALTH SERVICES – general practitioner (GP)",
        "3B": "HEALTH SERVICES – health visitor",
        "3C": "HEALTH SERVICES – school nurse",
        "3D": "HEALTH SERVICES – other primary health services",
        "3E": "HEALTH SERVICES – A&E (accident and emergency department)",
        "3F": "HEALTH SERVICES – other (for example hospice)",
        "4": "HOUSING - local authority housing or housing association",
        "5A": "LA SERVICES – social care for example adults social care services",
        "5B": "LA SERVICES – other internal (department other than social care in local authorities, for example, youth offending (excluding housing))",
        "5C": "LA SERVICES – external, for example, from another local authority’s adults social care services",
        "5D": "LA SERVICES – early help",
        "6": "POLICE",
        "7": "OTHER LEGAL AGENCY – including courts, probation, immigration, CAFCASS (Children and Family Court Advisory and Support Service) or prison",
        "8": "OTHER – including children’s centres, independent agency providers or voluntary organisations",
        "9": "ANONYMOUS",
        "10": "UNKNOWN",
    },
    "PrimaryNeed": {
        "N1": "Abuse, neglect and exploitation",
        "N2": "Child's disability",
        "N3": "Parental disability or illness",
        "N4": "Family in acute stress",
        "N5": "Family dysfunction",
        "N6": "Socially unacceptable behaviour",
        "N7": "Low income",
        "N8": "Absent parenting",
        "N9": "Cases other than children in need",
        "N0": "Not stated",
    },
    "ClosureReason": {
        "RC1": "Adopted",
        "RC2": "Died",
        "RC3": "Child arrangements order",
        "RC4": "Special guardianship order",
        "RC5": "Transferred to services of another local authority",
        "RC6": "Transferred to adult social care services",
        "RC7": "Services ceased for any other reason, including child no longer in need",
        "RC8": "Case closed after assessment, no further action",
        "RC9": "Case closed after assessment, referred to early help",
    },
    "AssessmentFactor": {
        "1A": "Alcohol misuse: concerns about alcohol misuse by the child",
        "1B": "Alcohol misuse: concerns about alcohol misuse by the parent(s)/carer(s)",
        "1C": "Alcohol misuse: concerns about alcohol misuse by another person living in the household",
        "2A": "Drug misuse: concerns about drug misuse by the child",
        "2B": "Drug misuse: concerns about drug misuse by the parent(s)/carer(s)",
        "2C": "Drug misuse: concerns about drug misuse by another person living in the household",
        "3A": "Domestic violence: concerns about the child being the subject of domestic violence",
        "3B": "Domestic violence: concerns about the child’s parent(s)/carer(s) being the subject of domestic violence",
        "3C": "Domestic violence: concerns about another person living in the household being the subject of domestic violence",
        "4A": "Mental health: concerns about the mental health of the child",
        "4B": "Mental health: concerns about the mental health of the parent(s)/carer(s)",
        "4C": "Mental health: concerns about the mental health of another person in the family/household",
        "5A": "Learning disability: concerns about the child’s learning disability",
        "5B": "Learning disability: concerns about the parent(s)/carer(s) learning disability",
        "5C": "Learning disability: concerns about another person in the family/household’s learning disability",
        "6A": "Physical disability or illness: concerns about a physical disability or illness of the child",
        "6B": "Physical disability or illness: concerns about a physical disability or illness of the parent(s)/carer(s)",
        "6C": "Physical disability or illness: concerns about a physical disability or illness of another person in the family/household",
        "7A": "Young carer: concerns that services may be required or the child’s health or development may be impaired due to their caring responsibilities",
        "8B": "Privately fostered: concerns that services may be required or the child may be at risk as a privately fostered child - overseas children who intend to return",
        "8C": "Privately fostered: concerns that services may be required or the child may be at risk as a privately fostered child - overseas children who intend to stay",
        "8D": "Privately fostered: concerns that services may be required or the child may be at risk as a privately fostered child - UK children in educational placements",
        "8E": "Privately fostered: concerns that services may be required or the child may be at risk as a privately fostered child - UK children making alternative family arrangements",
        "8F": "Privately fostered: concerns that services may be required or the child may be at risk as a privately fostered child - other",
        "9A": "UASC: concerns that services may be required or the child may be at risk of harm as an unaccompanied asylum-seeking child",
        "10A": "Missing: concerns that services may be required or the child may be at risk of harm due to going/being missing",
        "11A": "Child sexual exploitation: concerns that services may be required or the child may be at risk of harm due to child sexual exploitation",
        "12A": "Trafficking: concerns that services may be required or the child may be at risk of harm due to trafficking",
        "13A": "Gangs: concerns that services may be required or the child may be at risk of harm because of involvement in/with gangs",
        "14A": "Socially unacceptable behaviour: concerns that services may be required or the child may be at risk due to their socially unacceptable behaviour",
        "15A": "Self-harm: concerns that services may be required or due to suspected/actual self-harming child may be at risk of harm",
        "16A": "Abuse or neglect – ‘NEGLECT’: concerns that services may be required or the child may be suffering or likely to suffer significant harm due to abuse or neglect",
        "17A": "Abuse or neglect – ‘EMOTIONAL ABUSE’: concerns that services may be required or the child may be suffering or likely to suffer significant harm due to abuse or neglect",
        "18A": "Abuse or neglect – ‘PHYSICAL ABUSE’: concerns that services may be required or the child may be suffering or likely to suffer significant harm due to abuse or neglect.",
        "18B": "Abuse or neglect – ‘PHYSICAL ABUSE’ (child on child): concerns that services may be required or the child may be suffering or likely to suffer significant harm due to abuse or neglect by another child",
        "18C": "Abuse or neglect – ‘PHYSICAL ABUSE’ (adult on child): concerns that services may be required or the child may be suffering or likely to suffer significant harm due to abuse or neglect by an adult",
        "19A": "Abuse or neglect – ‘SEXUAL ABUSE’: concerns that services may be required or the child may be suffering or likely to suffer significant harm due to abuse or neglect.",
        "19B": "Abuse or neglect – ‘SEXUAL ABUSE’ (child on child): concerns that services may be required or the child may be suffering or likely to suffer significant harm due to abuse or neglect by another child",
        "19C": "Abuse or neglect – ‘SEXUAL ABUSE’ (adult on child): concerns that services may be required or the child may be suffering or likely to suffer significant harm due to abuse or neglect by an adult",
        "20": "Other",
        "21": "No factors identified - only use this if there is no evidence of any of the factors above and no further action is being taken",
        "22A": "Female genital mutilation (FGM) - concerns that services may be required or the child may be at risk due to female genital mutilation",
        "23A": "Abuse linked to faith or belief - concerns that services may be required or the child may be at risk due to abuse linked to faith or belief",
        "24A": "Child criminal exploitation: concerns that services may be required or the child may be at risk of harm due to child criminal exploitation",
    },
    "AbuseCategory": {
        "NEG": "Neglect",
        "PHY": "Physical abuse",
        "SAB": "Sexual abuse",
        "EMO": "Emotional abuse",
        "MUL": "Multiple/not recommended",
    },
}


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
