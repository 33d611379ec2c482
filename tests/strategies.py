"""Test data: a hypothesis strategy for valid case records, and small builders of CIN census XML text."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any
from xml.sax.saxutils import escape

from hypothesis import strategies as st

from features import Agency, ChildRecord, Forum, ServiceType
from features.codes import (
    AbuseCategory,
    AssessmentFactor,
    ClosureReason,
    Disability,
    Ethnicity,
    PrimaryNeed,
    ReferralSource,
    Sex,
)

__all__ = ["census_xml", "child_records", "child_xml", "collection_year", "episode_xml"]

FIRST_REFERRAL = dt.date(2012, 4, 1)
LAST_REFERRAL = dt.date(2025, 3, 31)
_OPEN_HORIZON = 800  # days after the referral within which an open episode's events fall

# Identifiers with XML's special characters and a non-ASCII letter, never whitespace at either end.
_ID_ALPHABET = "ABCXYZabcxyz0123456789-_/.&<>'\"é"
_FACTORS = [f for f in AssessmentFactor if f is not AssessmentFactor.F21]
_DISABILITIES = [d for d in Disability if d is not Disability.NONE]
_AFTER_ASSESSMENT = (ClosureReason.RC8, ClosureReason.RC9)

Draw = Callable[[st.SearchStrategy[Any]], Any]


def collection_year(day: dt.date) -> int:
    """The census collection year (1 April Y-1 to 31 March Y) that holds ``day``."""
    return day.year + 1 if day.month >= 4 else day.year


def _day(draw: Draw, first: dt.date, last: dt.date) -> dt.date:
    return first + dt.timedelta(days=draw(st.integers(0, max((last - first).days, 0))))


def _maybe_day(draw: Draw, first: dt.date, last: dt.date) -> dt.date | None:
    return _day(draw, first, last) if draw(st.booleans()) else None


def _some(draw: Draw, make: Callable[[], dict[str, Any]], most: int) -> list[dict[str, Any]]:
    return [make() for _ in range(draw(st.integers(0, most)))]


def _assessment(draw: Draw, first: dt.date, last: dt.date) -> dict[str, Any]:
    start = _day(draw, first, last)
    factors = draw(
        st.one_of(
            st.just([AssessmentFactor.F21]),
            st.lists(st.sampled_from(_FACTORS), unique=True, max_size=4),
        )
    )
    return {
        "start_date": start,
        "internal_review_date": _maybe_day(draw, start, last),
        "authorisation_date": _maybe_day(draw, start, last),
        "factors": factors,
    }


def _cin_plan(draw: Draw, first: dt.date, last: dt.date, closed: bool) -> dict[str, Any]:
    start = _day(draw, first, last)
    end = _day(draw, start, last) if closed else _maybe_day(draw, start, last)
    return {"start_date": start, "end_date": end}


def _section47(draw: Draw, first: dt.date, last: dt.date) -> dict[str, Any]:
    start = _day(draw, first, last)
    not_required = draw(st.booleans())
    return {
        "start_date": start,
        "icpc_target_date": start + dt.timedelta(days=15) if draw(st.booleans()) else None,
        "icpc_date": None if not_required else _maybe_day(draw, start, last),
        "icpc_not_required": not_required,
    }


def _protection_plan(draw: Draw, first: dt.date, last: dt.date, closed: bool) -> dict[str, Any]:
    start = _day(draw, first, last)
    end = _day(draw, start, last) if closed else _maybe_day(draw, start, last)
    return {
        "start_date": start,
        "end_date": end,
        "initial_category": draw(st.sampled_from(AbuseCategory)),
        "latest_category": draw(st.sampled_from(AbuseCategory)),
        "previous_plans": draw(st.integers(0, 99)),
        "review_dates": [_day(draw, start, end or last) for _ in range(draw(st.integers(0, 3)))],
    }


def _service(draw: Draw, first: dt.date, last: dt.date) -> dict[str, Any]:
    referred = _day(draw, first, last)
    start = _maybe_day(draw, referred, last)
    end = _maybe_day(draw, start, last) if start is not None else None
    completed = draw(st.none() | st.booleans()) if end is not None else None
    return {
        "service": draw(st.sampled_from(ServiceType)),
        "referred_date": referred,
        "start_date": start,
        "end_date": end,
        "completed": completed,
    }


def _extension(draw: Draw, make: Callable[[], dict[str, Any]]) -> list[dict[str, Any]] | None:
    """Missing (None), recorded as none ([]), or a few entries: the three cases features must tell apart."""
    return None if draw(st.booleans()) else _some(draw, make, 3)


def _episode(draw: Draw, referral: dt.date, closure: dt.date | None) -> dict[str, Any]:
    last = closure or referral + dt.timedelta(days=_OPEN_HORIZON)
    closed = closure is not None
    reason = draw(st.sampled_from(ClosureReason)) if closed else None
    nfa = draw(st.integers(0, 3)) == 0
    plans_allowed = not nfa and reason not in _AFTER_ASSESSMENT
    return {
        "referral_date": referral,
        "referral_source": draw(st.sampled_from(ReferralSource)),
        "primary_need": draw(st.none() | st.sampled_from(PrimaryNeed)),
        "closure_date": closure,
        "closure_reason": reason,
        "initial_cpc_date": _maybe_day(draw, referral, last),
        "referral_nfa": nfa,
        "assessments": [] if nfa else _some(draw, lambda: _assessment(draw, referral, last), 2),
        "cin_plans": _some(draw, lambda: _cin_plan(draw, referral, last, closed), 2) if plans_allowed else [],
        "section47s": [] if nfa else _some(draw, lambda: _section47(draw, referral, last), 2),
        "protection_plans": (
            _some(draw, lambda: _protection_plan(draw, referral, last, closed), 1) if plans_allowed else []
        ),
        "services": _extension(draw, lambda: _service(draw, referral, last)),
        "agencies": _extension(
            draw,
            lambda: {
                "agency": draw(st.sampled_from(Agency)),
                "forum": draw(st.sampled_from(Forum)),
                "date": _day(draw, referral, last),
            },
        ),
        "visits": _extension(
            draw, lambda: {"date": _day(draw, referral, last), "child_seen": draw(st.none() | st.booleans())}
        ),
        "plan_reviews": _extension(draw, lambda: _plan_review(draw, referral, last)),
    }


def _plan_review(draw: Draw, first: dt.date, last: dt.date) -> dict[str, Any]:
    goals_set = draw(st.integers(1, 8))
    return {"date": _day(draw, first, last), "goals_set": goals_set, "goals_met": draw(st.integers(0, goals_set))}


@st.composite
def child_records(draw: Draw, *, max_episodes: int = 3) -> ChildRecord:
    """A valid ChildRecord: episodes in sequence without overlap, the last one open or closed.

    Covers NFA referrals without activity, RC8/RC9 closures without plans, factor 21 alone, unborn children,
    and extension fields that are missing, empty or filled.
    """
    born = draw(st.sampled_from(["born", "unborn", "both"]))
    birth = _day(draw, dt.date(2000, 1, 1), dt.date(2024, 12, 31))
    episodes = []
    referral = _day(draw, FIRST_REFERRAL, LAST_REFERRAL)
    birth = min(birth, referral + dt.timedelta(days=280))  # DfE rule 8606: referred at most 280 days before birth
    count = draw(st.integers(1, max_episodes))
    for i in range(count):
        closed = i < count - 1 or draw(st.booleans())
        closure = referral + dt.timedelta(days=draw(st.integers(0, 500))) if closed else None
        episodes.append(_episode(draw, referral, closure))
        if closure is None:
            break
        referral = closure + dt.timedelta(days=draw(st.integers(1, 400)))
        if referral > LAST_REFERRAL:
            break
    disabilities = draw(
        st.one_of(
            st.just([]),
            st.just([Disability.NONE]),
            st.lists(st.sampled_from(_DISABILITIES), unique=True, min_size=1, max_size=3),
        )
    )
    return ChildRecord.model_validate(
        {
            "la_child_id": draw(st.text(_ID_ALPHABET, min_size=1, max_size=12)),
            "birth_date": birth if born != "unborn" else None,
            "expected_birth_date": birth if born != "born" else None,
            "sex": draw(st.sampled_from(Sex)),
            "ethnicity": draw(st.sampled_from(Ethnicity)),
            "disabilities": disabilities,
            "episodes": episodes,
        }
    )


# --- CIN census XML text for hand-written cases -------------------------------------------------------------


def episode_xml(
    referral: str = "2023-05-01",
    *,
    source: str = "1A",
    need: str | None = "N1",
    closure: str | None = None,
    reason: str | None = None,
    nfa: str = "0",
    modules: str = "",
    after_nfa: str = "",
) -> str:
    """A CINdetails element; ``modules`` go before ReferralNFA, ``after_nfa`` (protection plans) after it."""
    parts = [f"<CINreferralDate>{referral}</CINreferralDate>", f"<ReferralSource>{source}</ReferralSource>"]
    if need is not None:
        parts.append(f"<PrimaryNeedCode>{need}</PrimaryNeedCode>")
    if closure is not None:
        parts.append(f"<CINclosureDate>{closure}</CINclosureDate>")
    if reason is not None:
        parts.append(f"<ReasonForClosure>{reason}</ReasonForClosure>")
    parts += [modules, f"<ReferralNFA>{nfa}</ReferralNFA>", after_nfa]
    return "<CINdetails>" + "".join(parts) + "</CINdetails>"


def child_xml(
    child_id: str = "C1",
    *episodes: str,
    birth: str | None = "2015-06-01",
    sex: str = "<Sex>F</Sex>",
    ethnicity: str = "WBRI",
    disabilities: Sequence[str] = (),
    identifiers_extra: str = "",
) -> str:
    """A Child element; with no episodes given it has one open episode referred 2023-05-01."""
    birth_xml = f"<PersonBirthDate>{birth}</PersonBirthDate>" if birth is not None else ""
    disabilities_xml = (
        "<Disabilities>" + "".join(f"<Disability>{d}</Disability>" for d in disabilities) + "</Disabilities>"
        if disabilities
        else ""
    )
    return (
        f"<Child><ChildIdentifiers><LAchildID>{escape(child_id)}</LAchildID>{identifiers_extra}{birth_xml}{sex}"
        f"</ChildIdentifiers><ChildCharacteristics><Ethnicity>{ethnicity}</Ethnicity>{disabilities_xml}"
        f"</ChildCharacteristics>{''.join(episodes or (episode_xml(),))}</Child>"
    )


def census_xml(*children: str, year: int | None = 2024, reference_date: str | None = None) -> str:
    """A Message; no header at all when ``year`` is None."""
    header = ""
    if year is not None:
        reference = reference_date or f"{year}-03-31"
        header = (
            "<Header><CollectionDetails><Collection>CIN</Collection>"
            f"<Year>{year}</Year><ReferenceDate>{reference}</ReferenceDate></CollectionDetails>"
            "<Source><SourceLevel>L</SourceLevel><LEA>999</LEA></Source></Header>"
        )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Message>{header}<Children>{"".join(children)}</Children></Message>\n'
    )


# --- mutated records as JSON, for checking a decoder against the pydantic model ------------------------------------

# Values of the wrong type, out of range or at a rule's edge, for whatever field they land in.
_JSON_VALUES = st.sampled_from(
    [None, True, False, 0, 1, -1, 1.0, 1.5, 99, 100, 999, 1000, 10**20, "", " ", "x", "1", "true", "2024-01-01",
     "2024-02-30", "2024-1-1", "2024-01-01T00:00:00", "0001-01-01", "9999-12-31", " 2024-01-01", "N1", "NEG", "21",
     "16A", "NONE", "AUT", "RC8", "M", "F", "WBRI", "health", "police", "plan_meeting", "strategy_discussion",
     "parenting_programme", [], {}, [1], ["21", "21"], {"date": "2024-01-01"}]
)  # fmt: skip
json_mutations = st.one_of(
    st.tuples(st.just("set"), st.integers(0, 10_000), _JSON_VALUES),
    st.tuples(st.just("shift_date"), st.integers(0, 10_000), st.integers(-800, 800)),
    st.tuples(st.just("drop"), st.integers(0, 10_000)),
    st.tuples(st.just("add_key"), st.integers(0, 10_000), st.sampled_from(["extra", "closure_date", "services"])),
    st.tuples(st.just("duplicate"), st.integers(0, 10_000)),
    st.tuples(st.just("swap"), st.integers(0, 10_000)),
    st.tuples(st.just("pad"), st.integers(0, 10_000)),
)


def _places(value: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key) in a JSON value, depth first."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, held in list(items):
        out.append((value, key))
        _places(held, out)
    return out


def mutate_json(value: Any, mutation: tuple[Any, ...]) -> None:
    """Apply one of ``json_mutations`` to a record's JSON value (dicts and lists), in place."""
    places = _places(value, [])
    if not places:
        return
    kind, index = mutation[0], mutation[1]
    container, key = places[index % len(places)]
    held = container[key]
    if kind == "set":
        container[key] = mutation[2]
    elif kind == "shift_date" and isinstance(held, str) and len(held) == 10 and held[4] == "-":
        try:
            container[key] = (dt.date.fromisoformat(held) + dt.timedelta(days=mutation[2])).isoformat()
        except ValueError:
            container[key] = held + "x"
    elif kind == "drop":
        del container[key]
    elif kind == "add_key" and isinstance(held, dict):
        held[mutation[2]] = None if mutation[2] != "extra" else 1
    elif kind == "duplicate" and isinstance(container, list):
        container.insert(key, container[key])
    elif kind == "swap" and isinstance(container, list) and len(container) > 1:
        container[key], container[key - 1] = container[key - 1], container[key]
    elif kind == "pad" and isinstance(held, str):
        container[key] = f" {held}"
