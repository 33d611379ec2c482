"""Ingest several CIN census returns and the case-management extension into linked, validated child records.

Returns are linked on LAchildID. An episode is keyed by (child, referral date): when it appears in several
returns the later return wins (ordered by ReferenceDate, then by argument order; by argument order alone when a
return has no reference date), and so do the child's characteristics. The extension file (JSON lines, one
:class:`~features.extension.EpisodeExtension` each) is joined on the same key. Each linked child is then validated
once with :meth:`ChildRecord.model_validate`; every violation becomes a :class:`Problem`.

A child with any error is not kept: it is listed in the problems, never silently dropped. A warning keeps the child:
an element the schema does not know, or ``extension_unmatched`` (an extension line naming no known episode), which
is about the line, not the record.
Indices in problem paths are 1-based.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from pydantic_core import ErrorDetails

from features.batching import collector_paused
from features.census import (
    RULE_NAMES,
    CensusReturn,
    IngestError,
    ParsedChild,
    Problem,
    Severity,
    census_words,
    element_path,
    read_census_header,
    read_census_return,
)
from features.checking import check_record
from features.extension import EXTENSION_FIELDS, EpisodeExtension
from features.joining import join_extension, line_path
from features.linking import (
    OPEN_EPISODE_MISSING,
    REFERRAL_AFTER_REFERENCE_DATE,
    REFERRAL_DATE_CORRECTED,
    LinkedChild,
    changed_characteristics,
    corrected_referral,
    due_in,
)
from features.record import ChildRecord
from features.superseded import RejectedCopy, rejected_copies, settle_rejected_copies, superseded_episode_problems

__all__ = [
    "IngestResult",
    "Part",
    "ReturnCount",
    "extension_lines",
    "ingest",
    "merge_summaries",
    "write_extension_jsonl",
    "write_problems_csv",
    "write_records_jsonl",
]

UNUSABLE_FILE: Final = "unusable_file"
_CHILD_TAG: Final = "Child"
_EPISODE_TAG: Final = "CINdetails"


@dataclass
class ReturnCount:
    """The Child elements of one return and how many of them went into a kept record."""

    source: str
    child_elements: int
    kept: int
    reference_date: dt.date | None = None

    @property
    def dropped(self) -> int:
        """Elements left out: their child has an error, or they could not be read or named."""
        return self.child_elements - self.kept

    def as_dict(self) -> dict[str, object]:
        return {"file": self.source, "child_elements": self.child_elements, "kept": self.kept, "dropped": self.dropped}


@dataclass
class IngestResult:
    """Linked records (sorted by LAchildID) and every problem found on the way."""

    records: list[ChildRecord]
    problems: list[Problem]
    files: int = 0
    reference_dates: list[dt.date] = field(default_factory=list)  # of the returns that give one, oldest first
    unusable_files: list[str] = field(default_factory=list)  # not read at all
    partly_read_files: list[str] = field(default_factory=list)  # not well-formed: read around the breaks
    returns: list[ReturnCount] = field(default_factory=list)  # in reading order

    @property
    def partial(self) -> bool:
        """Some input could not be read: the records and problems are of the rest."""
        return bool(self.unusable_files or self.partly_read_files)

    @property
    def data_end(self) -> dt.date | None:
        """The last census reference date: nothing after it is in the data (outcomes after it are unknown)."""
        return self.reference_dates[-1] if self.reference_dates else None

    def summary(self) -> dict[str, object]:
        """Counts for a log line or a JSON report.

        ``children``, ``episodes`` and ``open_episodes`` count the kept records; ``children_with_problems``
        counts the children left out by an error (by LAchildID, or by position when it could not be read), so the
        two child counts add up to every child seen. A warning (an unknown element, an unmatched extension line)
        leaves no child out; ``warnings`` counts those problems.

        ``child_elements`` counts the Child elements of the returns read, ``child_elements_kept`` those that went
        into a kept record and ``child_elements_dropped`` the rest, so kept + dropped = Child elements, in total and
        per return (``returns``): two elements with one LAchildID in a return are two dropped.
        """
        errors = [p for p in self.problems if p.is_error]
        named = {p.la_child_id for p in errors if p.la_child_id is not None}
        unnamed = {(p.source, p.path.split("/", 1)[0]) for p in errors if p.la_child_id is None}
        unnamed_children = sum(1 for _, head in unnamed if head.startswith("Child["))
        return {
            "files": self.files,
            "partial": self.partial,
            "files_unusable": len(self.unusable_files),
            "files_partly_read": len(self.partly_read_files),
            "data_end": self.data_end.isoformat() if self.data_end else None,
            "children": len(self.records),
            "episodes": sum(len(r.episodes) for r in self.records),
            "open_episodes": sum(r.open_episode is not None for r in self.records),
            "problems": len(self.problems),
            "warnings": len(self.problems) - len(errors),
            "children_with_problems": len(named) + unnamed_children,
            "problems_by_rule": dict(sorted(Counter(p.rule for p in self.problems).items())),
            "child_elements": sum(r.child_elements for r in self.returns),
            "child_elements_kept": sum(r.kept for r in self.returns),
            "child_elements_dropped": sum(r.dropped for r in self.returns),
            "returns": [r.as_dict() for r in self.returns],
        }


@dataclass(frozen=True)
class Part:
    """One of ``count`` shares of the children, for ingesting in several processes: a child by its name (the text of
    its LAchildID, ``features.census.child_key``), whatever return or line names it. Every problem goes to the share
    that holds the child it names; a problem that names no child (a file's, a line's that names none) to the first.
    The shares' results together are the one-process result (``merge_summaries``)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"part {self.index} of {self.count} does not exist")

    def holds(self, child_id: str | None) -> bool:
        if child_id is None:
            return self.index == 0
        return zlib.crc32(child_id.encode("utf-8", "surrogatepass")) % self.count == self.index


