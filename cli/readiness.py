"""``closure-risk readiness``: what an authority's returns hold, for its data officer, as HTML and JSON.

Children and episodes per collection year, closures eligible for training per year, the share of each extension
field recorded, problems by rule with their DfE rule and first examples, whether there is enough labelled data to
train, and what scoring would lack. Nothing in it names a child: examples give the file and element path (the
problems file written by ``closure-risk ingest --problems`` lists every problem with its LAchildID).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from cli.common import EXIT_INPUT, EXIT_PARTIAL

if TYPE_CHECKING:
    from features import ChildRecord, IngestResult, Problem

# Training splits by time and refuses fewer than three collection years of closures with a full year of follow-up
# (training.split). The number of closures is an estimate until the model issue measures the minimum, set between
# two cohorts of the synthetic authority: the tests' 2,500 children (2,770 eligible closures) train a model, but its
# test side is too small to judge calibration by the production bounds; the default 40,000 children meet them.
MIN_COMPLETE_YEARS: Final = 3
ESTIMATED_MIN_CLOSURES: Final = 5000
EXAMPLES: Final = 3  # examples shown per rule
FOLLOW_UP: Final = dt.timedelta(days=365)


@dataclass(frozen=True)
class YearRow:
    """One collection year (1 April to 31 March): its return, and the kept records' activity in it."""

    year: str  # 2023-24
    reference_date: dt.date
    files: list[str]
    child_elements: int
    child_elements_kept: int
    child_elements_dropped: int
    children: int  # with an episode open at some point in the year
    episodes: int  # open at some point in the year
    referrals: int
    closures: int
    eligible_closures: int  # with a full year of follow-up, RC7-RC9, under 17: what training learns from
    censored_closures: int  # eligible but under a year of follow-up yet


@dataclass(frozen=True)
class FieldShare:
    """An extension field: how many episodes record it, of all kept episodes and of the open ones."""

    name: str
    label: str
    recorded: int
    episodes: int
    open_recorded: int
    open_episodes: int

    @property
    def share(self) -> float | None:
        return self.recorded / self.episodes if self.episodes else None


@dataclass(frozen=True)
class Example:
    source: str
    path: str
    message: str


@dataclass(frozen=True)
class RuleRow:
    """The problems of one rule and severity, with the DfE rule they break (where there is one)."""

    rule: str
    severity: str
    count: int
    dfe_rule: str | None
    dfe_message: str | None
    examples: list[Example]


@dataclass(frozen=True)
class TrainingReadiness:
    eligible_closures: int
    re_referred: int
    complete_years: list[str]  # collection years whose closures all have a full year of follow-up
    min_complete_years: int
    min_closures: int
    minimum_is_estimate: bool
    enough: bool
    reasons: list[str]


@dataclass(frozen=True)
class ScoringGaps:
    """What scoring the episodes open at the end of the data would go without."""

    open_episodes: int
    missing_from_return: int  # open in one return, missing from a later one: the score is flagged
    expected_birth_only: int  # unborn or not yet recorded as born: age is estimated from the expected date
    lacking: dict[str, int] = field(default_factory=dict)  # extension field -> open episodes not recording it


@dataclass(frozen=True)
class Readiness:
    generated: dt.date
    files: list[str]
    extension: str | None
    data_end: dt.date | None
    partial: bool
    unusable_files: list[str]
    partly_read_files: list[str]
    summary: dict[str, object]
    years: list[YearRow]
    fields: list[FieldShare]
    rules: list[RuleRow]
    training: TrainingReadiness
    scoring: ScoringGaps

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["fields"] = [{**asdict(f), "share": f.share} for f in self.fields]
        return json.loads(json.dumps(out, default=_jsonable))  # type: ignore[no-any-return]


def _jsonable(value: object) -> object:
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _year_name(reference_date: dt.date) -> str:
    return f"{reference_date.year - 1}-{reference_date.year % 100:02d}"