def _reading_order(headers: list[CensusReturn]) -> list[int]:
    """Indices of the returns, oldest first: by reference date when every return has one, else as given."""
    if all(h.reference_date is not None for h in headers):
        # sorted() is stable: returns with the same reference date keep their argument order
        return sorted(range(len(headers)), key=lambda i: headers[i].reference_date or dt.date.min)
    return list(range(len(headers)))


def _link(ret: CensusReturn, linked: dict[str, LinkedChild], problems: list[Problem], rank: int) -> None:
    """Fold one return (its children are consumed) into the linked children; it is later than any before it.

    What the later return changes is warned of (``features.linking``), and so is an error only in the earlier copy
    of an episode it gives again (``features.superseded``); an earlier ExpectedPersonBirthDate it does not give is
    kept.
    """
    for child in ret.children:
        fields = child.fields
        episodes = fields.pop("episodes")
        element = f"{_CHILD_TAG}[{child.position}]"
        entry = linked.get(child.la_child_id)
        if entry is None:
            entry = linked[child.la_child_id] = LinkedChild(fields, ret.source, element, rank=rank)
        else:
            _warn_changes(ret, child.la_child_id, entry, fields, episodes, element, problems)
            if fields.get("expected_birth_date") is None and entry.fields.get("expected_birth_date") is not None:
                fields["expected_birth_date"] = entry.fields["expected_birth_date"]
            entry.fields, entry.source, entry.element, entry.rank = fields, ret.source, element, rank
        for number, episode in enumerate(episodes, start=1):
            referral = episode["referral_date"]
            old = entry.episodes.get(referral)
            if old is not None and old != episode:
                problems += superseded_episode_problems(old, episode, entry, child_id=child.la_child_id,
                                                        new_source=ret.source)  # fmt: skip
            entry.episodes[referral] = episode
            entry.episode_ranks[referral] = rank
            entry.episode_sources[referral] = ret.source
            entry.episode_elements[referral] = f"{element}/{_EPISODE_TAG}[{number}]"
            if ret.reference_date is not None and referral > ret.reference_date:
                problems.append(
                    Problem(ret.source, child.la_child_id, f"{element}/{_EPISODE_TAG}[{number}]/CINreferralDate",
                            REFERRAL_AFTER_REFERENCE_DATE,
                            f"CINreferralDate {referral} is after the return's ReferenceDate {ret.reference_date}",
                            Severity.WARNING)
                )  # fmt: skip
        entry.open = any(e.get("closure_date") is None for e in entry.episodes.values())


def _warn_changes(
    ret: CensusReturn,
    child_id: str,
    entry: LinkedChild,
    fields: dict[str, Any],
    episodes: list[dict[str, Any]],
    element: str,
    problems: list[Problem],
) -> None:
    problems.extend(
        changed_characteristics(entry.fields, entry.source, fields, source=ret.source, child_id=child_id, at=element)
    )
    given = {episode["referral_date"] for episode in episodes}
    for number, episode in enumerate(episodes, start=1):
        referral = episode["referral_date"]
        old = (
            None
            if referral in entry.episodes
            else corrected_referral(referral, entry.episodes, given, ret.reference_date)
        )
        if old is not None:  # one episode, its referral date corrected: the later return's replaces it
            old_source = entry.episode_sources.pop(old)
            del entry.episodes[old], entry.episode_elements[old], entry.episode_ranks[old]
            problems.append(
                Problem(ret.source, child_id, f"{element}/{_EPISODE_TAG}[{number}]/CINreferralDate",
                        REFERRAL_DATE_CORRECTED,
                        f"CINreferralDate is {referral} here and {old} in {old_source}: read as one episode, "
                        "with this return's date", Severity.WARNING)
            )  # fmt: skip
    _warn_missing_open(entry, given, ret, child_id, problems)


def _warn_missing_open(
    entry: LinkedChild, given: set[dt.date], ret: CensusReturn, child_id: str, problems: list[Problem]
) -> None:
    """An episode open in an earlier return that this one should hold and does not: kept open, marked for its score's
    warning, and said once, of the first return missing it."""
    for referral, episode in entry.episodes.items():
        if referral in given or episode.get("closure_date") is not None or not due_in(episode, ret.reference_date):
            continue
        if episode.get("missing_from_return") is not None:
            continue  # already said, of an earlier return
        source = entry.episode_sources[referral]
        entry.episodes[referral] = {**episode, "missing_from_return": ret.reference_date}
        problems.append(
            Problem(source, child_id, f"{entry.episode_elements[referral]}/CINclosureDate", OPEN_EPISODE_MISSING,
                    f"the episode referred {referral} is open in {source} and missing from {ret.source}, which "
                    "should hold it: it is kept open; check whether it closed", Severity.WARNING)
        )  # fmt: skip


def _validate(
    child_id: str, entry: LinkedChild, extension_source: str | None, problems: list[Problem]
) -> ChildRecord | None:
    """The linked child's record, or None and every problem of it (types, and every rule at every level)."""
    referrals = sorted(entry.episodes)
    data = dict(entry.fields)
    data["episodes"] = [entry.episodes[r] for r in referrals]
    record, errors = check_record(data)
    heads = [entry.episode_elements[r] for r in referrals]
    for err in errors:
        loc = err["loc"]
        rule = RULE_NAMES.get(err["type"], err["type"])
        source, path = entry.source, element_path(loc, child=entry.element, episodes=heads)
        if len(loc) >= 2 and loc[0] == "episodes" and isinstance(loc[1], int) and loc[1] < len(referrals):
            referral = referrals[loc[1]]
            source = entry.episode_sources[referral]
            if len(loc) >= 3 and loc[2] in EXTENSION_FIELDS and extension_source is not None:
                source = extension_source
                path = line_path(entry.extension_lines[referral], loc[2:])
        message = census_words(err["msg"], loc)
        if rule in _BETWEEN_EPISODES and len(loc) >= 2 and isinstance(loc[1], int) and 0 < loc[1] < len(referrals):
            message = _between_episodes(err["msg"], entry, referrals[loc[1] - 1], referrals[loc[1]])
        problems.append(Problem(source, child_id, path, rule, message))
    return record


_BETWEEN_EPISODES: Final = frozenset({"episodes_overlap", "duplicate_episode"})


def _between_episodes(message: str, entry: LinkedChild, earlier: dt.date, later: dt.date) -> str:
    """Both episodes of an overlap named by CINreferralDate, return and element."""

    def named(referral: dt.date) -> str:
        return (
            f"the episode referred {referral} ({entry.episode_sources[referral]}, {entry.episode_elements[referral]})"
        )

    if earlier == later:
        return f"{named(later)} has the CINreferralDate of another episode"
    ended = message.rsplit("which ", 1)[-1]
    return f"{named(later)} begins inside {named(earlier)}, which {ended}"