def _active(referral: dt.date, closure: dt.date | None, start: dt.date, end: dt.date) -> bool:
    return referral <= end and (closure is None or closure >= start)


def _years(result: IngestResult) -> list[YearRow]:
    from outcomes import closure_outcome

    data_end = result.data_end
    by_date: dict[dt.date, list[Any]] = {}
    for counted in result.returns:
        if counted.reference_date is not None:
            by_date.setdefault(counted.reference_date, []).append(counted)
    rows = []
    for end, returns in sorted(by_date.items()):
        start = end.replace(year=end.year - 1) + dt.timedelta(days=1)
        children = episodes = referrals = closures = eligible = censored = 0
        for record in result.records:
            active = False
            for i, episode in enumerate(record.episodes):
                if not _active(episode.referral_date, episode.closure_date, start, end):
                    continue
                active = True
                episodes += 1
                referrals += start <= episode.referral_date
                closed = episode.closure_date
                if closed is not None and closed <= end and data_end is not None:
                    closures += 1
                    status = closure_outcome(record, i, data_end=data_end).status
                    eligible += status == "eligible"
                    censored += status == "censored"
            children += active
        rows.append(
            YearRow(year=_year_name(end), reference_date=end, files=[r.source for r in returns],
                    child_elements=sum(r.child_elements for r in returns),
                    child_elements_kept=sum(r.kept for r in returns),
                    child_elements_dropped=sum(r.dropped for r in returns), children=children, episodes=episodes,
                    referrals=referrals, closures=closures, eligible_closures=eligible, censored_closures=censored)
        )  # fmt: skip
    return rows


def _fields(records: list[ChildRecord]) -> list[FieldShare]:
    from features import EXTENSION_FIELDS

    episodes = [e for r in records for e in r.episodes]
    open_episodes = [r.open_episode for r in records if r.open_episode is not None]
    return [
        FieldShare(name, name.replace("_", " "), sum(getattr(e, name) is not None for e in episodes), len(episodes),
                   sum(getattr(e, name) is not None for e in open_episodes), len(open_episodes))
        for name in EXTENSION_FIELDS
    ]  # fmt: skip


def _rules(problems: list[Problem]) -> list[RuleRow]:
    counts = Counter((p.rule, p.severity.value) for p in problems)
    first: dict[tuple[str, str], list[Problem]] = {}
    for p in problems:
        shown = first.setdefault((p.rule, p.severity.value), [])
        if len(shown) < EXAMPLES:
            shown.append(p)
    rows = []
    for (rule, severity), count in sorted(counts.items(), key=lambda item: (item[0][1] != "error", -item[1])):
        examples = first[(rule, severity)]
        dfe = examples[0].dfe_rule
        rows.append(
            RuleRow(rule, severity, count, dfe.number if dfe else None, dfe.message if dfe else None,
                    [Example(p.source, p.path, p.message) for p in examples])
        )  # fmt: skip
    return rows


def _training(result: IngestResult, years: list[YearRow]) -> TrainingReadiness:
    from outcomes import label_closures

    data_end = result.data_end
    if data_end is None:
        why = "no return gives a ReferenceDate or Year, so no closure can be labelled"
        return TrainingReadiness(0, 0, [], MIN_COMPLETE_YEARS, ESTIMATED_MIN_CLOSURES, True, False, [why])
    _, summary = label_closures(result.records, data_end=data_end)
    complete = [y.year for y in years if y.reference_date + FOLLOW_UP <= data_end and y.eligible_closures > 0]
    reasons = []
    if len(complete) < MIN_COMPLETE_YEARS:
        reasons.append(
            f"{len(complete)} collection year{'s' if len(complete) != 1 else ''} of closures with a full year of "
            f"follow-up; training needs "
            f"{MIN_COMPLETE_YEARS} (a test year, a validation year and earlier years to learn from): give more years "
            "of returns"
        )
    if summary.eligible < ESTIMATED_MIN_CLOSURES:
        reasons.append(
            f"{summary.eligible:,} closure{'s' if summary.eligible != 1 else ''} eligible for training; an "
            f"estimated {ESTIMATED_MIN_CLOSURES:,} are needed"
        )
    return TrainingReadiness(
        eligible_closures=summary.eligible,
        re_referred=summary.positives,
        complete_years=complete,
        min_complete_years=MIN_COMPLETE_YEARS,
        min_closures=ESTIMATED_MIN_CLOSURES,
        minimum_is_estimate=True,
        enough=not reasons,
        reasons=reasons,
    )