def _check_rejected(source: str, child: ParsedChild, problems: list[Problem]) -> None:
    """Add the record rules a child the reader rejected also breaks, as far as it could be read.

    What the reader reported is not reported again, nor what follows from it: a value the reader could not read is
    missing here, so problems at a path the reader named, and about a missing or absent value, are left out.
    """
    element = f"{_CHILD_TAG}[{child.position}]"
    named = {p.path for p in problems if p.source == source and p.path.startswith(f"{element}/")}
    data = dict(child.fields)
    episodes = data.get("episodes") or []
    order = sorted(
        range(len(episodes)),
        key=lambda i: (episodes[i].get("referral_date") is None, episodes[i].get("referral_date") or dt.date.min),
    )
    data["episodes"] = [episodes[i] for i in order]
    heads = [f"{element}/{_EPISODE_TAG}[{i + 1}]" for i in order]
    for err in _record_errors(data):
        path = element_path(err["loc"], child=element, episodes=heads)
        rule = RULE_NAMES.get(err["type"], err["type"])
        derived = err["input"] is None and err["type"] in RULE_NAMES  # a value the reader could not read
        if path in named or derived or rule in _READER_RULES:
            continue
        problems.append(Problem(source, child.la_child_id, path, rule, census_words(err["msg"], err["loc"])))


# reported by the reader itself when they apply: not reported again from the record
_READER_RULES: Final = frozenset({"missing_element", "duplicate_episode"})


def _record_errors(data: dict[str, Any]) -> list[ErrorDetails]:
    try:
        return check_record(data)[1]
    except (TypeError, ValueError):  # a shape no record can take (the reader already said why)
        return []


def ingest(paths: Sequence[Path], *, extension: Path | None = None, part: Part | None = None) -> IngestResult:
    """Read, link and validate; a return that cannot be used is a problem (``unusable_file``), not the end.

    Every header is read first, to order the returns, which are then read oldest first and folded in one at a
    time: only the latest version of each episode is kept. A return that is not well-formed is read around its
    breaks. ``partial`` says when some input could not be read. Raises IngestError only for the extension file.
    ``part``: only the children (and problems) of that share; the Child elements are counted in full.
    """
    paths = [Path(p) for p in paths]
    with collector_paused():
        problems: list[Problem] = []
        unusable: list[str] = []
        headers = [_header_or_problem(p, problems, unusable) for p in paths]
        readable = [i for i, h in enumerate(headers) if h is not None]
        linked: dict[str, LinkedChild] = {}
        reference_dates: list[dt.date] = []
        partly_read: list[str] = []
        copies: list[RejectedCopy] = []
        read: list[tuple[ReturnCount, list[str]]] = []  # each return read, and its clean (or used) children's ids
        for j in _reading_order([header for header in headers if header is not None]):
            i = readable[j]
            try:
                ret = read_census_return(paths[i], holds=part.holds if part is not None else None)
            except IngestError as exc:
                _unusable(paths[i], exc, problems, unusable)
                continue
            if ret.partial:
                partly_read.append(ret.source)
            if ret.reference_date is not None:
                reference_dates.append(ret.reference_date)
            start, rank = len(problems), len(read)  # rank: the place among the returns read
            problems += ret.problems
            for child in ret.rejected:
                _check_rejected(ret.source, child, problems)
            copies += rejected_copies(ret, rank, problems, start)
            ret.rejected.clear()
            counted = ReturnCount(ret.source, ret.child_elements, 0, ret.reference_date)
            read.append((counted, [child.la_child_id for child in ret.children]))
            _link(ret, linked, problems, rank)
            for child_id, entry in linked.items():  # a child absent from this return: its open episode should be here
                if entry.rank < rank and entry.open:
                    _warn_missing_open(entry, set(), ret, child_id, problems)
        for copy in settle_rejected_copies(copies, linked, problems):
            read[copy.rank][1].append(copy.child.la_child_id)
        rejected = {p.la_child_id for p in problems if p.la_child_id is not None and p.is_error}
        if extension is not None:
            join_extension(extension, linked, rejected, problems)
        records: list[ChildRecord] = []
        extension_source = extension.name if extension is not None else None
        for child_id in sorted(linked):
            entry = linked.pop(child_id)  # let the plain dicts go as the records are built
            # a child rejected in one return is still checked in the others, so no problem hides another's
            record = _validate(child_id, entry, extension_source, problems)
            if record is not None and child_id not in rejected:
                records.append(record)
        if part is not None:  # what names another share's child is that share's to say; what names none, the first's
            problems = [problem for problem in problems if part.holds(problem.la_child_id)]
    return IngestResult(
        records=records,
        problems=problems,
        files=len(paths),
        reference_dates=sorted(reference_dates),
        unusable_files=unusable,
        partly_read_files=partly_read,
        returns=_counted(read, records),
    )