def _scoring(records: list[ChildRecord], fields: list[FieldShare]) -> ScoringGaps:
    open_records = [r for r in records if r.open_episode is not None]
    return ScoringGaps(
        open_episodes=len(open_records),
        missing_from_return=sum(r.episodes[-1].missing_from_return is not None for r in open_records),
        expected_birth_only=sum(r.birth_date is None for r in open_records),
        lacking={f.name: f.open_episodes - f.open_recorded for f in fields},
    )


def build_readiness(result: IngestResult, *, files: list[str], extension: str | None) -> Readiness:
    """The report of one ingest run."""
    years = _years(result)
    fields = _fields(result.records)
    summary = {k: v for k, v in result.summary().items() if k != "returns"}
    return Readiness(
        generated=dt.date.today(),
        files=files,
        extension=extension,
        data_end=result.data_end,
        partial=result.partial,
        unusable_files=result.unusable_files,
        partly_read_files=result.partly_read_files,
        summary=summary,
        years=years,
        fields=fields,
        rules=_rules(result.problems),
        training=_training(result, years),
        scoring=_scoring(result.records, fields),
    )


def render_html(report: Readiness) -> str:
    """The report as one self-contained, accessible HTML page (no script, no external file)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["share"] = lambda part, whole: f"{part / whole:.0%}" if whole else "-"
    return env.get_template("readiness.html").render(r=report)


def _readiness(args: argparse.Namespace) -> int:
    from features import IngestError, ingest

    try:
        result = ingest(args.paths, extension=args.extension)
    except IngestError as exc:  # an extension file that cannot be read: said in one line, not a traceback
        print(f"closure-risk readiness: {exc}", file=sys.stderr)
        return EXIT_INPUT
    if len(result.unusable_files) == len(args.paths):
        reasons = "\n".join(f"{p.source}: {p.message}" for p in result.problems)
        print(f"closure-risk readiness: nothing could be read:\n{reasons}", file=sys.stderr)
        return EXIT_INPUT
    report = build_readiness(result, files=[p.name for p in args.paths],
                             extension=args.extension.name if args.extension else None)  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    html, data = args.out / "readiness.html", args.out / "readiness.json"
    html.write_text(render_html(report), encoding="utf-8")
    data.write_text(json.dumps(report.as_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(json.dumps({"html": str(html), "json": str(data), "enough_to_train": report.training.enough,
                      "partial": report.partial}, sort_keys=True))  # fmt: skip
    return EXIT_PARTIAL if result.partial else 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    readiness = commands.add_parser(
        "readiness",
        help="a data officer's report on the returns: what they hold, what to fix, whether a model can be trained",
        description="Read the returns as ingest does and write readiness.html and readiness.json: children and "
        "episodes per collection year, closures eligible for training per year, the share of each extension "
        "field recorded, problems by rule (with the DfE rule number) and their first examples, whether there is "
        "enough labelled data to train, and what scoring would lack. No child is named.",
    )
    readiness.add_argument("paths", nargs="+", type=Path, metavar="RETURN", help="CIN census XML returns")
    readiness.add_argument("--extension", type=Path, help="case-management extension (JSON lines)")
    readiness.add_argument("--out", type=Path, default=Path("."), help="folder to write the report in (default: .)")
    readiness.set_defaults(handler=_readiness)