def merge_summaries(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The summary (``IngestResult.summary``) of one ingestion from those of its shares (``Part``), in order."""
    first = parts[0]
    if len(parts) == 1:
        return dict(first)
    merged = dict(first)
    for key in ("children", "episodes", "open_episodes", "problems", "warnings", "children_with_problems",
                "child_elements_kept"):  # fmt: skip
        merged[key] = sum(int(part[key]) for part in parts)
    merged["child_elements_dropped"] = int(first["child_elements"]) - merged["child_elements_kept"]
    rules: Counter[str] = Counter()
    for part in parts:
        rules.update(part["problems_by_rule"])
    merged["problems_by_rule"] = dict(sorted(rules.items()))
    returns = []
    for i, counted in enumerate(first["returns"]):
        kept = sum(int(part["returns"][i]["kept"]) for part in parts)
        returns.append({**counted, "kept": kept, "dropped": int(counted["child_elements"]) - kept})
    merged["returns"] = returns
    return merged


def _counted(read: list[tuple[ReturnCount, list[str]]], records: list[ChildRecord]) -> list[ReturnCount]:
    kept = {record.la_child_id for record in records}
    return [dataclasses.replace(counted, kept=sum(child_id in kept for child_id in ids)) for counted, ids in read]


def _unusable(path: Path, exc: IngestError, problems: list[Problem], unusable: list[str]) -> None:
    """A file that cannot be used at all is a problem of the run, which goes on with the other files."""
    unusable.append(path.name)
    message = str(exc).removeprefix(f"{path}: ")
    problems.append(Problem(path.name, None, "", UNUSABLE_FILE, f"the file could not be used: {message}"))


def _header_or_problem(path: Path, problems: list[Problem], unusable: list[str]) -> CensusReturn | None:
    try:
        return read_census_header(path)
    except IngestError as exc:
        _unusable(path, exc, problems, unusable)
        return None


def write_problems_csv(problems: Iterable[Problem], path: Path) -> None:
    """One row per problem: source, la_child_id, path, rule, message, severity (``error`` left the child out), and
    the DfE validation rule's number and message where the problem breaks one (empty where there is none)."""
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["source", "la_child_id", "path", "rule", "message", "severity", "dfe_rule", "dfe_message"])
        for p in problems:
            dfe = p.dfe_rule
            writer.writerow([p.source, p.la_child_id or "", p.path, p.rule, p.message, p.severity.value,
                             dfe.number if dfe else "", dfe.message if dfe else ""])  # fmt: skip


def write_records_jsonl(records: Iterable[ChildRecord], path: Path) -> None:
    """One child per line, missing values left out."""
    with path.open("w", encoding="utf-8", newline="\n") as stream:
        for record in records:
            stream.write(record.model_dump_json(exclude_none=True))
            stream.write("\n")


def extension_lines(record: ChildRecord) -> list[str]:
    """The extension file's lines for one record: one per episode that has any extension field."""
    lines = []
    for episode in record.episodes:
        parts = {name: getattr(episode, name) for name in EXTENSION_FIELDS}
        if all(value is None for value in parts.values()):
            continue  # nothing recorded: the episode has no line, and its extension stays missing
        # The record was validated with every object it holds, and a line has no rules of its own: built, not
        # validated again (the generator writes one for most simulated episodes).
        line = EpisodeExtension.model_construct(la_child_id=record.la_child_id, referral_date=episode.referral_date,
                                                **parts)  # fmt: skip
        lines.append(line.model_dump_json(exclude_none=True) + "\n")
    return lines


def write_extension_jsonl(records: Iterable[ChildRecord], path: Path) -> None:
    """Write the extension file :func:`ingest` joins: one line per episode that has any extension field."""
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for record in records:
            out.writelines(extension_lines(record))
